"""The projector's consumer loop: jobs.events -> view + jobs.state, committing only what is durable.

One batch at a time: consume up to ``batch_size`` events (in a dedicated thread: confluent-kafka
blocks), decode (bad ones go to jobs.dlq with their coordinates), apply the observations and markers in
offset order (one document write per changed job), publish the change-feed records and dead letters and
wait for Kafka's acks, and only then commit the batch's offsets. Each written document records its last
change and the coordinates of the event that made it, so a change written by a batch that was never
committed is announced when the batch is read again (feed.unannounced). A failure at any step
(MongoDB or Kafka unreachable) pauses the partitions, marks the service not ready and retries the same
batch with backoff; reprocessing is harmless by the projection rules.

Revocation: rebalance callbacks run inside ``consume``, which is only called between batches, after the
previous batch was committed, so a revoked partition has nothing in flight. SIGTERM: the current batch
finishes and is committed, then the consumer leaves the group.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition
from pymongo.errors import PyMongoError

from services.common.codec import job_event_codec, job_state_codec
from services.common.dlq import DeadLetter, dlq_headers
from services.common.errors import DecodeError, JobSyncError
from services.common.events import ChangeKind, EventType, JobEvent, JobState
from services.common.kafka import AsyncProducer, base_config, coordinates, message_headers
from services.common.logs import get_logger
from services.common.settings import KafkaSettings, MongoSettings
from services.projector.applier import Applied, Applier
from services.projector.feed import BatchReader
from services.projector.metrics import ProjectorMetrics
from services.projector.rules import Coords, InvalidEventError, Label, Observation, observation
from services.projector.settings import ProjectorSettings
from services.projector.view import View, mongo_client

log = get_logger("projector")

RETRYABLE = (PyMongoError, JobSyncError, KafkaException)


@dataclass(frozen=True)
class DeadItem:
    message: Message
    reason: str


@dataclass(frozen=True)
class Decoded:
    """A consumed batch, decoded, in offset order: observations, markers and dead letters."""

    items: list[tuple[Observation | JobEvent, Coords]]
    dead: list[DeadItem]
    offsets: dict[tuple[str, int], int]  # (topic, partition) -> next offset to commit
    starts: dict[int, int]  # partition -> the batch's first offset there


def decode_batch(messages: Sequence[Message], group: str | None = None) -> Decoded:
    codec = job_event_codec()
    items: list[tuple[Observation | JobEvent, Coords]] = []
    dead: list[DeadItem] = []
    offsets: dict[tuple[str, int], int] = {}
    starts: dict[int, int] = {}
    for msg in messages:
        if msg.error() is not None:
            continue
        where = coordinates(msg)
        offsets[(where.topic, where.partition)] = where.offset + 1
        starts[where.partition] = min(where.offset, starts.get(where.partition, where.offset))
        coords = Coords(where.partition, where.offset, group)
        try:
            event = codec.decode(msg.value())
            if event.event_type == EventType.JOB_OBSERVED:
                items.append((observation(event), coords))
            else:
                if not event.snapshot_id or event.started_at is None:
                    raise InvalidEventError("SnapshotCompleted: snapshot_id and started_at are required")
                items.append((event, coords))
        except (DecodeError, InvalidEventError) as exc:
            dead.append(DeadItem(msg, str(exc)))
    return Decoded(items, dead, offsets, starts)


class Projector:
    def __init__(
        self,
        settings: ProjectorSettings,
        kafka: KafkaSettings,
        mongo: MongoSettings,
        metrics: ProjectorMetrics,
    ) -> None:
        self.settings = settings
        self.kafka = kafka
        self.mongo_settings = mongo
        self.metrics = metrics
        self.group_id = settings.consumer_group(kafka.topic_prefix)
        self._client = mongo_client(mongo.uri, settings.mongo_timeout_ms)
        self.view = View(self._client, mongo.database, settings.jobs_collection, settings.snapshots_collection,
                    write_chunk=settings.write_chunk)
        self.applier = Applier(self.view, settings, metrics)
        self.producer = AsyncProducer(kafka)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="projector-consumer")
        self._consumer: Consumer | None = None
        self._assigned: set[int] = set()
        self._healthy = False
        self._started = False
        self._last_lag = 0.0
        self._problem: str | None = "starting"

    # ---- readiness

    async def readiness(self) -> tuple[bool, dict[str, object]]:
        ready = self._started and self._healthy
        return ready, {"problem": self._problem, "partitions": sorted(self._assigned), "group": self.group_id}

    def _set_healthy(self, healthy: bool, problem: str | None = None) -> None:
        self._healthy = healthy
        self._problem = problem
        self.metrics.ready.set(1 if healthy else 0)

    # ---- the consumer, always driven from one thread

    async def _kafka(self, fn, *args, **kwargs) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, lambda: fn(*args, **kwargs))

    def _new_consumer(self) -> Consumer:
        config: dict[str, Any] = {
            **base_config(self.kafka),
            "group.id": self.group_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": self.settings.session_timeout_ms,
            "max.poll.interval.ms": self.settings.max_poll_interval_ms,
            "enable.partition.eof": False,
            # A request stuck on a connection to a broker that restarted only fails after this; librdkafka's
            # 60 s default once kept the group rejoin (and so the whole projector) waiting that long.
            "socket.timeout.ms": 10_000,
        }
        if self.settings.group_instance_id:
            config["group.instance.id"] = self.settings.group_instance_id
        return Consumer(config)

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._assigned |= {tp.partition for tp in partitions}
        log.info("partitions assigned", partitions=[tp.partition for tp in partitions])

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Nothing is in flight here: consume() (which runs this callback) is only called after the
        # previous batch was written, published and committed.
        gone = {tp.partition for tp in partitions}
        self._assigned -= gone
        for partition in gone:
            try:
                self.metrics.lag.remove(str(partition))
            except KeyError:
                pass
        log.info("partitions revoked", partitions=sorted(gone))

    # ---- lifecycle

    async def start(self) -> None:
        await self.view.ensure_indexes()
        await self.producer.start()
        # Changes a crashed operator command wrote but may not have announced (the consumer's own are
        # announced when their uncommitted events are read again).
        out = Applied()
        await self.applier.operator_changes_unannounced(out)
        await self._publish(out, [])
        await self.view.mark_announced(out.operator_changes)
        self._consumer = await self._kafka(self._new_consumer)
        await self._kafka(self._consumer.subscribe, [self.kafka.events_topic], on_assign=self._on_assign,
                          on_revoke=self._on_revoke, on_lost=self._on_revoke)
        self._started = True
        self._set_healthy(True)
        log.info("projector started", group=self.group_id, topic=self.kafka.events_topic,
                 database=self.mongo_settings.database)

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set; the batch in hand is always finished and committed first."""
        await self._start_with_retry(stop)
        if stop.is_set():
            await self.close()
            return
        counts = asyncio.create_task(self._count_view(stop), name="projector-view-counts")
        try:
            while not stop.is_set():
                await self.step(stop)
        finally:
            counts.cancel()
            await self.close()

    async def _start_with_retry(self, stop: asyncio.Event) -> None:
        delay = self.settings.backoff_initial_s
        while not stop.is_set():
            try:
                await self.start()
                return
            except RETRYABLE as exc:
                self._set_healthy(False, f"cannot start: {exc}")
                log.warning("start failed, retrying", error=str(exc), retry_in_s=round(delay, 2))
                await _sleep_or_stop(stop, delay)
                delay = min(delay * 2, self.settings.backoff_max_s)

    async def step(self, stop: asyncio.Event | None = None) -> int:
        """Consume one batch and carry it through to the commit; returns how many events it held."""
        assert self._consumer is not None, "start() first"
        messages = await self._kafka(self._consumer.consume, self.settings.batch_size, self.settings.poll_timeout_s)
        for msg in messages:
            if msg.error() is not None:
                log.warning("consumer error", error=str(msg.error()))
        messages = [m for m in messages if m.error() is None]
        if messages:
            await self._handle(messages, stop)
        await self._measure_lag()
        return len(messages)

    async def _handle(self, messages: list[Message], stop: asyncio.Event | None) -> None:
        decoded = decode_batch(messages, self.group_id)
        out = Applied()
        delay = self.settings.backoff_initial_s
        paused = False
        while True:
            stage = "view"
            try:
                await self._apply(decoded, out)
                stage = "kafka"
                await self._publish(out, decoded.dead + refused_items(out, messages))
                stage = "view"
                await self.view.mark_announced(out.operator_changes)
                break
            except RETRYABLE as exc:
                self.metrics.batch_failures.labels(stage).inc()
                self._set_healthy(False, f"{stage}: {exc}")
                if not paused:
                    paused = await self._pause()
                log.warning("batch failed, retrying", stage=stage, error=str(exc), retry_in_s=round(delay, 2),
                            first_offset=messages[0].offset(), partition=messages[0].partition(),
                            events=len(messages))
                # Stopping does not abandon the batch: nothing may be committed past an unwritten event,
                # and a half-done batch would only be redone by the next owner. Keep trying until done.
                await self._measure_lag(paused=paused)  # the lag keeps growing on the dashboards meanwhile
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, self.settings.backoff_max_s)
        if paused:
            await self._resume()
        await self._commit(decoded.offsets)
        self._set_healthy(True)
        self._count(out, decoded, len(messages))

    async def _apply(self, decoded: Decoded, out: Applied) -> None:
        """Observations up to each marker are written before the marker's closure query reads the view."""
        out.begin_attempt(BatchReader(self.group_id, decoded.starts))
        run: list[tuple[Observation, Coords]] = []
        for item, coords in decoded.items:
            if isinstance(item, Observation):
                run.append((item, coords))
                continue
            await self.applier.observations(run, out)
            run = []
            await self.applier.marker(item, coords, out)
        await self.applier.observations(run, out)

    async def _publish(self, out: Applied, dead: Sequence[DeadItem]) -> None:
        codec = job_state_codec()
        sends = [self.producer.send(self.kafka.state_topic, codec.encode(state), state.key) for state in out.records]
        if self.settings.hint_inferred_closures:
            # Ask the poller to confirm each inferred closure with GET /Job/{number}: the job Trio returns
            # (Closed with its reason and version, or still open) then replaces the guess.
            sends.extend(
                self.producer.send(self.kafka.hints_topic, inferred_closure_hint(state), state.key)
                for state in out.records
                if state.change_kind == ChangeKind.CLOSED and state.closure_inferred
            )
        for item in dead:
            msg = item.message
            where = coordinates(msg)
            letter = DeadLetter(item.reason, "projector", where.topic, where.partition, where.offset)
            sends.append(self.producer.send(self.kafka.dlq_topic, msg.value(), msg.key(),
                                            headers=dlq_headers(letter, message_headers(msg))))
            log.warning("event dead-lettered", reason=item.reason, partition=msg.partition(), offset=msg.offset(),
                        key=(msg.key() or b"").decode(errors="replace"))
        if sends:
            await asyncio.gather(*sends)
        for state in out.records:
            self.metrics.feed_records.labels(str(state.change_kind)).inc()

    async def _commit(self, offsets: dict[tuple[str, int], int]) -> None:
        assert self._consumer is not None
        tps = [TopicPartition(topic, partition, offset) for (topic, partition), offset in offsets.items()]
        try:
            await self._kafka(self._consumer.commit, offsets=tps, asynchronous=False)
        except KafkaException as exc:
            # The group moved on (a rebalance while we were retrying): the next owner redoes the batch,
            # which the projection rules make harmless.
            log.warning("commit refused; the batch will be reprocessed by the partition's owner", error=str(exc))

    async def _pause(self) -> bool:
        assert self._consumer is not None
        try:
            assignment = await self._kafka(self._consumer.assignment)
            if assignment:
                await self._kafka(self._consumer.pause, assignment)
            return True
        except KafkaException as exc:
            log.warning("cannot pause", error=str(exc))
            return False

    async def _resume(self) -> None:
        assert self._consumer is not None
        try:
            assignment = await self._kafka(self._consumer.assignment)
            if assignment:
                await self._kafka(self._consumer.resume, assignment)
        except KafkaException as exc:
            log.warning("cannot resume", error=str(exc))

    def _count(self, out: Applied, decoded: Decoded, size: int) -> None:
        for label in out.labels:
            self.metrics.events.labels(str(label)).inc()
        dead = len(decoded.dead) + len(out.refused)
        if dead:
            self.metrics.events.labels("dlq").inc(dead)
        if out.jobs_refused:
            self.metrics.documents_refused.labels("event").inc(out.jobs_refused)
        if out.closures_refused:
            self.metrics.documents_refused.labels("closure").inc(out.closures_refused)
        for source, seconds in out.freshness:
            self.metrics.freshness.labels(source).observe(seconds)
        if out.guard_trips:
            self.metrics.guard_trips.inc(out.guard_trips)
        self.metrics.batch_size.observe(size)
        changes = sum(1 for label in out.labels if label not in _QUIET)
        log.info("batch committed", events=size, changes=changes, feed_records=len(out.records),
                 dead_letters=dead, partitions=sorted({p for _, p in decoded.offsets}))

    async def _measure_lag(self, *, paused: bool = False) -> None:
        """Lag per assigned partition: high watermark minus position.

        While consuming, the high watermark librdkafka caches from each fetch response is used: asking the
        broker instead queues behind the consumer's own long-polling fetch on the same connection (the
        broker answers one request per connection at a time), which cost ~0.4 s per partition and stalled
        the batch loop. While paused (a failing batch) nothing is fetched, so the broker is asked.
        """
        if self._consumer is None or time.monotonic() - self._last_lag < self.settings.lag_interval_s:
            return
        self._last_lag = time.monotonic()
        consumer = self._consumer

        def measure() -> dict[int, int]:
            lags: dict[int, int] = {}
            assignment = consumer.assignment()
            if not assignment:
                return lags
            for tp in consumer.position(assignment):
                low, high = consumer.get_watermark_offsets(tp, timeout=2.0, cached=not paused)
                start = tp.offset if tp.offset >= 0 else low
                if high >= 0 and start >= 0:
                    lags[tp.partition] = max(0, high - start)
            return lags

        try:
            for partition, lag in (await self._kafka(measure)).items():
                self.metrics.lag.labels(str(partition)).set(lag)
        except KafkaException as exc:
            log.debug("cannot measure lag", error=str(exc))

    async def _count_view(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                for status, count in (await self.view.count_by_status()).items():
                    self.metrics.view_jobs.labels(status).set(count)
            except PyMongoError as exc:
                log.debug("cannot count the view", error=str(exc))
            await _sleep_or_stop(stop, self.settings.view_counts_interval_s)

    async def positions(self) -> dict[int, int]:
        """The consumer's next offset per assigned partition (local: no broker round trip)."""
        assert self._consumer is not None
        consumer = self._consumer

        def read() -> dict[int, int]:
            assignment = consumer.assignment()
            return {tp.partition: tp.offset for tp in consumer.position(assignment)} if assignment else {}

        return await self._kafka(read)

    async def committed(self) -> dict[int, int]:
        """The group's committed offset per partition of jobs.events (-1001: none yet)."""
        assert self._consumer is not None
        consumer, topic = self._consumer, self.kafka.events_topic

        def read() -> dict[int, int]:
            partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
            tps = [TopicPartition(topic, p) for p in partitions]
            return {tp.partition: tp.offset for tp in consumer.committed(tps, timeout=10)}

        return await self._kafka(read)

    async def close(self) -> None:
        """Leave the group cleanly, flush the producer, close MongoDB. Safe to call twice."""
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            try:
                await self._kafka(consumer.close)
            except (KafkaException, RuntimeError) as exc:
                log.warning("consumer close failed", error=str(exc))
        await self.producer.stop()
        await self._client.close()
        self._executor.shutdown(wait=False)
        self._started = False
        self._set_healthy(False, "stopped")
        log.info("projector stopped")


_QUIET = {Label.STALE, Label.DUPLICATE, Label.UNCHANGED, Label.SNAPSHOT}


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        pass


def refused_items(out: Applied, messages: Sequence[Message]) -> list[DeadItem]:
    """The events whose job document the view's server refused, as dead letters of their own messages."""
    if not out.refused:
        return []
    by_coords = {(m.partition(), m.offset()): m for m in messages}
    return [DeadItem(by_coords[(coords.partition, coords.offset)], reason) for coords, reason in out.refused]


def inferred_closure_hint(state: JobState) -> bytes:
    """The jobs.hints record asking the poller to confirm an inferred closure (the key names the job)."""
    return json.dumps(
        {"Number": state.job_number, "hint": "inferred_closure", "reason": state.closed_reason}
    ).encode()
