"""The sync checkpoint and its arithmetic, as pure functions (no I/O).

The checkpoint is one JSON value under one key (``checkpoint_name``) of the compacted ``poller.state``
topic, so every field of it moves together:

- ``cursor``: the start time of the last sync (full or incremental) whose every event Kafka acknowledged.
  The next incremental sync asks Trio for jobs modified strictly after ``cursor - overlap``.
- ``last_full_at`` / ``last_full_count`` / ``last_snapshot_id``: the last completed full snapshot, for the
  schedule and for judging whether the next full listing is suspiciously small.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from services.common.errors import DecodeError
from services.common.trio import parse_trio_datetime

CHECKPOINT_VERSION = 1


@dataclass(frozen=True, slots=True)
class Checkpoint:
    cursor: datetime | None = None
    last_full_at: datetime | None = None
    last_full_count: int | None = None
    last_snapshot_id: str | None = None
    last_sync_id: str | None = None
    updated_at: datetime | None = None

    def to_json(self) -> bytes:
        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value is not None else None

        return json.dumps(
            {
                "version": CHECKPOINT_VERSION,
                "cursor": iso(self.cursor),
                "last_full_at": iso(self.last_full_at),
                "last_full_count": self.last_full_count,
                "last_snapshot_id": self.last_snapshot_id,
                "last_sync_id": self.last_sync_id,
                "updated_at": iso(self.updated_at),
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Checkpoint:
        """Parse a stored checkpoint; raises DecodeError saying what was wrong."""
        try:
            raw: Any = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise DecodeError(f"poller checkpoint is not JSON: {exc}") from exc
        if not isinstance(raw, dict):
            raise DecodeError("poller checkpoint must be a JSON object")
        if raw.get("version") != CHECKPOINT_VERSION:
            raise DecodeError(f"poller checkpoint version {raw.get('version')!r} is not {CHECKPOINT_VERSION}")

        def when(name: str) -> datetime | None:
            value = raw.get(name)
            if value is None:
                return None
            try:
                return parse_trio_datetime(value)
            except ValueError as exc:
                raise DecodeError(f"poller checkpoint field {name}: {exc}") from exc

        count = raw.get("last_full_count")
        if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 0):
            raise DecodeError(f"poller checkpoint field last_full_count: not a count: {count!r}")
        return cls(
            cursor=when("cursor"),
            last_full_at=when("last_full_at"),
            last_full_count=count,
            last_snapshot_id=raw.get("last_snapshot_id"),
            last_sync_id=raw.get("last_sync_id"),
            updated_at=when("updated_at"),
        )


def incremental_since(cursor: datetime, overlap: timedelta) -> datetime:
    """The ``modifiedDate`` of an incremental sync: Trio returns jobs modified strictly AFTER it.

    A change committed at instant t is visible to a sync whose request starts after t. The previous
    sync started at ``cursor``, so a change at exactly ``cursor`` (or a little before it, when the
    clocks of Trio and this machine disagree) may have been invisible to it; asking from
    ``cursor - overlap`` with overlap > 0 covers it. Re-reading a few jobs twice is harmless.
    """
    if overlap <= timedelta(0):
        raise ValueError("the overlap must be positive: modifiedDate is strictly-after")
    return cursor - overlap


def advance_after_incremental(checkpoint: Checkpoint, started_at: datetime, sync_id: str, now: datetime) -> Checkpoint:
    """The checkpoint after an incremental sync whose every event was acknowledged.

    The cursor never moves backwards (a clock step back on this machine must not re-widen nothing).
    """
    return replace(checkpoint, cursor=_later(checkpoint.cursor, started_at), last_sync_id=sync_id, updated_at=now)


def advance_after_full(
    checkpoint: Checkpoint, started_at: datetime, job_count: int, snapshot_id: str, sync_id: str, now: datetime
) -> Checkpoint:
    """The checkpoint after a full snapshot whose jobs and markers were all acknowledged.

    A full listing holds every job modified before it started, so it also advances the cursor.
    """
    return Checkpoint(
        cursor=_later(checkpoint.cursor, started_at),
        last_full_at=started_at,
        last_full_count=job_count,
        last_snapshot_id=snapshot_id,
        last_sync_id=sync_id,
        updated_at=now,
    )


def _later(current: datetime | None, candidate: datetime) -> datetime:
    return candidate if current is None or candidate > current else current


@dataclass(frozen=True, slots=True)
class SuspicionPolicy:
    drop_share: float = 0.3
    min_drop: int = 10


def is_suspicious(job_count: int, expected: int | None, policy: SuspicionPolicy) -> bool:
    """Is a full listing of ``job_count`` jobs much smaller than the previous full snapshot's ``expected``?

    Suspicious means more than ``drop_share`` of the expected jobs are missing AND at least ``min_drop``
    of them, so small tenants do not trip it. With no previous snapshot nothing is suspicious.
    """
    if expected is None or expected <= 0:
        return False
    missing = expected - job_count
    return missing >= policy.min_drop and missing > expected * policy.drop_share
