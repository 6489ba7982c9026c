"""The poller's pure core: cursor arithmetic, checkpoint encoding, suspicion, and the schedule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.common.errors import DecodeError
from services.poller.checkpoint import (
    Checkpoint,
    SuspicionPolicy,
    advance_after_full,
    advance_after_incremental,
    incremental_since,
    is_suspicious,
)
from services.poller.schedule import Attempts, Intervals, SyncKind, next_sync

pytestmark = pytest.mark.unit

T0 = datetime(2024, 9, 1, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def modified_after(since: datetime, modified: datetime) -> bool:
    """Trio's modifiedDate filter: strictly after (the simulator implements the same)."""
    return modified > since


def test_incremental_asks_from_the_cursor_minus_the_overlap() -> None:
    assert incremental_since(T0, timedelta(seconds=120)) == T0 - timedelta(seconds=120)


def test_a_change_at_exactly_the_previous_syncs_start_is_seen_by_the_next_incremental() -> None:
    # The previous sync started at T0 (its cursor); a change stamped T0 may have been invisible to it.
    since = incremental_since(T0, timedelta(microseconds=1))
    assert modified_after(since, T0)
    # ...and a change stamped exactly at the asked instant is NOT returned (strictly after):
    assert not modified_after(since, since)
    # which is safe, because that instant lies before the previous sync's start, so that sync saw it.
    assert since < T0


def test_a_change_the_clock_skew_hides_is_covered_by_the_overlap() -> None:
    # Trio's clock 90 s behind ours: a change made just before our previous sync is stamped T0 - 90 s.
    since = incremental_since(T0, timedelta(seconds=120))
    assert modified_after(since, T0 - timedelta(seconds=90))


@pytest.mark.parametrize("overlap", [timedelta(0), timedelta(seconds=-1)])
def test_a_zero_or_negative_overlap_is_refused_because_modified_date_is_strictly_after(overlap: timedelta) -> None:
    with pytest.raises(ValueError, match="positive"):
        incremental_since(T0, overlap)


def test_the_cursor_advances_to_the_syncs_start_and_never_moves_back() -> None:
    cp = Checkpoint(cursor=T0, last_full_at=T0 - MINUTE, last_full_count=7)
    later = advance_after_incremental(cp, T0 + MINUTE, "s2", T0 + 2 * MINUTE)
    assert later.cursor == T0 + MINUTE
    assert (later.last_full_at, later.last_full_count) == (T0 - MINUTE, 7)  # full-sync facts kept
    earlier = advance_after_incremental(cp, T0 - MINUTE, "s3", T0)  # this machine's clock stepped back
    assert earlier.cursor == T0


def test_a_full_sync_records_its_snapshot_and_advances_the_cursor() -> None:
    cp = advance_after_full(Checkpoint(), T0, 42, "snap", "sync", T0 + MINUTE)
    assert (cp.cursor, cp.last_full_at, cp.last_full_count, cp.last_snapshot_id) == (T0, T0, 42, "snap")


def test_the_checkpoint_round_trips_through_json() -> None:
    cp = Checkpoint(
        cursor=T0, last_full_at=T0, last_full_count=3, last_snapshot_id="a", last_sync_id="b", updated_at=T0 + MINUTE
    )
    assert Checkpoint.from_json(cp.to_json()) == cp
    assert Checkpoint.from_json(Checkpoint().to_json()) == Checkpoint()


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"not json", "not JSON"),
        (b"[1]", "JSON object"),
        (b'{"version": 99}', "version"),
        (b'{"version": 1, "cursor": "yesterday"}', "cursor"),
        (b'{"version": 1, "last_full_count": -3}', "last_full_count"),
    ],
)
def test_a_garbled_checkpoint_is_a_decode_error_naming_the_problem(data: bytes, match: str) -> None:
    with pytest.raises(DecodeError, match=match):
        Checkpoint.from_json(data)


@pytest.mark.parametrize(
    ("count", "expected", "suspicious"),
    [
        (1000, None, False),  # nothing to compare with
        (1000, 1000, False),
        (701, 1000, False),  # 29.9 % missing: under the 30 % share
        (699, 1000, True),  # 30.1 % missing
        (0, 1000, True),
        (1, 3, False),  # 66 % missing but only 2 jobs: under the floor
        (0, 12, True),
        (1500, 1000, False),  # growth is never suspicious
    ],
)
def test_a_listing_much_smaller_than_the_last_snapshot_is_suspicious(
    count: int, expected: int | None, suspicious: bool
) -> None:
    assert is_suspicious(count, expected, SuspicionPolicy(drop_share=0.3, min_drop=10)) is suspicious


INTERVALS = Intervals(incremental=5 * MINUTE, full=timedelta(days=1), failed_full_retry=15 * MINUTE)


def test_first_start_without_a_cursor_runs_a_full_sync_now() -> None:
    plan = next_sync(Checkpoint(), Attempts(), INTERVALS, T0)
    assert (plan.kind, plan.at) == (SyncKind.FULL, T0)


def test_a_failed_first_full_sync_is_retried_after_the_retry_interval() -> None:
    plan = next_sync(Checkpoint(), Attempts(full=T0), INTERVALS, T0 + MINUTE)
    assert (plan.kind, plan.at) == (SyncKind.FULL, T0 + 15 * MINUTE)


def test_incremental_syncs_follow_the_cursor_between_full_syncs() -> None:
    cp = Checkpoint(cursor=T0, last_full_at=T0 - timedelta(hours=1))
    plan = next_sync(cp, Attempts(), INTERVALS, T0 + MINUTE)
    assert (plan.kind, plan.at) == (SyncKind.INCREMENTAL, T0 + 5 * MINUTE)


def test_a_failed_incremental_waits_a_full_interval_rather_than_hammering_trio() -> None:
    cp = Checkpoint(cursor=T0, last_full_at=T0 - timedelta(hours=1))
    plan = next_sync(cp, Attempts(incremental=T0 + 5 * MINUTE), INTERVALS, T0 + 6 * MINUTE)
    assert (plan.kind, plan.at) == (SyncKind.INCREMENTAL, T0 + 10 * MINUTE)


def test_the_daily_full_sync_wins_when_both_are_due() -> None:
    cp = Checkpoint(cursor=T0, last_full_at=T0 - timedelta(days=1))
    plan = next_sync(cp, Attempts(), INTERVALS, T0 + 6 * MINUTE)
    assert plan.kind is SyncKind.FULL and plan.at <= T0 + 6 * MINUTE


def test_a_broken_full_listing_does_not_crowd_out_incremental_syncs() -> None:
    cp = Checkpoint(cursor=T0, last_full_at=T0 - timedelta(days=2))
    failed_full = T0 + MINUTE
    plan = next_sync(cp, Attempts(full=failed_full), INTERVALS, T0 + 2 * MINUTE)
    assert (plan.kind, plan.at) == (SyncKind.INCREMENTAL, T0 + 5 * MINUTE)
    later = next_sync(cp, Attempts(full=failed_full, incremental=T0 + 5 * MINUTE), INTERVALS, T0 + 16 * MINUTE)
    assert (later.kind, later.at) == (SyncKind.FULL, failed_full + 15 * MINUTE)
