"""The sync's ordering guarantees with a fake producer and a scripted Trio (real Kafka: integration tests).

What is proven here: markers go out only after every job was acknowledged, one per partition; the
checkpoint is written last; a failure or a cancellation at any point writes no marker and no checkpoint.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from pydantic import SecretStr

from services.common.codec import job_event_codec
from services.common.dlq import parse_dlq_headers
from services.common.errors import PublishError
from services.common.events import EventType, JobEvent, Source
from services.common.kafka import Delivered
from services.common.metrics import new_registry
from services.common.settings import KafkaSettings
from services.poller.checkpoint import Checkpoint
from services.poller.client import TrioClient
from services.poller.metrics import PollerMetrics
from services.poller.publishing import Publisher
from services.poller.schedule import SyncKind
from services.poller.settings import PollerSettings
from services.poller.sync import Syncer

pytestmark = pytest.mark.unit

KAFKA = KafkaSettings(topic_prefix="unit")
T0 = datetime(2024, 9, 1, 12, 0, tzinfo=UTC)


def job(n: int) -> dict:
    return {"Number": n, "JobStatus": "Open", "ModifiedDateUtc": "2024-08-01T00:00:00Z", "Title": f"job {n}"}


class FakeProducer:
    """Records every send in acknowledgement order; can fail one send or hold acks behind a gate."""

    def __init__(self, fail_on_number: int | None = None) -> None:
        self.acked: list[tuple[str, bytes | None, bytes | None, int | None]] = []
        self.fail_on_number = fail_on_number
        self.gate: asyncio.Event | None = None
        self.sent = 0
        self.four_sent = asyncio.Event()
        self.headers: list[dict[str, bytes]] = []

    async def send(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        *,
        headers: Sequence[tuple[str, bytes | str]] | None = None,
        partition: int | None = None,
    ) -> Delivered:
        self.sent += 1
        if self.sent >= 4:
            self.four_sent.set()
        if self.gate is not None:
            await self.gate.wait()
        await asyncio.sleep(0)
        if self.fail_on_number is not None and key == str(self.fail_on_number).encode():
            raise PublishError(f"delivery to {topic} failed: broker said no")
        self.acked.append((topic, key, value, partition))
        self.headers.append({k: v.encode() if isinstance(v, str) else v for k, v in headers or ()})
        return Delivered(topic, partition or 0, len(self.acked))

    def partitions_of(self, topic: str, timeout: float = 10.0) -> list[int]:
        return [0, 1, 2]

    def events(self) -> list[tuple[JobEvent, int | None]]:
        codec = job_event_codec()
        return [(codec.decode(v), p) for t, _, v, p in self.acked if t == KAFKA.events_topic]

    def on(self, topic: str) -> list[tuple[str, bytes | None, bytes | None, int | None]]:
        return [a for a in self.acked if a[0] == topic]


def syncer(
    body: bytes,
    producer: FakeProducer,
    *,
    checkpoint: Checkpoint | None = None,
    seen: list[httpx.Request] | None = None,
    **settings,
) -> Syncer:
    def handle(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        return httpx.Response(200, content=body)

    client = TrioClient("http://trio.test/t/api/v3", SecretStr("k"), transport=httpx.MockTransport(handle))
    config = PollerSettings(api_key="k", base_url="http://trio.test/t/api/v3", publish_window=4, **settings)
    return Syncer(
        config,
        KAFKA,
        client,
        Publisher(producer, KAFKA),
        PollerMetrics(new_registry()),
        checkpoint=checkpoint,
        clock=lambda: T0,
    )


async def test_a_full_sync_publishes_every_job_then_one_marker_per_partition_then_the_checkpoint() -> None:
    producer = FakeProducer()
    result = await syncer(json.dumps([job(n) for n in range(1, 11)]).encode(), producer).run(SyncKind.FULL)
    assert result.outcome == "succeeded", result.error
    events = producer.events()
    observed = [e for e, _ in events if e.event_type is EventType.JOB_OBSERVED]
    markers = [(e, p) for e, p in events if e.event_type is EventType.SNAPSHOT_COMPLETED]
    assert sorted(e.job_number for e in observed) == list(range(1, 11))
    assert {e.snapshot_id for e in observed} == {result.snapshot_id}
    assert all(e.source is Source.POLL_FULL for e in observed)
    # Every marker was acknowledged after the last job, one per partition, naming the snapshot.
    assert len(events) == 13
    assert all(e.event_type is EventType.SNAPSHOT_COMPLETED for e, _ in events[10:])
    assert sorted(p for _, p in markers) == [0, 1, 2]
    assert {(e.snapshot_id, e.job_count, e.started_at) for e, _ in markers} == {(result.snapshot_id, 10, T0)}
    assert len({e.event_id for e, _ in markers}) == 3
    # The checkpoint is the very last thing written.
    assert producer.acked[-1][0] == KAFKA.poller_state_topic
    saved = Checkpoint.from_json(producer.acked[-1][2] or b"")
    assert (saved.cursor, saved.last_full_count, saved.last_snapshot_id) == (T0, 10, result.snapshot_id)


async def test_a_failed_delivery_fails_the_sync_with_no_marker_and_no_checkpoint() -> None:
    producer = FakeProducer(fail_on_number=5)
    s = syncer(json.dumps([job(n) for n in range(1, 11)]).encode(), producer)
    result = await s.run(SyncKind.FULL)
    assert result.outcome == "failed" and "broker said no" in (result.error or "")
    assert not any(e.event_type is EventType.SNAPSHOT_COMPLETED for e, _ in producer.events())
    assert producer.on(KAFKA.poller_state_topic) == []
    assert s.checkpoint == Checkpoint()


async def test_a_record_without_a_number_fails_the_sync_before_publishing_and_is_dead_lettered() -> None:
    producer = FakeProducer()
    records = [job(1), {"JobStatus": "Open", "Title": "no number"}, job(3)]
    result = await syncer(json.dumps(records).encode(), producer).run(SyncKind.FULL)
    assert result.outcome == "failed" and "record #1" in (result.error or "") and "Number" in (result.error or "")
    assert producer.events() == [] and producer.on(KAFKA.poller_state_topic) == []
    [(_, key, value, _)] = producer.on(KAFKA.dlq_topic)
    assert key is None and json.loads(value or b"") == records[1]


async def test_a_malformed_body_is_dead_lettered_capped_and_fails_the_sync() -> None:
    producer = FakeProducer()
    body = b"[" + b'{"Number": 1, "JobStatus": "Open"},' * 2000  # truncated JSON, ~70 KB
    result = await syncer(body, producer, dlq_max_bytes=4096).run(SyncKind.FULL)
    assert result.outcome == "failed" and "not valid JSON" in (result.error or "")
    [(_, _, value, _)] = producer.on(KAFKA.dlq_topic)
    assert value == body[:4096]
    assert producer.on(KAFKA.poller_state_topic) == []


async def test_cancelling_a_sync_mid_publish_abandons_it_without_marker_or_checkpoint() -> None:
    producer = FakeProducer()
    producer.gate = asyncio.Event()  # no acknowledgement ever arrives
    s = syncer(json.dumps([job(n) for n in range(1, 11)]).encode(), producer)
    task = asyncio.create_task(s.run(SyncKind.FULL))
    await producer.four_sent.wait()  # the window (4) is full: the sync is waiting for acks
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    producer.gate.set()
    await asyncio.sleep(0)
    assert producer.on(KAFKA.poller_state_topic) == [] and s.checkpoint == Checkpoint()
    assert not any(e.event_type is EventType.SNAPSHOT_COMPLETED for e, _ in producer.events())


async def test_an_incremental_asks_from_cursor_minus_overlap_and_advances_to_its_start() -> None:
    producer = FakeProducer()
    seen: list[httpx.Request] = []
    cursor = T0 - timedelta(minutes=5)
    start = Checkpoint(cursor=cursor, last_full_at=cursor, last_full_count=9)
    s = syncer(json.dumps([job(2)]).encode(), producer, checkpoint=start, seen=seen, overlap_s=60)
    result = await s.run(SyncKind.INCREMENTAL)
    assert result.outcome == "succeeded"
    assert seen[0].url.params["modifiedDate"] == "2024-09-01T11:54:00.000000Z"
    [(event, _)] = producer.events()
    assert event.source is Source.POLL_INCREMENTAL and event.snapshot_id is None
    assert s.checkpoint.cursor == T0 and s.checkpoint.last_full_count == 9


async def test_an_incremental_without_a_cursor_is_a_full_sync() -> None:
    producer = FakeProducer()
    result = await syncer(b"[]", producer).run(SyncKind.INCREMENTAL)
    assert result.outcome == "succeeded" and result.snapshot_id is not None and result.markers == 3


async def test_a_much_smaller_listing_is_published_with_a_suspicious_marker() -> None:
    producer = FakeProducer()
    start = Checkpoint(cursor=T0, last_full_at=T0, last_full_count=100)
    result = await syncer(json.dumps([job(1)]).encode(), producer, checkpoint=start).run(SyncKind.FULL)
    assert result.outcome == "succeeded" and result.suspicious
    markers = [e for e, _ in producer.events() if e.event_type is EventType.SNAPSHOT_COMPLETED]
    assert {(m.suspicious, m.expected_count, m.job_count) for m in markers} == {(True, 100, 1)}


async def test_a_resync_publishes_resync_observations_that_carry_the_snapshot_id() -> None:
    producer = FakeProducer()
    result = await syncer(json.dumps([job(1)]).encode(), producer).run(SyncKind.RESYNC)
    events = [e for e, _ in producer.events()]
    assert {e.source for e in events} == {Source.RESYNC}
    assert {e.snapshot_id for e in events} == {result.snapshot_id}


async def test_dead_letters_follow_the_shared_convention_and_say_when_the_body_was_cut() -> None:
    producer = FakeProducer()
    publisher = Publisher(producer, KAFKA)
    await publisher.dead_letter(b"x" * 10, None, "why", max_bytes=4, extra={"sync-id": "s"})
    assert producer.acked[0][:3] == (KAFKA.dlq_topic, None, b"xxxx")
    letter = parse_dlq_headers(list(producer.headers[0].items()))
    assert (letter.reason, letter.origin, letter.original_topic) == ("why", "poller", None)
    assert producer.headers[0]["poller-body-bytes"] == b"10"
    assert producer.headers[0]["poller-body-truncated"] == b"true"
    assert producer.headers[0]["sync-id"] == b"s"
