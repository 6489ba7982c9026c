"""The ingress when Kafka goes away and comes back, on a private broker this test stops and restarts."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from services.common.kafka import ensure_topics, standard_topics
from services.common.settings import KafkaSettings
from services.localinfra.servers import KafkaServer, free_port
from tests.ingress_support import JSON, PATH, body_of, event_ids_on, ingress_client, ingress_settings, trio_job

pytestmark = pytest.mark.integration


async def test_a_broker_stopped_during_requests_yields_503s_and_no_2xx_is_lost(
    tmp_path: Path, unique_name: str
) -> None:
    server = KafkaServer("kafka", tmp_path, free_port(), controller_port=free_port(), heap="384m")
    await asyncio.to_thread(server.start)
    try:
        kafka = KafkaSettings(
            bootstrap_servers=server.bootstrap, topic_prefix=unique_name, partitions=3, delivery_timeout_ms=3000
        )
        await asyncio.to_thread(ensure_topics, kafka, standard_topics(kafka))
        answers: list[tuple[int, str, str | None]] = []
        async with ingress_client(ingress_settings(retry_after_seconds=2), kafka) as client:

            async def post(number: int) -> int:
                response = await client.post(PATH, data=body_of(trio_job(number)), headers=JSON)
                reply = await response.json()
                answers.append((response.status, reply["event_id"], response.headers.get("Retry-After")))
                return response.status

            # healthy: every webhook is acknowledged
            assert await asyncio.gather(*(post(n) for n in range(1, 21))) == [200] * 20
            # the broker stops while requests are in flight, and more arrive while it is down
            in_flight = [asyncio.ensure_future(post(n)) for n in range(100, 140)]
            await asyncio.to_thread(server.stop)
            while_down = await asyncio.gather(*(post(n) for n in range(200, 220)))
            ready_while_down = await client.get("/readyz")
            await asyncio.gather(*in_flight)
            assert while_down == [503] * 20
            assert ready_while_down.status == 503
            # the broker returns; the service recovers by itself (no restart of the ingress)
            await asyncio.to_thread(server.start)
            recovered = False
            for attempt in range(120):
                if await post(1000 + attempt) == 200:
                    recovered = True
                    break
                await asyncio.sleep(0.5)
            assert recovered, "the ingress did not accept webhooks again after the broker returned"
            after = await asyncio.gather(*(post(n) for n in range(2000, 2020)))
            assert after == [200] * 20

        assert {status for status, _, _ in answers} <= {200, 503}
        unavailable = [(event_id, retry) for status, event_id, retry in answers if status == 503]
        assert len(unavailable) >= 20
        assert all(retry == "2" for _, retry in unavailable)
        acknowledged = {event_id for status, event_id, _ in answers if status == 200}
        on_topic = await asyncio.to_thread(event_ids_on, kafka, kafka.events_topic, acknowledged)
        assert acknowledged - on_topic == set(), "a webhook answered 2xx is missing from the topic"
    finally:
        await asyncio.to_thread(server.stop)
