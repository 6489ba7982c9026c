"""Leader election through Kafka, and reading the checkpoint, with one consumer on ``poller.state``.

Every poller instance joins one consumer group subscribed to the one-partition, compacted ``poller.state``
topic. Kafka assigns that partition to exactly one member: it is the active poller. It reads the
partition from the beginning (offsets are never committed) up to its end, which gives it the latest
checkpoint of every key, and only then starts syncing. A standby holds nothing and waits.

A leader that stops cleanly leaves the group (immediate handover); one that dies is dropped after the
session timeout (6 s by default). ``cooperative-sticky`` assignment means a standby joining does not take
the partition from a working leader. A leader cut off from Kafka loses the assignment after the session
timeout on its side too (librdkafka reports it lost) and abandons its sync. Two leaders overlapping for a
moment is harmless: observations are idempotent and each checkpoint written is one whose events were all
acknowledged.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from services.common.errors import DecodeError
from services.common.kafka import base_config
from services.common.logs import get_logger
from services.common.settings import KafkaSettings
from services.poller.checkpoint import Checkpoint

log = get_logger("poller.election")

POLL_S = 0.2


@dataclass(frozen=True)
class Term:
    """One period of leadership, with the checkpoints read when it began."""

    number: int
    checkpoints: dict[str, Checkpoint] = field(default_factory=dict)


class Coordinator:
    def __init__(
        self,
        kafka: KafkaSettings,
        group_id: str,
        *,
        session_timeout_ms: int = 6000,
        on_leadership: Callable[[bool], None] | None = None,
    ) -> None:
        self.topic = kafka.poller_state_topic
        self._config = {
            **base_config(kafka),
            "group.id": group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": True,
            "session.timeout.ms": session_timeout_ms,
            "heartbeat.interval.ms": max(500, session_timeout_ms // 3),
            "partition.assignment.strategy": "cooperative-sticky",
        }
        self._on_leadership = on_leadership
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        # Thread-side state (touched only by the consumer thread).
        self._assigned = False
        self._loaded = False
        self._term = 0
        self._values: dict[str, Checkpoint | None] = {}
        # Loop-side state.
        self._leader: Term | None = None
        self._changed = asyncio.Event()
        self.error: str | None = None

    # --- loop side

    @property
    def term(self) -> Term | None:
        """The current term while this instance is the leader, else None."""
        return self._leader

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        consumer = Consumer({**self._config, "error_cb": self._on_error})
        consumer.subscribe([self.topic], on_assign=self._assign, on_revoke=self._revoke, on_lost=self._revoke)
        self._thread = threading.Thread(target=self._run, args=(consumer,), name="poller-election", daemon=True)
        self._thread.start()
        log.info("election_joined", topic=self.topic, group_id=self._config["group.id"])

    async def stop(self) -> None:
        """Leave the group (the standby takes over at once) and stop the thread."""
        self._stopping.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 15.0)
            self._thread = None
        self._set_leader(None)

    async def wait_change(self) -> None:
        """Return when leadership is gained or lost (check ``term`` after)."""
        await self._changed.wait()
        self._changed.clear()

    def _set_leader(self, term: Term | None) -> None:
        was = self._leader is not None
        self._leader = term
        self._changed.set()
        if term is not None:
            log.info("leadership_gained", term=term.number, checkpoints=sorted(term.checkpoints))
        elif was:
            log.warning("leadership_lost")
        if self._on_leadership is not None and was != (term is not None):
            self._on_leadership(term is not None)

    def _post(self, term: Term | None) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._set_leader, term)

    # --- consumer thread

    def _on_error(self, err: KafkaError) -> None:
        self.error = err.str()
        log.warning("election_kafka_error", error=err.str())

    def _assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if any(p.topic == self.topic and p.partition == 0 for p in partitions):
            self._assigned = True
            self._loaded = False
            self._values = {}
            self._term += 1
            log.info("election_partition_assigned", term=self._term)

    def _revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if self._assigned and any(p.topic == self.topic and p.partition == 0 for p in partitions):
            self._assigned = False
            self._loaded = False
            self._post(None)

    def _loaded_now(self) -> None:
        self._loaded = True
        found = {k: v for k, v in self._values.items() if v is not None}
        self._post(Term(self._term, found))

    def _run(self, consumer: Consumer) -> None:
        try:
            while not self._stopping.is_set():
                try:
                    msg = consumer.poll(POLL_S)
                except KafkaException as exc:
                    log.warning("election_poll_failed", error=str(exc))
                    continue
                if msg is None:
                    if self._assigned and not self._loaded and self._at_end(consumer):
                        self._loaded_now()
                    continue
                error = msg.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        if self._assigned and not self._loaded:
                            self._loaded_now()
                    else:
                        log.warning("election_consume_error", error=error.str())
                    continue
                self._read(msg.key(), msg.value(), msg.offset() or 0)
        finally:
            try:
                consumer.close()  # leaves the group: the standby is assigned at once
            except KafkaException as exc:
                log.warning("election_close_failed", error=str(exc))
            if self._assigned:
                self._assigned = False
                self._post(None)

    def _at_end(self, consumer: Consumer) -> bool:
        """An empty partition may report no EOF event on some brokers; compare position and high watermark."""
        try:
            tp = TopicPartition(self.topic, 0)
            low, high = consumer.get_watermark_offsets(tp, timeout=2.0, cached=False)
            if high <= low:
                return True
            position = consumer.position([tp])[0].offset
            return position >= high
        except KafkaException:
            return False

    def _read(self, key: bytes | None, value: bytes | None, offset: int) -> None:
        if key is None:
            return
        name = key.decode(errors="replace")
        if value is None:  # a tombstone: an operator reset this checkpoint
            self._values[name] = None
            return
        try:
            self._values[name] = Checkpoint.from_json(value)
        except DecodeError as exc:
            # Keep the last good one: a garbled record must not send the poller back to a full sync loop.
            log.error("checkpoint_unreadable", key=name, offset=offset, error=str(exc))
