"""Operator commands behind ``jobsync projector closures ...`` and ``jobsync projector dlq ...``."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from services.common.codec import job_state_codec
from services.common.dlq import DeadLetter, parse_dlq_headers
from services.common.errors import JobSyncError
from services.common.events import EventType, JobEvent, Source
from services.common.kafka import AsyncProducer, base_config, coordinates, message_headers
from services.common.logs import get_logger
from services.common.metrics import new_registry
from services.common.settings import KafkaSettings, MongoSettings
from services.projector.applier import Applied, Applier
from services.projector.metrics import ProjectorMetrics
from services.projector.settings import ProjectorSettings
from services.projector.view import View, mongo_client

log = get_logger("projector.operations")


class OperationError(JobSyncError):
    """An operator command cannot do what was asked; the message says why and what to do."""


# ---- closures


async def list_snapshots(settings: ProjectorSettings, mongo: MongoSettings, status: str | None) -> list[dict]:
    client = mongo_client(mongo.uri, settings.mongo_timeout_ms)
    try:
        view = View(client, mongo.database, settings.jobs_collection, settings.snapshots_collection,
                    write_chunk=settings.write_chunk)
        return await view.snapshot_records(status=status)
    finally:
        await client.close()


@dataclass
class ClosureReport:
    snapshot_id: str
    partitions: list[int]
    candidates: int
    closed: int


async def apply_snapshot(
    snapshot_id: str, settings: ProjectorSettings, kafka: KafkaSettings, mongo: MongoSettings
) -> ClosureReport:
    """Apply a guarded snapshot's closures after review: each job is re-checked against the view first,
    so a job seen since the snapshot began stays open. The closures reach the change feed like any other.
    """
    client = mongo_client(mongo.uri, settings.mongo_timeout_ms)
    producer = AsyncProducer(kafka)
    try:
        view = View(client, mongo.database, settings.jobs_collection, settings.snapshots_collection,
                    write_chunk=settings.write_chunk)
        records = await view.snapshot_records(snapshot_id=snapshot_id, status="pending")
        if not records:
            raise OperationError(
                f"no pending closures for snapshot {snapshot_id!r}: see `jobsync projector closures list`"
            )
        applier = Applier(view, settings, ProjectorMetrics(new_registry()))
        await producer.start()
        codec = job_state_codec()
        total = closed = 0
        for record in records:
            marker = JobEvent(
                event_id=record["marker_event_id"], event_type=EventType.SNAPSHOT_COMPLETED, source=Source.POLL_FULL,
                observed_at=record["recorded_at"], snapshot_id=snapshot_id, started_at=record["started_at"],
            )
            out = Applied()
            count = await applier.close(marker, record["candidates"], out)
            for state in out.records:
                await producer.send(kafka.state_topic, codec.encode(state), state.key)
            await view.mark_announced(out.operator_changes)
            await view.mark_snapshot_applied(record["_id"], count)
            log.info("guarded closures applied", snapshot_id=snapshot_id, partition=record["partition"],
                     candidates=len(record["candidates"]), closed=count)
            total += len(record["candidates"])
            closed += count
        return ClosureReport(snapshot_id, [r["partition"] for r in records], total, closed)
    finally:
        await producer.stop()
        await client.close()


# ---- dead letters


@dataclass
class DlqRecord:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    letter: DeadLetter

    @property
    def coords(self) -> str:
        return f"{self.partition}:{self.offset}"


def read_dlq(kafka: KafkaSettings, *, keep: Callable[[DlqRecord], bool] = lambda r: True,
             timeout: float = 10.0) -> list[DlqRecord]:
    """Every record of jobs.dlq, from the beginning to the end as of now (no consumer group, no commit)."""
    consumer = Consumer({**base_config(kafka), "group.id": f"jobsync-dlq-reader-{uuid.uuid4().hex}",
                         "enable.auto.commit": False})
    topic = kafka.dlq_topic
    try:
        metadata = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
        if metadata is None or metadata.error is not None:
            raise OperationError(f"topic {topic} not found: is JOBSYNC_KAFKA_TOPIC_PREFIX right?")
        ends = {}
        for partition in metadata.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout)
            if high > low:
                ends[partition] = high
        if not ends:
            return []
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        found: list[DlqRecord] = []
        done: set[int] = set()
        while len(done) < len(ends):
            msg = consumer.poll(timeout)
            if msg is None:
                raise OperationError(f"reading {topic} stalled before its end; try again")
            if msg.error() is not None:
                continue
            where = coordinates(msg)
            if where.offset + 1 >= ends[where.partition]:
                done.add(where.partition)
            if where.offset >= ends[where.partition]:
                continue
            headers = message_headers(msg)
            record = DlqRecord(where.partition, where.offset, msg.key(), msg.value(), headers,
                               parse_dlq_headers(list(headers)))
            if keep(record):
                found.append(record)
        return sorted(found, key=lambda r: (r.partition, r.offset))
    except KafkaException as exc:
        raise OperationError(f"cannot read {topic}: {exc}") from exc
    finally:
        consumer.close()


async def replay_dlq(kafka: KafkaSettings, records: list[DlqRecord]) -> list[tuple[DlqRecord, str]]:
    """Re-publish records to the topic they came from (original key and bytes, audit headers kept)."""
    producer = AsyncProducer(kafka)
    await producer.start()
    done = []
    try:
        for record in records:
            topic = record.letter.original_topic or kafka.events_topic
            headers = [(k, v) for k, v in record.headers if not k.startswith("dlq-")]
            headers.append(("dlq-replayed-from", f"{kafka.dlq_topic}:{record.coords}".encode()))
            delivered = await producer.send(topic, record.value, record.key, headers=headers)
            done.append((record, f"{delivered.topic}:{delivered.partition}:{delivered.offset}"))
            log.info("dead letter replayed", dlq_partition=record.partition, dlq_offset=record.offset, topic=topic,
                     reason=record.letter.reason)
    finally:
        await producer.stop()
    return done


def describe_time(value: datetime | None) -> str:
    return value.isoformat() if value else "-"
