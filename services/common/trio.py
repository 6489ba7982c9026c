"""Facts about Trio's job objects, as pure functions (see shared TRIO.md).

Trio sends PascalCase JSON. ``ModifiedDateUtc`` is a UTC instant that may come with or without an
offset and with up to 7 fractional digits (.NET ticks); we keep microseconds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

from services.common.errors import InvalidJobError

OPEN = "Open"
ON_HOLD = "OnHold"
CLOSED = "Closed"
LISTED_STATUSES = frozenset({OPEN, ON_HOLD})
KNOWN_STATUSES = frozenset({OPEN, ON_HOLD, CLOSED})

NUMBER = "Number"
JOB_STATUS = "JobStatus"
JOB_STATUS_REASON = "JobStatusReason"
MODIFIED = "ModifiedDateUtc"
OPEN_POSITIONS = "NumberOfCurrentOpenPositions"

_DATETIME = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})"
    r"(?:[T ](?P<time>\d{2}:\d{2}(?::\d{2})?)(?:\.(?P<frac>\d{1,9}))?)?"
    r"(?P<tz>Z|z|[+-]\d{2}:?\d{2})?$"
)


def parse_trio_datetime(text: str) -> datetime:
    """Parse a Trio timestamp (or a plain date, meaning midnight UTC) to an aware UTC datetime.

    Raises ValueError naming the text when it is not one.
    """
    if not isinstance(text, str):
        raise ValueError(f"expected an ISO 8601 string, got {type(text).__name__}")
    m = _DATETIME.match(text.strip())
    if not m:
        raise ValueError(f"not an ISO 8601 date or date-time: {text!r}")
    try:
        day = date.fromisoformat(m["date"])
        clock = time.fromisoformat(m["time"]) if m["time"] else time(0, 0)
        micros = int((m["frac"] or "0")[:6].ljust(6, "0"))
        value = datetime.combine(day, clock.replace(microsecond=micros))
        tz = m["tz"]
        if tz and tz not in ("Z", "z"):
            value = datetime.fromisoformat(value.isoformat() + tz[:3] + ":" + tz[-2:])
            return value.astimezone(UTC)
        return value.replace(tzinfo=UTC)
    except ValueError as exc:
        raise ValueError(f"not a valid date-time: {text!r} ({exc})") from exc


def format_trio_datetime(value: datetime) -> str:
    """Format an instant the way Trio's query parameter accepts it: ``2024-09-01T00:00:00.000000Z``."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True, slots=True)
class JobFacts:
    """The few fields of a Trio job that the pipeline reasons about; the job itself travels verbatim."""

    number: int
    status: str
    modified_at: datetime | None
    open_positions: int | None


def job_facts(job: Any) -> JobFacts:
    """Check that ``job`` is a Trio job object and pull out the fields we order and route by.

    Raises InvalidJobError naming the first field that is missing or malformed.
    """
    if not isinstance(job, dict):
        raise InvalidJobError("$", f"a job must be a JSON object, got {_json_type(job)}")
    number = job.get(NUMBER)
    if isinstance(number, bool) or not isinstance(number, int):
        raise InvalidJobError(NUMBER, f"must be an integer, got {_json_type(number)}")
    status = job.get(JOB_STATUS)
    if not isinstance(status, str) or not status:
        raise InvalidJobError(JOB_STATUS, f"must be a non-empty string, got {_json_type(status)}")
    modified_raw = job.get(MODIFIED)
    modified: datetime | None = None
    if modified_raw is not None:
        try:
            modified = parse_trio_datetime(modified_raw)
        except ValueError as exc:
            raise InvalidJobError(MODIFIED, str(exc)) from exc
    positions = job.get(OPEN_POSITIONS)
    if positions is not None and (isinstance(positions, bool) or not isinstance(positions, int)):
        raise InvalidJobError(OPEN_POSITIONS, f"must be an integer or null, got {_json_type(positions)}")
    return JobFacts(number=number, status=status, modified_at=modified, open_positions=positions)


def _json_type(value: Any) -> str:
    if value is None:
        return "null (or missing)"
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer", float: "number"}.get(
        type(value), type(value).__name__
    )
