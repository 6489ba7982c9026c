"""The ingress against a real Kafka broker: what is accepted arrives, what is refused does not (or only in
the dead-letter topic, when it passed authentication)."""

from __future__ import annotations

import base64
import json
import time

import pytest
from structlog.testing import capture_logs

from services.common import dlq
from services.common.codec import job_event_codec
from services.common.events import EventType, Source
from services.common.kafka import AsyncProducer, murmur2_partition
from services.common.metrics import new_registry
from services.common.settings import KafkaSettings
from services.ingress.validation import sign
from tests.helpers import consume
from tests.ingress_support import (
    JSON,
    OTHER_SECRET,
    PATH,
    SECRET,
    body_of,
    ingress_client,
    ingress_settings,
    trio_job,
)

pytestmark = pytest.mark.integration

SIGNING_KEY = b"k" * 32


def headers_of(message) -> dict[str, bytes]:
    return dict(message.headers() or [])


def only(messages, key: bytes) -> None:
    """The sentinel sent last is the only record: nothing else was published before it."""
    assert [m.key() for m in messages] == [key]


async def test_accepted_webhooks_arrive_keyed_partitioned_verbatim_and_correlated(
    kafka_settings: KafkaSettings,
) -> None:
    registry = new_registry()
    bodies = {n: body_of(trio_job(n, Extra=f"é-{n}")) for n in range(1001, 1013)}
    replies = {}
    async with ingress_client(ingress_settings(), kafka_settings, registry=registry) as client:
        for n, body in bodies.items():
            secret = SECRET if n % 2 else OTHER_SECRET  # both configured secrets work at once
            response = await client.post(
                f"/trio/webhooks/jobs/{secret}",
                data=body,
                headers={**JSON, "User-Agent": "Trio-Webhooks/1.0"},
            )
            assert response.status == 200, await response.text()
            replies[n] = await response.json()
    messages = consume(kafka_settings, kafka_settings.events_topic, expected=len(bodies))
    assert len(messages) == len(bodies)
    codec = job_event_codec()
    for message in messages:
        event = codec.decode(message.value())
        n = event.job_number
        assert message.key() == str(n).encode()
        assert message.partition() == murmur2_partition(message.key(), 3)
        assert event.event_type is EventType.JOB_OBSERVED and event.source is Source.WEBHOOK
        assert event.job_json == bodies[n].decode()  # verbatim, spacing and unknown fields included
        assert event.job_status == "Open" and event.open_positions == 2
        assert replies[n] == {"status": "accepted", "event_id": event.event_id, "job_number": n}
        headers = headers_of(message)
        assert headers["event-id"] == event.event_id.encode()
        assert headers["http-user-agent"] == b"Trio-Webhooks/1.0"
        assert headers["http-content-type"] == b"application/json"
        assert headers["source-address"] == b"127.0.0.1"
    assert registry.get_sample_value("ingress_requests_total", {"outcome": "accepted"}) == len(bodies)
    assert registry.get_sample_value("ingress_publish_latency_seconds_count", {"destination": "events"}) == len(
        bodies
    )


async def test_confirm_mode_publishes_the_webhook_as_a_hint_and_no_event(
    kafka_settings: KafkaSettings, producer: AsyncProducer
) -> None:
    body = body_of(trio_job(2001))
    async with ingress_client(ingress_settings(confirm_mode=True), kafka_settings) as client:
        response = await client.post(PATH, data=body, headers=JSON)
        reply = await response.json()
    assert response.status == 200 and reply["status"] == "hinted"
    hints = consume(kafka_settings, kafka_settings.hints_topic, expected=1)
    assert [(m.key(), m.value()) for m in hints] == [(b"2001", body)]
    assert headers_of(hints[0])["event-id"] == reply["event_id"].encode()
    await producer.send(kafka_settings.events_topic, b"sentinel", b"sentinel")
    only(consume(kafka_settings, kafka_settings.events_topic, expected=1), b"sentinel")


async def test_unauthenticated_requests_publish_nothing_anywhere(kafka_settings: KafkaSettings) -> None:
    settings = ingress_settings(
        allowed_networks=["198.51.100.0/24"],
        trusted_proxies=["127.0.0.1"],
        signature_required=True,
        signing_secrets=["whsec_" + base64.b64encode(SIGNING_KEY).decode()],
    )
    body = body_of(trio_job(3001))
    allowed = {**JSON, "X-Forwarded-For": "198.51.100.5"}

    def signed(payload: bytes, key: bytes = SIGNING_KEY) -> dict[str, str]:
        stamp = int(time.time())
        return {**allowed, "webhook-id": "msg_1", "webhook-timestamp": str(stamp),
                "webhook-signature": sign(key, "msg_1", stamp, payload)}

    with capture_logs() as logs:
        async with ingress_client(settings, kafka_settings) as client:
            refused = [
                await client.post("/trio/webhooks/jobs/" + "z" * 47, data=body, headers=signed(body)),
                await client.post(PATH, data=body, headers={**signed(body), "X-Forwarded-For": "203.0.113.5"}),
                await client.post(PATH, data=body, headers=signed(body) | {"X-Forwarded-For": ""}),
                await client.post(PATH, data=body, headers=allowed),
                await client.post(PATH, data=body, headers=signed(body, b"x" * 32)),
            ]
            statuses = [r.status for r in refused]
            replies = [await r.json() for r in refused]
            # sentinels, sent last: one accepted event, one dead letter
            accepted = await client.post(PATH, data=body_of(trio_job(3999)), headers=signed(body_of(trio_job(3999))))
            dead = await client.post(PATH, data=b"{oops", headers=signed(b"{oops"))
    assert statuses == [404, 403, 403, 401, 401]
    assert [r["error"] for r in replies] == [
        "unknown_secret", "forbidden_address", "forbidden_address", "bad_signature", "bad_signature"
    ]
    assert not any(r.get("dead_lettered") for r in replies)
    assert (accepted.status, dead.status) == (200, 400)
    only(consume(kafka_settings, kafka_settings.events_topic, expected=1), b"3999")
    only(consume(kafka_settings, kafka_settings.dlq_topic, expected=1), None)
    # the secret never reaches a log line; the path is logged redacted
    handled = [entry for entry in logs if entry["event"] == "webhook_handled"]
    assert len(handled) == 7
    assert all(entry["path"] == "/trio/webhooks/jobs/<redacted>" for entry in handled)
    assert SECRET not in json.dumps(logs, default=str)


async def test_authentic_payloads_that_fail_validation_are_dead_lettered_with_the_reason(
    kafka_settings: KafkaSettings,
) -> None:
    registry = new_registry()
    settings = ingress_settings(max_body_bytes=1024, dlq_body_prefix_bytes=100)
    big = body_of(trio_job(4001, Notes="x" * 5000))
    cases = {
        "too_large": (big, JSON, 413, None),
        "not_json": (b'{"Number": 4002,', JSON, 400, None),
        "unsupported_media_type": (body_of(trio_job(4003)), {"Content-Type": "text/plain"}, 415, "Content-Type"),
        "invalid_job": (body_of(trio_job(4004, ModifiedDateUtc="someday")), JSON, 422, "ModifiedDateUtc"),
        "unsupported_event": (b'{"SubmissionId": 17, "Status": "Submitted"}', JSON, 422, None),
    }
    replies = {}
    async with ingress_client(settings, kafka_settings, registry=registry) as client:
        for name, (body, headers, status, field) in cases.items():
            response = await client.post(PATH, data=body, headers=headers)
            reply = await response.json()
            assert response.status == status, reply
            assert reply["error"] == name and reply["dead_lettered"] is True
            assert reply.get("field") == field
            replies[reply["event_id"]] = name
        sentinel = await client.post(PATH, data=body_of(trio_job(4999)), headers=JSON)
        assert sentinel.status == 200
    letters = consume(kafka_settings, kafka_settings.dlq_topic, expected=len(cases))
    assert len(letters) == len(cases)
    for message in letters:
        headers = headers_of(message)
        name = replies[headers["event-id"].decode()]
        body, *_ = cases[name]
        letter = dlq.parse_dlq_headers(message.headers())
        assert letter.origin == "ingress"
        assert letter.reason.startswith(name + ":")
        assert letter.original_topic == kafka_settings.events_topic
        if name == "too_large":
            assert message.value() == big[:100]
            assert "first 100 bytes" in letter.reason
        else:
            assert message.value() == body
        assert registry.get_sample_value("ingress_dlq_total", {"reason": name}) == 1
    # the invalid job is keyless (it was refused before a key could be trusted); nothing reached events
    only(consume(kafka_settings, kafka_settings.events_topic, expected=1), b"4999")


async def test_ops_endpoints_report_health_readiness_and_metrics(kafka_settings: KafkaSettings) -> None:
    async with ingress_client(ingress_settings(), kafka_settings) as client:
        health = await client.get("/healthz")
        health_reply = await health.json()
        ready = await client.get("/readyz")
        ready_reply = await ready.json()
        await client.post(PATH, data=body_of(trio_job(5001)), headers=JSON)
        metrics = await (await client.get("/metrics")).text()
    assert health.status == 200 and health_reply == {"status": "alive"}
    assert ready.status == 200 and ready_reply["kafka"] == "reachable" and ready_reply["ready"] is True
    assert 'ingress_requests_total{outcome="accepted"} 1.0' in metrics
    assert "ingress_publish_latency_seconds_bucket" in metrics
    assert "ingress_in_flight_requests 0.0" in metrics
    assert SECRET not in metrics


async def test_routing_errors_answer_json_and_never_echo_the_path(kafka_settings: KafkaSettings) -> None:
    async with ingress_client(ingress_settings(), kafka_settings) as client:
        wrong_method = await client.get(PATH)
        wrong_path = await client.post(f"/elsewhere/{SECRET}", data=b"{}", headers=JSON)
        for response in (wrong_method, wrong_path):
            text = await response.text()
            assert SECRET not in text
            assert json.loads(text)["status"] == "rejected"
    assert wrong_method.status == 405 and "POST" in wrong_method.headers["Allow"]
    assert wrong_path.status == 404
