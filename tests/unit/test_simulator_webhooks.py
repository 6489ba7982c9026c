"""Webhook delivery to a real receiver on loopback: the bare job, only where Trio fires, and each fault."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from services.simulator import Simulator
from tests.simulator_support import RunningSimulator, start_simulator

pytestmark = pytest.mark.unit


@dataclass
class Receiver:
    """A webhook endpoint that records what it gets; ``status`` is what it answers."""

    url: str = ""
    received: list[tuple[dict, str]] = field(default_factory=list)
    status: int = 200
    arrived: asyncio.Condition = field(default_factory=asyncio.Condition)
    gate: asyncio.Event | None = None  # when set to an Event, each request waits for it
    entered: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def numbers(self) -> list[int]:
        return [job["Number"] for job, _ in self.received]

    async def wait_for(self, count: int) -> None:
        """Until ``count`` deliveries arrived (no deadline here: pytest-timeout bounds the test)."""
        async with self.arrived:
            await self.arrived.wait_for(lambda: len(self.received) >= count)

    async def handle(self, request: web.Request) -> web.Response:
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        self.received.append((json.loads(await request.read()), request.content_type))
        async with self.arrived:
            self.arrived.notify_all()
        return web.Response(status=self.status)


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[Receiver]:
    recv = Receiver()
    app = web.Application()
    app.router.add_post("/hooks/{secret}", recv.handle)
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    recv.url = f"http://{host}:{port}/hooks/s3cret"
    yield recv
    if recv.gate is not None:
        recv.gate.set()
    await runner.cleanup()


@pytest_asyncio.fixture
async def running(receiver: Receiver) -> AsyncIterator[RunningSimulator]:
    sim = Simulator(seed=2, jobs=5)
    sim.register_webhook(receiver.url)
    async with start_simulator(sim) as running:
        yield running


async def test_a_change_is_delivered_in_the_background_as_the_bare_job(
    running: RunningSimulator, receiver: Receiver
) -> None:
    job = running.sim.update_job(200001, Title="Charge RN")
    await receiver.wait_for(1)
    assert receiver.received == [(job, "application/json")]
    assert job == running.sim.job(200001)
    assert await running.sim.flush_webhooks() == 0  # nothing left, and the in-flight one is logged
    (entry,) = running.sim.webhook_log
    assert (entry["number"], entry["status"], entry["outcome"]) == (200001, 200, "delivered")


async def test_every_kind_of_change_but_positions_is_delivered(running: RunningSimulator, receiver: Receiver) -> None:
    sim = running.sim
    number = sim.create_job(JobStatus="Open")["Number"]
    sim.set_positions(number, 0)
    sim.hold(number)
    sim.close(number, reason="Filled")
    sim.reopen(number)
    await sim.flush_webhooks()
    await receiver.wait_for(4)
    assert [(job["Number"], job["JobStatus"]) for job, _ in receiver.received] == [
        (number, "Open"),
        (number, "OnHold"),
        (number, "Closed"),
        (number, "Open"),
    ]
    assert [job["NumberOfCurrentOpenPositions"] for job, _ in receiver.received][1:] == [0, 0, 0]


async def test_inactive_and_other_event_registrations_get_nothing(
    running: RunningSimulator, receiver: Receiver
) -> None:
    sim = running.sim
    other = receiver.url.replace("s3cret", "other")
    sim.register_webhook(other, active=False)
    sim.register_webhook(other, events=["Submission Update"])
    sim.update_job(200002, Title="x")
    await sim.flush_webhooks()
    await receiver.wait_for(1)
    assert [entry["url"] for entry in sim.webhook_log] == [receiver.url]


async def test_flush_delivers_without_a_running_app(receiver: Receiver) -> None:
    sim = Simulator(seed=2, jobs=2)
    sim.register_webhook(receiver.url)
    sim.update_job(200001, Title="x")
    assert await sim.flush_webhooks() == 1
    assert receiver.numbers == [200001]


async def test_a_dropped_webhook_never_arrives(running: RunningSimulator, receiver: Receiver) -> None:
    sim = running.sim
    sim.faults.next_webhook_faults = ["drop_webhook"]
    sim.update_job(200001, Title="lost")
    sim.update_job(200002, Title="kept")
    await sim.flush_webhooks()
    await receiver.wait_for(1)
    assert receiver.numbers == [200002]
    assert [(e["number"], e["outcome"]) for e in sim.webhook_log] == [(200001, "dropped"), (200002, "delivered")]


async def test_a_duplicated_webhook_arrives_twice(running: RunningSimulator, receiver: Receiver) -> None:
    sim = running.sim
    sim.faults.next_webhook_faults = ["duplicate_webhook"]
    job = sim.update_job(200001, Title="twice")
    await sim.flush_webhooks()
    await receiver.wait_for(2)
    assert receiver.received == [(job, "application/json")] * 2
    assert [e["duplicated"] for e in sim.webhook_log] == [False, True]


async def test_a_reordered_webhook_arrives_after_the_next_one(running: RunningSimulator, receiver: Receiver) -> None:
    sim = running.sim
    sim.faults.next_webhook_faults = ["reorder_webhook"]
    first = sim.update_job(200001, Title="v1")
    second = sim.update_job(200001, Title="v2")
    await sim.flush_webhooks()
    await receiver.wait_for(2)
    assert [job for job, _ in receiver.received] == [second, first]  # the older version last: order by stamp!
    assert [e["reordered"] for e in sim.webhook_log] == [False, True]


async def test_a_late_webhook_does_not_hold_up_the_others_and_a_flush_sends_it(
    running: RunningSimulator, receiver: Receiver
) -> None:
    sim = running.sim
    sim.faults.late_seconds = 3600
    sim.faults.next_webhook_faults = ["late_webhook"]
    sim.update_job(200001, Title="late")
    sim.update_job(200002, Title="on time")
    await receiver.wait_for(1)
    assert receiver.numbers == [200002]
    assert sim.pending_webhooks == 1
    assert await sim.flush_webhooks() == 1
    assert receiver.numbers == [200002, 200001]
    assert sim.webhook_log[-1]["late"] is True


async def test_a_registration_that_deactivates_itself_stops_receiving(
    running: RunningSimulator, receiver: Receiver
) -> None:
    sim = running.sim
    sim.faults.next_webhook_faults = ["deactivate_registration"]
    sim.update_job(200001, Title="a")
    sim.update_job(200002, Title="b")
    assert await sim.flush_webhooks() == 0
    assert receiver.received == []
    async with aiohttp.ClientSession(headers=running.headers) as http, http.get(running.base_url + "/Webhooks") as r:
        (registration,) = await r.json()
    assert registration["IsActive"] is False
    assert sim.webhook_log[0]["error"] == "registration deactivated"


async def test_a_failing_receiver_is_logged_and_not_retried(running: RunningSimulator, receiver: Receiver) -> None:
    sim = running.sim
    receiver.status = 500
    sim.update_job(200001, Title="x")
    await receiver.wait_for(1)
    await sim.flush_webhooks()
    assert [(e["status"], e["outcome"]) for e in sim.webhook_log] == [(500, "failed")]
    assert len(receiver.received) == 1


async def test_an_unreachable_receiver_is_logged_as_an_error(running: RunningSimulator) -> None:
    sim = running.sim
    sim.register_webhook("http://127.0.0.1:9/closed-port")
    sim.faults.next_webhook_faults = ["drop_webhook"]  # the receiver fixture's registration gets nothing
    sim.update_job(200001, Title="x")
    await sim.flush_webhooks()
    (entry,) = [e for e in sim.webhook_log if e["outcome"] != "dropped"]
    assert entry["outcome"] == "failed" and entry["status"] is None and entry["error"]


async def test_a_hanging_receiver_does_not_block_the_api(running: RunningSimulator, receiver: Receiver) -> None:
    receiver.gate = asyncio.Event()
    running.sim.update_job(200001, Title="x")
    await receiver.entered.wait()  # the delivery is in flight and stuck
    async with aiohttp.ClientSession(headers=running.headers) as http, http.get(running.base_url + "/Job") as r:
        assert r.status == 200
        assert len(await r.json()) == 5
    assert receiver.received == []
    receiver.gate.set()
    await receiver.wait_for(1)
