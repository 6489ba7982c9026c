"""Which sync is due, and when: a pure function of the checkpoint, recent attempts and the clock."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from services.poller.checkpoint import Checkpoint


class SyncKind(StrEnum):
    FULL = "full"
    INCREMENTAL = "incremental"
    RESYNC = "resync"  # a full sync an operator asked for


@dataclass(frozen=True, slots=True)
class Intervals:
    incremental: timedelta
    full: timedelta
    failed_full_retry: timedelta


@dataclass(frozen=True, slots=True)
class Attempts:
    """When each kind of sync was last tried by this process (success or not)."""

    full: datetime | None = None
    incremental: datetime | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    kind: SyncKind
    at: datetime  # when it is due (<= now means now)


def next_sync(checkpoint: Checkpoint, attempts: Attempts, intervals: Intervals, now: datetime) -> Plan:
    """The next sync to run and when.

    - No cursor yet (first start): a full sync, now.
    - Full: due ``full`` after the last completed snapshot; after a failed attempt, not again before
      ``failed_full_retry`` (a broken listing must not crowd out incremental syncs).
    - Incremental: due ``incremental`` after the later of the cursor and its last attempt.
    - When both are due, the full sync wins: it covers what the incremental sync would have seen.
    """
    if checkpoint.cursor is None:
        at = now if attempts.full is None else max(now, attempts.full + intervals.failed_full_retry)
        return Plan(SyncKind.FULL, at)
    full_at = now if checkpoint.last_full_at is None else checkpoint.last_full_at + intervals.full
    if attempts.full is not None and (checkpoint.last_full_at is None or attempts.full > checkpoint.last_full_at):
        full_at = max(full_at, attempts.full + intervals.failed_full_retry)
    base = checkpoint.cursor if attempts.incremental is None else max(checkpoint.cursor, attempts.incremental)
    incremental_at = base + intervals.incremental
    if full_at <= max(now, incremental_at):
        return Plan(SyncKind.FULL, full_at)
    return Plan(SyncKind.INCREMENTAL, incremental_at)
