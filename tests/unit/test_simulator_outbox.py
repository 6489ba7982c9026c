"""The webhook outbox's ordering: late deliveries wait without blocking, reordered ones swap places."""

from __future__ import annotations

import pytest

from services.simulator.outbox import Delivery, Outbox

pytestmark = pytest.mark.unit


def _delivery(number: int, url: str = "http://a/hook", **flags: object) -> Delivery:
    return Delivery(url, number, f"m{number}", b"{}", **flags)  # type: ignore[arg-type]


def _drain_due(outbox: Outbox, now: float) -> list[int]:
    out = []
    while (d := outbox.pop_due(now)) is not None:
        out.append(d.number)
    return out


def test_deliveries_go_out_in_the_order_they_were_queued() -> None:
    outbox = Outbox()
    for n in (1, 2, 3):
        outbox.put(_delivery(n))
    assert _drain_due(outbox, now=0.0) == [1, 2, 3]
    assert len(outbox) == 0


def test_a_late_delivery_waits_for_its_time_without_blocking_the_ones_behind_it() -> None:
    outbox = Outbox()
    outbox.put(_delivery(1, due=100.0, late=True))
    outbox.put(_delivery(2))
    assert _drain_due(outbox, now=50.0) == [2]
    assert outbox.next_due() == 100.0
    assert _drain_due(outbox, now=100.0) == [1]


def test_a_reordered_delivery_goes_right_after_the_next_one_to_the_same_url() -> None:
    outbox = Outbox()
    outbox.put(_delivery(1, reordered=True), hold=True)
    outbox.put(_delivery(2, url="http://other/hook"))
    outbox.put(_delivery(3))
    outbox.put(_delivery(4))
    assert _drain_due(outbox, now=0.0) == [2, 3, 1, 4]


def test_a_flush_takes_everything_including_late_and_held_deliveries() -> None:
    outbox = Outbox()
    outbox.put(_delivery(1, due=1e9, late=True))
    outbox.put(_delivery(2, reordered=True), hold=True)
    assert outbox.pop_due(0.0) is None
    assert len(outbox) == 2
    taken = []
    while (d := outbox.pop_any()) is not None:
        taken.append(d.number)
    assert taken == [1, 2]
    assert outbox.next_due() is None
