"""The scenario engine: reproducible from its seed, every kind of change, webhooks where Trio fires them."""

from __future__ import annotations

from collections import Counter

import pytest

from services.common.trio import parse_trio_datetime
from services.simulator import FaultConfig, Simulator
from tests.simulator_support import FakeClock

pytestmark = pytest.mark.unit


def _run(seed: int, steps: int, faults: FaultConfig | None = None) -> tuple[dict, list]:
    clock = FakeClock()
    sim = Simulator(seed=seed, jobs=40, clock=clock, faults=faults)
    sim.register_webhook("http://127.0.0.1:9/hook")
    changes = []
    for _ in range(steps):
        clock.advance(milliseconds=250)
        changes.extend((c.kind, c.number, c.modified) for c in sim.step())
    return sim.truth(), changes


def test_the_same_seed_reproduces_the_same_truth_and_changes() -> None:
    assert _run(7, 300) == _run(7, 300)


def test_a_different_seed_gives_a_different_truth() -> None:
    assert _run(7, 50)[0] != _run(8, 50)[0]


def test_faults_never_change_the_truth_a_seed_produces() -> None:
    noisy = FaultConfig(
        drop_webhook=0.3, duplicate_webhook=0.3, reorder_webhook=0.3, late_webhook=0.3, deactivate_registration=0.1
    )
    assert _run(7, 200, noisy) == _run(7, 200)


def test_the_engine_makes_every_kind_of_change() -> None:
    _, changes = _run(11, 600)
    kinds = Counter(kind for kind, _, _ in changes)
    assert set(kinds) == {"created", "updated", "positions", "held", "closed", "reopened"}


def test_every_change_but_positions_restamps_the_job_and_queues_a_webhook() -> None:
    clock = FakeClock()
    sim = Simulator(seed=5, jobs=30, clock=clock)
    sim.register_webhook("http://127.0.0.1:9/hook")
    for _ in range(300):
        before = sim.truth()
        pending = sim.pending_webhooks
        clock.advance(milliseconds=10)
        (change,) = sim.step()
        after = sim.job(change.number)
        assert change.job == after
        if change.kind == "positions":
            assert not change.fires_webhook
            assert after["ModifiedDateUtc"] == before[change.number]["ModifiedDateUtc"]
            assert after["NumberOfCurrentOpenPositions"] != before[change.number]["NumberOfCurrentOpenPositions"]
            assert sim.pending_webhooks == pending
        else:
            assert change.fires_webhook
            if change.kind != "created":
                old = parse_trio_datetime(before[change.number]["ModifiedDateUtc"])
                assert parse_trio_datetime(after["ModifiedDateUtc"]) > old
            assert sim.pending_webhooks == pending + 1


def test_an_empty_book_starts_with_a_creation() -> None:
    sim = Simulator(seed=1, jobs=0)
    (change,) = sim.step()
    assert change.kind == "created"
    assert sim.truth() == {change.number: change.job}


def test_step_refuses_a_negative_count() -> None:
    with pytest.raises(ValueError, match="n must be >= 0"):
        Simulator().step(-1)
