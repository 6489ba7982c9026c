"""Closure inference's mass-closure guard, as a pure decision (ARCHITECTURE.md, "Closure inference").

A ``SnapshotCompleted`` marker read on partition p may close the jobs of p that the snapshot did not
list. A snapshot that lost pages (Trio trouble, a bug) would close jobs that are still open, so:

- more than ``share`` of the open jobs of p AND more than ``floor`` jobs -> close nothing, keep the
  snapshot pending for an operator (``jobsync projector closures apply <snapshot>``);
- a marker the poller flagged ``suspicious`` (much smaller than the snapshot before) is guarded
  whenever it would close anything at all, whatever the share and the floor: the poller has already
  said the listing looks partial, and a person should look before any job is closed because of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class GuardVerdict(StrEnum):
    CLOSE = "close"  # apply the closures now
    NOTHING = "nothing"  # no candidate: nothing to close
    GUARDED = "guarded"  # too many, or a suspicious snapshot: wait for an operator


@dataclass(frozen=True, slots=True)
class GuardDecision:
    verdict: GuardVerdict
    candidates: int
    open_jobs: int
    reason: str


def guard(candidates: int, open_jobs: int, *, share: float, floor: int, suspicious: bool) -> GuardDecision:
    """Decide whether closing ``candidates`` of the ``open_jobs`` Open/OnHold jobs of a partition is safe."""
    if candidates < 0 or open_jobs < candidates:
        raise ValueError(f"impossible counts: {candidates} candidates of {open_jobs} open jobs")
    if candidates == 0:
        return GuardDecision(GuardVerdict.NOTHING, 0, open_jobs, "every open job was listed or seen since")
    if suspicious:
        return GuardDecision(GuardVerdict.GUARDED, candidates, open_jobs,
                             "the poller flagged the snapshot as suspicious")
    if candidates > share * open_jobs and candidates > floor:
        return GuardDecision(
            GuardVerdict.GUARDED, candidates, open_jobs,
            f"would close {candidates} of {open_jobs} open jobs: more than {share:.0%} and more than {floor}",
        )
    return GuardDecision(GuardVerdict.CLOSE, candidates, open_jobs, "within the guard's share and floor")
