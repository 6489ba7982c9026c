"""Helpers for the projector's integration tests and benchmark (imported explicitly, not a conftest)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from services.common.codec import job_event_codec, job_state_codec
from services.common.events import JobEvent, JobState, Source, job_observed, snapshot_completed
from services.common.kafka import AsyncProducer, base_config
from services.common.metrics import new_registry
from services.common.partitioning import murmur2_partition
from services.common.settings import KafkaSettings, MongoSettings
from services.projector.metrics import ProjectorMetrics
from services.projector.service import Projector
from services.projector.settings import ProjectorSettings
from services.projector.view import mongo_client
from tests.helpers import consume

T0 = datetime(2025, 3, 1, 8, 0, 0, 123456, tzinfo=UTC)


def trio_job(number: int, status: str = "Open", modified: int = 0, positions: int = 1, **extra: Any) -> dict:
    """A Trio job; ``modified`` is seconds after T0. Carries fields we do not know, as Trio may."""
    return {
        "Number": number,
        "Title": extra.pop("Title", f"Job {number}"),
        "JobStatus": status,
        "JobStatusReason": extra.pop("JobStatusReason", "Filled" if status == "Closed" else None),
        "ModifiedDateUtc": (T0 + timedelta(seconds=modified)).strftime("%Y-%m-%dT%H:%M:%S.%f0Z"),
        "NumberOfCurrentOpenPositions": positions,
        "Facility.Code": "N-1",  # a key FerretDB cannot store as is
        "Shifts": [{"$start": "07:00"}],
        **extra,
    }


def observed(number: int, status: str = "Open", modified: int = 0, positions: int = 1, *, at: int = 0,
             source: Source = Source.WEBHOOK, snapshot_id: str | None = None, **extra: Any) -> JobEvent:
    """An observation received ``at`` seconds after T0."""
    return job_observed(trio_job(number, status, modified, positions, **extra), source,
                        observed_at=T0 + timedelta(seconds=at), snapshot_id=snapshot_id)


def numbers_on(partition: int, partitions: int, count: int, start: int = 1000) -> list[int]:
    """Job numbers whose key lands on ``partition``."""
    found, n = [], start
    while len(found) < count:
        if murmur2_partition(str(n).encode(), partitions) == partition:
            found.append(n)
        n += 1
    return found


async def publish(producer: AsyncProducer, settings: KafkaSettings, events: Iterable[JobEvent]) -> None:
    codec = job_event_codec()
    await asyncio.gather(*(producer.send(settings.events_topic, codec.encode(e), e.key) for e in events))


async def publish_marker(producer: AsyncProducer, settings: KafkaSettings, snapshot: str, started_at: datetime,
                         job_count: int, *, suspicious: bool = False, partitions: int = 3) -> None:
    """A SnapshotCompleted on every partition, as the poller sends it."""
    marker = snapshot_completed(snapshot, started_at, job_count, suspicious=suspicious)
    codec = job_event_codec()
    for p in range(partitions):
        await producer.send(settings.events_topic, codec.encode(marker), marker.key, partition=p)


def projector_settings(**overrides: Any) -> ProjectorSettings:
    values: dict[str, Any] = dict(group_id=f"projector-{uuid.uuid4().hex[:8]}", ops_port=0, session_timeout_ms=6000,
                                  batch_size=200, poll_timeout_s=0.2, backoff_initial_s=0.2, backoff_max_s=2.0,
                                  lag_interval_s=0.5)
    values.update(overrides)
    return ProjectorSettings(**values)


def end_offsets(settings: KafkaSettings) -> dict[int, int]:
    consumer = Consumer({**base_config(settings), "group.id": f"probe-{uuid.uuid4().hex}"})
    try:
        topic = settings.events_topic
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}
    finally:
        consumer.close()


def committed_offsets(settings: KafkaSettings, group_id: str) -> dict[int, int]:
    consumer = Consumer({**base_config(settings), "group.id": group_id})
    try:
        topic = settings.events_topic
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        tps = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
        return {tp.partition: tp.offset for tp in tps}
    finally:
        consumer.close()


def caught_up(committed: dict[int, int], ends: dict[int, int]) -> bool:
    return all(end == 0 or committed.get(p, -1) >= end for p, end in ends.items())


class Running:
    """An in-process projector driven step by step (no background task, no sleeps)."""

    def __init__(self, settings: ProjectorSettings, kafka: KafkaSettings, mongo: MongoSettings) -> None:
        self.registry = new_registry()
        self.metrics = ProjectorMetrics(self.registry)
        self.projector = Projector(settings, kafka, mongo, self.metrics)
        self.kafka = kafka

    async def __aenter__(self) -> Running:
        await self.projector.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.projector.close()

    async def drain(self, timeout: float = 90.0) -> None:
        """Step until every event published so far is committed (raises after ``timeout``: a hang)."""
        ends = end_offsets(self.kafka)
        deadline = time.monotonic() + timeout
        while True:
            # The local positions first: asking the group coordinator after every step would slow the
            # benchmark that uses this; the committed offsets are the truth, asked once positions agree.
            positions = await self.projector.positions()
            unknown = not positions or min(positions.values()) < 0  # nothing fetched yet (maybe nothing to)
            if (unknown or caught_up(positions, ends)) and caught_up(await self.projector.committed(), ends):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"projector did not catch up with {ends} in {timeout}s")
            await self.projector.step()

    def sample(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


async def view_docs(mongo: MongoSettings, collection: str = "jobs") -> dict[int, dict]:
    client = mongo_client(mongo.uri, 5000)
    try:
        return {doc["_id"]: doc async for doc in client[mongo.database][collection].find({})}
    finally:
        await client.close()


def without_group(view: dict[int, dict]) -> dict[int, dict]:
    """The view as two projectors in different consumer groups must agree on it: which group read the
    event behind a document's last change is the one field that tells them apart."""
    return {n: {**doc, "last_change": {**doc["last_change"], "group": None}} for n, doc in view.items()}


def feed(settings: KafkaSettings, expected: int, timeout: float = 20.0) -> list[JobState]:
    codec = job_state_codec()
    return [codec.decode(m.value()) for m in consume(settings, settings.state_topic, expected, timeout)]


def job_of(doc: dict) -> dict:
    return json.loads(doc["job_json"])
