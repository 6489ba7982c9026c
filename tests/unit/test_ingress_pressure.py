"""The HTTP side under pressure, with a hand-written publisher fake (no broker claims are made here).

What is proved: a full local queue or an unacknowledged send answers 503 with Retry-After and never a
2xx; the in-flight cap refuses the request over it without reading it; no answer waits for a send
that has not been acknowledged.
"""

from __future__ import annotations

import asyncio

import pytest

from services.common.errors import PublishError, QueueFullError
from services.common.kafka import Delivered
from services.common.metrics import new_registry
from services.common.settings import KafkaSettings
from tests.ingress_support import JSON, PATH, body_of, ingress_client, ingress_settings, trio_job

pytestmark = pytest.mark.unit

KAFKA = KafkaSettings(bootstrap_servers="127.0.0.1:1", topic_prefix="unit", create_topics=False)


class FakePublisher:
    """Records sends; each send waits for ``gate`` and then raises ``error`` or acknowledges."""

    def __init__(self, error: Exception | None = None, gated: bool = False) -> None:
        self.error = error
        self.gate = asyncio.Event()
        if not gated:
            self.gate.set()
        self.sends: list[tuple[str, bytes | None, bytes | None]] = []
        self.waiting = 0
        self.changed = asyncio.Condition()
        self.started = False

    async def until_waiting(self, count: int) -> None:
        """Return once ``count`` sends are waiting for their acknowledgement."""
        async with self.changed:
            await self.changed.wait_for(lambda: self.waiting >= count)

    async def start(self) -> None:
        self.started = True

    async def send(self, topic, value, key=None, *, headers=None, partition=None) -> Delivered:
        self.sends.append((topic, key, value))
        async with self.changed:
            self.waiting += 1
            self.changed.notify_all()
        try:
            await self.gate.wait()
        finally:
            self.waiting -= 1
        if self.error is not None:
            raise self.error
        return Delivered(topic, 0, len(self.sends) - 1)

    def reachable(self, timeout: float = 2.0) -> bool:
        return self.error is None

    def queued(self) -> int:
        return self.waiting

    async def stop(self, timeout: float = 10.0) -> int:
        self.started = False
        return 0


@pytest.mark.parametrize(
    "error", [QueueFullError("local producer queue is full"), PublishError("Local: Message timed out")]
)
async def test_kafka_refusing_the_event_answers_503_with_retry_after(error: Exception) -> None:
    publisher = FakePublisher(error)
    registry = new_registry()
    settings = ingress_settings(retry_after_seconds=7)
    async with ingress_client(settings, KAFKA, producer=publisher, registry=registry) as client:
        response = await client.post(PATH, data=body_of(trio_job(5)), headers=JSON)
        reply = await response.json()
        ready = await client.get("/readyz")
    assert response.status == 503
    assert response.headers["Retry-After"] == "7"
    assert reply["status"] == "unavailable" and reply["error"] == "unavailable"
    assert "retry later" in reply["message"]
    assert "Message timed out" not in reply["message"]  # Kafka's words go to the log, not to the caller
    assert len(publisher.sends) == 1
    assert registry.get_sample_value("ingress_requests_total", {"outcome": "unavailable"}) == 1
    kind = "queue_full" if isinstance(error, QueueFullError) else "not_acknowledged"
    assert registry.get_sample_value("ingress_publish_failures_total", {"destination": "events", "kind": kind}) == 1
    assert registry.get_sample_value("ingress_requests_total", {"outcome": "accepted"}) == 0
    assert ready.status == 503


async def test_a_refusal_whose_dead_letter_is_not_acknowledged_becomes_503() -> None:
    publisher = FakePublisher(PublishError("broker down"))
    async with ingress_client(ingress_settings(), KAFKA, producer=publisher) as client:
        response = await client.post(PATH, data=b"{not json", headers=JSON)
        reply = await response.json()
    assert response.status == 503  # the payload is authentic: it must not be lost behind a 400
    assert "Retry-After" in response.headers
    assert "dead_lettered" not in reply
    assert publisher.sends[0][0] == KAFKA.dlq_topic


async def test_no_answer_is_sent_before_the_acknowledgement() -> None:
    publisher = FakePublisher(gated=True)
    async with ingress_client(ingress_settings(), KAFKA, producer=publisher) as client:
        request = asyncio.ensure_future(client.post(PATH, data=body_of(trio_job(9)), headers=JSON))
        await publisher.until_waiting(1)
        assert not request.done()  # the send is not acknowledged, so there is no answer yet
        publisher.gate.set()
        response = await request
        assert response.status == 200


async def test_the_in_flight_cap_refuses_the_request_over_it_with_503() -> None:
    publisher = FakePublisher(gated=True)
    registry = new_registry()
    settings = ingress_settings(max_in_flight=3)
    async with ingress_client(settings, KAFKA, producer=publisher, registry=registry) as client:
        held = [
            asyncio.ensure_future(client.post(PATH, data=body_of(trio_job(n)), headers=JSON)) for n in range(3)
        ]
        await publisher.until_waiting(3)
        assert registry.get_sample_value("ingress_in_flight_requests") == 3
        over = await client.post(PATH, data=body_of(trio_job(99)), headers=JSON)
        over_reply = await over.json()
        publisher.gate.set()
        answers = [await response for response in held]
    assert over.status == 503 and over_reply["error"] == "overloaded"
    assert "Retry-After" in over.headers
    assert [r.status for r in answers] == [200, 200, 200]
    assert len(publisher.sends) == 3  # the refused request was never handed to Kafka
    assert registry.get_sample_value("ingress_in_flight_requests") == 0
    assert registry.get_sample_value("ingress_requests_total", {"outcome": "overloaded"}) == 1
