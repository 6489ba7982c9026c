"""Reading a Trio job listing and validating its records, as pure functions (no I/O)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from services.common.errors import InvalidJobError
from services.common.events import JobEvent, Source, job_observed
from services.poller.errors import MalformedResponseError

# Envelope keys a paged or wrapped response might use; Trio documents a bare array today.
ENVELOPE_KEYS = ("items", "Items", "data", "Data", "jobs", "Jobs", "results", "Results", "value")


def parse_listing(body: bytes, what: str) -> list[Any]:
    """The records of a listing body: a bare JSON array, or the array inside a known envelope key.

    Raises MalformedResponseError (carrying the body) when the body is not JSON or holds no array.
    """
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedResponseError(f"{what}: response is not valid JSON ({exc})", body) from exc
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        for key in ENVELOPE_KEYS:
            if isinstance(data.get(key), list):
                return data[key]
    raise MalformedResponseError(
        f"{what}: expected a JSON array of jobs (or an object with an items/data array), got {type(data).__name__}",
        body,
    )


def parse_object(body: bytes, what: str) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedResponseError(f"{what}: response is not valid JSON ({exc})", body) from exc


@dataclass(frozen=True, slots=True)
class BadRecord:
    index: int
    field: str
    message: str
    record: Any

    @property
    def reason(self) -> str:
        return f"record #{self.index} of the listing: {self.field}: {self.message}"


@dataclass(frozen=True, slots=True)
class Validated:
    events: list[JobEvent]
    bad: list[BadRecord]


def to_events(records: Sequence[Any], source: Source, *, sync_id: str, snapshot_id: str | None = None) -> Validated:
    """Turn every record into a ``JobObserved``; records that are not Trio jobs are returned as ``bad``."""
    events: list[JobEvent] = []
    bad: list[BadRecord] = []
    for index, record in enumerate(records):
        try:
            events.append(job_observed(record, source, sync_id=sync_id, snapshot_id=snapshot_id))
        except InvalidJobError as exc:
            bad.append(BadRecord(index, exc.field, exc.message, record))
    return Validated(events, bad)
