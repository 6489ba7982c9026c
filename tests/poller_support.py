"""Helpers for the poller's integration tests: settings aimed at a running simulator, reading what the
poller wrote to Kafka, running a whole ``Poller`` in the test's loop, waiting on a condition.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from services.common.codec import job_event_codec
from services.common.events import EventType, JobEvent
from services.common.kafka import base_config
from services.common.metrics import new_registry
from services.common.settings import KafkaSettings
from services.poller.checkpoint import Checkpoint
from services.poller.client import TrioClient
from services.poller.metrics import PollerMetrics
from services.poller.publishing import Publisher
from services.poller.service import Poller
from services.poller.settings import PollerSettings
from services.poller.sync import Syncer
from tests.helpers import consume
from tests.simulator_support import RunningSimulator


def poller_settings(sim: RunningSimulator, **overrides: Any) -> PollerSettings:
    """Settings for a poller against ``sim``: short timeouts and backoff so fault tests stay quick."""
    values: dict[str, Any] = {
        "base_url": sim.base_url,
        "api_key": sim.api_key,
        "ops_host": "127.0.0.1",
        "ops_port": 0,
        "request_timeout_s": 2.0,
        "connect_timeout_s": 2.0,
        "backoff_base_s": 0.05,
        "backoff_max_s": 0.5,
        "sync_budget_s": 60.0,
        "overlap_s": 10.0,
        "shutdown_grace_s": 5.0,
    }
    values.update(overrides)
    return PollerSettings(**values)


@dataclass(frozen=True)
class Read:
    event: JobEvent
    key: bytes | None
    partition: int
    offset: int


def read_events(kafka: KafkaSettings, expected: int, timeout: float = 30.0) -> list[Read]:
    codec = job_event_codec()
    return [
        Read(codec.decode(m.value()), m.key(), m.partition(), m.offset())
        for m in consume(kafka, kafka.events_topic, expected, timeout)
    ]


def observations(reads: list[Read]) -> list[Read]:
    return [r for r in reads if r.event.event_type is EventType.JOB_OBSERVED]


def markers(reads: list[Read]) -> list[Read]:
    return [r for r in reads if r.event.event_type is EventType.SNAPSHOT_COMPLETED]


def read_partition(kafka: KafkaSettings, topic: str, partition: int = 0) -> list[tuple[bytes | None, bytes | None]]:
    """Everything on one partition now, from the beginning to the high watermark (key, value)."""
    consumer = Consumer({**base_config(kafka), "group.id": f"test-{uuid.uuid4().hex}", "enable.auto.commit": False})
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10.0)
        if high <= low:
            return []
        consumer.assign([TopicPartition(topic, partition, OFFSET_BEGINNING)])
        found: list[tuple[bytes | None, bytes | None]] = []
        deadline = time.monotonic() + 30.0
        while time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is None or msg.error():
                continue
            found.append((msg.key(), msg.value()))
            if msg.offset() >= high - 1:
                break
        return found
    finally:
        consumer.close()


def read_checkpoint(kafka: KafkaSettings, name: str = "trio-jobs") -> Checkpoint | None:
    """The latest checkpoint under ``name`` in poller.state, or None when there is none."""
    latest: Checkpoint | None = None
    for key, value in read_partition(kafka, kafka.poller_state_topic):
        if key == name.encode():
            latest = Checkpoint.from_json(value) if value is not None else None
    return latest


async def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Poll ``predicate`` until it holds; fail naming ``what`` if it never does (a deadline, not a timing check)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout:.0f}s waiting for: {what}")
        await asyncio.sleep(0.05)


@asynccontextmanager
async def running_poller(poller: Poller) -> AsyncIterator[Poller]:
    """Run a whole Poller (election, schedule, HTTP) in this loop until the block exits, then stop it."""
    stop = asyncio.Event()
    task = asyncio.create_task(poller.run(stop))
    try:
        await wait_until(lambda: poller.ops_port is not None or task.done(), "the poller's HTTP server")
        if task.done():
            task.result()
        yield poller
    finally:
        stop.set()
        await asyncio.wait_for(task, 60.0)


@asynccontextmanager
async def syncer_for(
    settings: PollerSettings, kafka: KafkaSettings, producer: Any, checkpoint: Checkpoint | None = None, **kwargs: Any
) -> AsyncIterator[Syncer]:
    """A Syncer wired to the real producer and a TrioClient for ``settings`` (closed at the end)."""
    metrics = PollerMetrics(new_registry())
    client = TrioClient.from_settings(settings, metrics)
    try:
        yield Syncer(settings, kafka, client, Publisher(producer, kafka), metrics, checkpoint=checkpoint, **kwargs)
    finally:
        await client.aclose()
