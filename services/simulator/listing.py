"""``GET /Job`` as a function of the job book: status filter, ``modifiedDate`` filter, body assembly (pure)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from datetime import datetime

from services.common.trio import parse_trio_datetime
from services.simulator.errors import InvalidRequestError
from services.simulator.jobs import JobRecord

MODIFIED_DATE = "modifiedDate"


def modified_since(query: Mapping[str, str]) -> datetime | None:
    """The ``modifiedDate`` query parameter as a UTC instant, or None when absent or empty.

    The parameter name is matched case-insensitively (as ASP.NET binds it). A plain date means midnight
    UTC; a date-time without an offset is taken as UTC. Anything else raises InvalidRequestError (400).
    A ``+`` offset must be percent-encoded: unencoded, it arrives as a space and is rejected, as it
    would be by the real API.
    """
    values = [value for key, value in query.items() if key.lower() == MODIFIED_DATE.lower()]
    if not values:
        return None
    if len(values) > 1:
        raise InvalidRequestError(MODIFIED_DATE, "give the parameter once")
    text = values[0].strip()
    if not text:
        return None
    try:
        return parse_trio_datetime(text)
    except ValueError as exc:
        raise InvalidRequestError(
            MODIFIED_DATE, f"the value {values[0]!r} is not valid: use a date (2024-09-01) or an ISO 8601 date-time"
        ) from exc


def select(records: Iterable[JobRecord], since: datetime | None, omit: Collection[int] = ()) -> list[JobRecord]:
    """The Open and OnHold jobs, modified strictly after ``since`` when given, minus ``omit``."""
    if since is None:
        return [r for r in records if r.listed and r.number not in omit]
    return [r for r in records if r.listed and r.modified > since and r.number not in omit]


def body(records: Iterable[JobRecord]) -> bytes:
    """The bare JSON array, joined from each job's cached bytes."""
    return b"[" + b",".join([r.body() for r in records]) + b"]"
