"""The mass-closure guard's decision (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.projector.closures import GuardVerdict, guard

pytestmark = pytest.mark.unit


def test_no_candidate_closes_nothing_even_when_suspicious():
    assert guard(0, 50, share=0.2, floor=5, suspicious=True).verdict == GuardVerdict.NOTHING


def test_a_small_share_is_closed():
    assert guard(3, 100, share=0.2, floor=5, suspicious=False).verdict == GuardVerdict.CLOSE


def test_a_large_share_above_the_floor_is_guarded():
    decision = guard(30, 100, share=0.2, floor=5, suspicious=False)
    assert decision.verdict == GuardVerdict.GUARDED
    assert "30 of 100" in decision.reason


def test_a_large_share_under_the_floor_is_closed():
    """Closing 2 of 3 open jobs is a big share, but too few to be a runaway snapshot."""
    assert guard(2, 3, share=0.2, floor=5, suspicious=False).verdict == GuardVerdict.CLOSE


def test_a_suspicious_snapshot_is_guarded_whatever_the_share():
    assert guard(1, 1000, share=0.2, floor=5, suspicious=True).verdict == GuardVerdict.GUARDED


def test_impossible_counts_are_refused():
    with pytest.raises(ValueError, match="impossible"):
        guard(5, 3, share=0.2, floor=5, suspicious=False)


@given(st.integers(0, 500), st.integers(0, 500), st.floats(0, 1), st.integers(0, 50))
def test_guarded_exactly_when_both_share_and_floor_are_exceeded(candidates, extra, share, floor):
    open_jobs = candidates + extra
    decision = guard(candidates, open_jobs, share=share, floor=floor, suspicious=False)
    if candidates == 0:
        assert decision.verdict == GuardVerdict.NOTHING
    elif candidates > share * open_jobs and candidates > floor:
        assert decision.verdict == GuardVerdict.GUARDED
    else:
        assert decision.verdict == GuardVerdict.CLOSE
