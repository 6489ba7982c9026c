"""The simulated job book: Trio-shaped jobs, their version stamps and their cached JSON bytes (pure).

Trio stamps ``ModifiedDateUtc`` like .NET does; the simulator uses one consistent form,
``2024-09-01T12:34:56.123Z`` (UTC, milliseconds, ``Z``). Every stamp of a job is strictly later than
its previous one (1 ms later when the clock has not moved), so ordering a job's versions by it is
meaningful. ``NumberOfCurrentOpenPositions`` changes without a new stamp: that is Trio's documented trap.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from services.common.trio import (
    CLOSED,
    JOB_STATUS,
    KNOWN_STATUSES,
    LISTED_STATUSES,
    MODIFIED,
    NUMBER,
    OPEN_POSITIONS,
)
from services.simulator.errors import InvalidChangeError, UnknownJobError

ONE_MS = timedelta(milliseconds=1)


def to_ms(value: datetime) -> datetime:
    """The instant truncated to whole milliseconds, in UTC (the precision the simulator stamps with)."""
    value = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def format_modified(value: datetime) -> str:
    """``2024-09-01T12:34:56.123Z``: the simulator's ModifiedDateUtc format."""
    return to_ms(value).replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def serialize(job: Mapping[str, Any]) -> bytes:
    """The job's JSON as the API sends it (compact; non-ASCII kept as UTF-8, as .NET does)."""
    return json.dumps(job, separators=(",", ":"), ensure_ascii=False).encode()


class JobRecord:
    """One job and what the API needs to serve it fast: its stamp as a datetime and its cached bytes."""

    __slots__ = ("_body", "job", "listed", "modified")

    def __init__(self, job: dict[str, Any], modified: datetime) -> None:
        self.job = job
        self.modified = modified
        self._body: bytes | None = None
        # A plain attribute, not a property: the full listing tests it 100,000 times per request.
        self.listed = job[JOB_STATUS] in LISTED_STATUSES

    @property
    def number(self) -> int:
        return self.job[NUMBER]

    @property
    def status(self) -> str:
        return self.job[JOB_STATUS]

    def body(self) -> bytes:
        """The job's JSON bytes, serialized once per version (every change goes through JobBook)."""
        if self._body is None:
            self._body = serialize(self.job)
        return self._body

    def copy(self) -> dict[str, Any]:
        """A deep copy exactly as ``GET /Job/{number}`` returns it."""
        return json.loads(self.body())


class _IndexedSet:
    """A set of Numbers that also supports a uniform random pick in O(1) (swap-remove list + positions)."""

    __slots__ = ("_items", "_pos")

    def __init__(self) -> None:
        self._items: list[int] = []
        self._pos: dict[int, int] = {}

    def add(self, item: int) -> None:
        if item not in self._pos:
            self._pos[item] = len(self._items)
            self._items.append(item)

    def discard(self, item: int) -> None:
        index = self._pos.pop(item, None)
        if index is None:
            return
        last = self._items.pop()
        if last != item:
            self._items[index] = last
            self._pos[last] = index

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index: int) -> int:
        return self._items[index]


class JobBook:
    """Every job the simulated agency has, closed ones included, in creation order."""

    def __init__(self, first_number: int = 200_001) -> None:
        self._records: dict[int, JobRecord] = {}
        self._by_status: dict[str, _IndexedSet] = {status: _IndexedSet() for status in KNOWN_STATUSES}
        self._next_number = first_number

    def __len__(self) -> int:
        return len(self._records)

    def __contains__(self, number: object) -> bool:
        return number in self._records

    def __iter__(self) -> Iterator[JobRecord]:
        return iter(self._records.values())

    def next_number(self) -> int:
        return self._next_number

    def get(self, number: int) -> JobRecord:
        try:
            return self._records[number]
        except KeyError:
            raise UnknownJobError(number) from None

    def with_status(self, *statuses: str) -> list[_IndexedSet]:
        return [self._by_status[s] for s in statuses]

    def count(self, status: str) -> int:
        return len(self._by_status[status])

    def add(self, job: dict[str, Any], modified: datetime) -> JobRecord:
        """Add a new job (its Number must be free); stamps it with ``modified``."""
        number = job.get(NUMBER)
        if isinstance(number, bool) or not isinstance(number, int):
            raise InvalidChangeError(f"{NUMBER} must be an integer, got {number!r}")
        if number in self._records:
            raise InvalidChangeError(f"a job with Number {number} already exists")
        _check_status(job.get(JOB_STATUS))
        _check_positions(job.get(OPEN_POSITIONS))
        modified = to_ms(modified)
        job[MODIFIED] = format_modified(modified)
        record = JobRecord(job, modified)
        self._records[number] = record
        self._by_status[record.status].add(number)
        self._next_number = max(self._next_number, number + 1)
        return record

    def modify(self, number: int, changes: Mapping[str, Any], now: datetime) -> JobRecord:
        """Apply ``changes`` and stamp the job: ``max(now, previous stamp + 1 ms)``."""
        record = self.get(number)
        for forbidden in (NUMBER, MODIFIED):
            if forbidden in changes:
                raise InvalidChangeError(f"{forbidden} cannot be changed (the simulator owns it)")
        if JOB_STATUS in changes:
            _check_status(changes[JOB_STATUS])
        if OPEN_POSITIONS in changes:
            _check_positions(changes[OPEN_POSITIONS])
        stamp = max(to_ms(now), record.modified + ONE_MS)
        self._replace(record, {**record.job, **changes, MODIFIED: format_modified(stamp)})
        record.modified = stamp
        return record

    def set_positions(self, number: int, positions: int) -> JobRecord:
        """Change the open-position count WITHOUT a new stamp (Trio's trap)."""
        record = self.get(number)
        _check_positions(positions)
        self._replace(record, {**record.job, OPEN_POSITIONS: positions})
        return record

    def _replace(self, record: JobRecord, job: dict[str, Any]) -> None:
        old_status = record.status
        record.job = job
        record._body = None
        record.listed = record.status in LISTED_STATUSES
        if record.status != old_status:
            self._by_status[old_status].discard(record.number)
            self._by_status[record.status].add(record.number)

    def records(self, numbers: Iterable[int] | None = None) -> Iterator[JobRecord]:
        if numbers is None:
            return iter(self._records.values())
        return (self._records[n] for n in numbers)


def _check_status(status: object) -> None:
    if status not in KNOWN_STATUSES:
        raise InvalidChangeError(f"{JOB_STATUS} must be one of {sorted(KNOWN_STATUSES)}, got {status!r}")


def _check_positions(positions: object) -> None:
    if positions is not None and (isinstance(positions, bool) or not isinstance(positions, int) or positions < 0):
        raise InvalidChangeError(f"{OPEN_POSITIONS} must be a non-negative integer, got {positions!r}")


__all__ = ["CLOSED", "ONE_MS", "JobBook", "JobRecord", "format_modified", "serialize", "to_ms"]
