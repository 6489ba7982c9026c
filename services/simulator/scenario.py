"""The seeded scenario engine: which change happens next in the simulated agency (pure).

``plan`` only decides; the Simulator applies the plan through the same methods a test would call,
so a scenario change stamps, caches and fires webhooks exactly like a hand-made one.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from services.common.trio import CLOSED, ON_HOLD, OPEN, OPEN_POSITIONS
from services.simulator import jobgen
from services.simulator.jobs import JobBook

CREATED = "created"
UPDATED = "updated"
POSITIONS = "positions"
HELD = "held"
CLOSED_KIND = "closed"
REOPENED = "reopened"

# How often each kind of change happens: roughly what a busy agency sees in a day.
WEIGHTS: tuple[tuple[str, int], ...] = (
    (CREATED, 15),
    (UPDATED, 35),
    (POSITIONS, 15),
    (HELD, 8),
    (CLOSED_KIND, 17),
    (REOPENED, 10),
)
# Which jobs each kind can apply to.
CANDIDATES: dict[str, tuple[str, ...]] = {
    UPDATED: (OPEN, ON_HOLD),
    POSITIONS: (OPEN, ON_HOLD),
    HELD: (OPEN,),
    CLOSED_KIND: (OPEN, ON_HOLD),
    REOPENED: (ON_HOLD, CLOSED),
}


@dataclass(frozen=True, slots=True)
class Change:
    """One change made to the simulated Trio, as ``step`` reports it."""

    kind: str  # created | updated | positions | held | closed | reopened
    number: int
    fires_webhook: bool
    modified: str  # the job's ModifiedDateUtc after the change (unchanged for "positions")
    job: dict[str, Any] = field(repr=False, compare=False)  # the job after the change (a copy)


@dataclass(frozen=True, slots=True)
class Plan:
    kind: str
    number: int | None  # None for "created"
    changes: dict[str, Any]


def plan(rng: random.Random, book: JobBook) -> Plan:
    """Draw the next change: a kind by weight, then a job it can apply to (or a create when none can)."""
    kinds = [k for k, _ in WEIGHTS]
    kind = rng.choices(kinds, weights=[w for _, w in WEIGHTS])[0]
    if kind != CREATED:
        pools = book.with_status(*CANDIDATES[kind])
        total = sum(len(p) for p in pools)
        if total == 0:
            kind = CREATED
        else:
            index = rng.randrange(total)
            for pool in pools:
                if index < len(pool):
                    number = pool[index]
                    break
                index -= len(pool)
            return Plan(kind, number, _changes(rng, book, kind, number))
    return Plan(CREATED, None, {})


def _changes(rng: random.Random, book: JobBook, kind: str, number: int) -> dict[str, Any]:
    job = book.get(number).job
    if kind == UPDATED:
        return jobgen.random_update(rng, job)
    if kind == POSITIONS:
        current = job.get(OPEN_POSITIONS) or 0
        choices = [n for n in range(0, 6) if n != current]
        return {OPEN_POSITIONS: rng.choice(choices)}
    if kind == CLOSED_KIND:
        return {"reason": jobgen.close_reason(rng)}
    if kind == HELD:
        return {"reason": rng.choice(jobgen.HOLD_REASONS)}
    return {}
