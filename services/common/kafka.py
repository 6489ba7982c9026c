"""The only module that touches confluent-kafka.

- ``AsyncProducer``: idempotent, ``acks=all``, ``murmur2_random`` (Java-compatible) partitioner; connects
  lazily in ``start()``; ``await send(...)`` resolves when the broker acknowledged the message, and raises
  PublishError (or QueueFullError for back-pressure) otherwise.
- ``ensure_topics``: create missing topics with the configured partitions.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from services.common.errors import PublishError, QueueFullError
from services.common.partitioning import murmur2_partition

__all__ = ["AsyncProducer", "Delivered", "TopicSpec", "ensure_topics", "murmur2_partition", "standard_topics"]
from services.common.settings import KafkaSettings

Headers = Sequence[tuple[str, bytes | str]]


def base_config(settings: KafkaSettings) -> dict[str, Any]:
    config: dict[str, Any] = {"bootstrap.servers": settings.bootstrap_servers}
    config.update(settings.extra_config)
    return config


def producer_config(settings: KafkaSettings, **overrides: Any) -> dict[str, Any]:
    config = base_config(settings)
    config.update(
        {
            "enable.idempotence": True,
            "acks": "all",
            "partitioner": "murmur2_random",
            "delivery.timeout.ms": settings.delivery_timeout_ms,
            "queue.buffering.max.messages": settings.queue_max_messages,
            "linger.ms": 5,
        }
    )
    config.update(overrides)
    return config


@dataclass(frozen=True)
class Delivered:
    topic: str
    partition: int
    offset: int


class AsyncProducer:
    """An idempotent producer whose deliveries can be awaited from asyncio code.

    A daemon thread polls librdkafka for delivery reports and resolves each send's future on the loop.
    """

    def __init__(self, settings: KafkaSettings, **overrides: Any) -> None:
        self._config = producer_config(settings, **overrides)
        self._producer: Producer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self._errors: list[KafkaError] = []

    @property
    def started(self) -> bool:
        return self._producer is not None

    async def start(self) -> None:
        if self._producer is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._config.setdefault("error_cb", self._on_error)
        self._producer = Producer(self._config)
        self._stop.clear()
        self._poller = threading.Thread(target=self._poll_loop, name="kafka-producer-poll", daemon=True)
        self._poller.start()

    def _on_error(self, err: KafkaError) -> None:
        # Global errors (broker down, all brokers down) are informative; per-message failures come
        # through delivery reports. Keep the last few for readiness diagnostics.
        self._errors = [*self._errors[-9:], err]

    def _poll_loop(self) -> None:
        assert self._producer is not None
        while not self._stop.is_set():
            self._producer.poll(0.1)

    async def send(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        *,
        headers: Headers | None = None,
        partition: int | None = None,
    ) -> Delivered:
        """Produce one message and wait until the broker acknowledged it (acks=all)."""
        if self._producer is None or self._loop is None:
            raise PublishError("producer not started: call start() first")
        future: asyncio.Future[Delivered] = self._loop.create_future()
        loop = self._loop

        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            if err is not None:
                exc = PublishError(f"delivery to {topic} failed: {err.str()}")
                loop.call_soon_threadsafe(_set_exception, future, exc)
            else:
                result = Delivered(msg.topic() or topic, _int(msg.partition()), _int(msg.offset()))
                loop.call_soon_threadsafe(_set_result, future, result)

        kwargs: dict[str, Any] = {"value": value, "key": key, "on_delivery": on_delivery}
        if headers:
            kwargs["headers"] = list(headers)
        if partition is not None:
            kwargs["partition"] = partition
        try:
            self._producer.produce(topic, **kwargs)
        except BufferError as exc:
            raise QueueFullError(f"local producer queue is full ({len(self._producer)} waiting)") from exc
        except KafkaException as exc:
            raise PublishError(f"cannot produce to {topic}: {exc}") from exc
        return await future

    async def send_many(self, items: Iterable[tuple[str, bytes | None, bytes | None]]) -> list[Delivered]:
        """Produce many (topic, key, value) messages and wait for every acknowledgement."""
        futures = [asyncio.ensure_future(self.send(topic, value, key)) for topic, key, value in items]
        return list(await asyncio.gather(*futures))

    def queued(self) -> int:
        return len(self._producer) if self._producer is not None else 0

    def partitions_of(self, topic: str, timeout: float = 10.0) -> list[int]:
        """The partition ids of a topic, from broker metadata."""
        if self._producer is None:
            raise PublishError("producer not started: call start() first")
        try:
            metadata = self._producer.list_topics(topic, timeout=timeout)
        except KafkaException as exc:
            raise PublishError(f"cannot read metadata of {topic}: {exc}") from exc
        info = metadata.topics.get(topic)
        if info is None or info.error is not None or not info.partitions:
            raise PublishError(f"topic {topic} has no partitions: {getattr(info, 'error', 'unknown topic')}")
        return sorted(info.partitions)

    def reachable(self, timeout: float = 2.0) -> bool:
        """True when a broker answers a metadata request."""
        if self._producer is None:
            return False
        try:
            return bool(self._producer.list_topics(timeout=timeout).brokers)
        except KafkaException:
            return False

    async def stop(self, timeout: float = 10.0) -> int:
        """Flush what is in flight, stop polling; returns the number of messages left undelivered."""
        if self._producer is None:
            return 0
        producer = self._producer
        remaining = await asyncio.to_thread(producer.flush, timeout)
        self._stop.set()
        if self._poller is not None:
            await asyncio.to_thread(self._poller.join, 2.0)
        producer.poll(0)
        self._producer = None
        return remaining


def _int(value: int | None) -> int:
    return -1 if value is None else value


def _set_result(future: asyncio.Future, value: Any) -> None:
    if not future.done():
        future.set_result(value)


def _set_exception(future: asyncio.Future, exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    compacted: bool = False
    config: dict[str, str] = field(default_factory=dict)


def standard_topics(settings: KafkaSettings) -> list[TopicSpec]:
    """Every topic of the architecture contract, with its partitions and cleanup policy."""
    n = settings.partitions
    return [
        TopicSpec(settings.events_topic, n),
        TopicSpec(settings.state_topic, n, compacted=True),
        TopicSpec(settings.dlq_topic, n),
        TopicSpec(settings.hints_topic, n),
        TopicSpec(settings.poller_state_topic, 1, compacted=True),
    ]


def ensure_topics(settings: KafkaSettings, specs: Iterable[TopicSpec], timeout: float = 30.0) -> list[str]:
    """Create the topics that do not exist yet; returns the names created. Idempotent."""
    admin = AdminClient(base_config(settings))
    existing = set(admin.list_topics(timeout=timeout).topics)
    new = [
        NewTopic(
            spec.name,
            num_partitions=spec.partitions,
            replication_factor=settings.replication_factor,
            config={**({"cleanup.policy": "compact"} if spec.compacted else {}), **spec.config},
        )
        for spec in specs
        if spec.name not in existing
    ]
    if not new:
        return []
    created = []
    for name, future in admin.create_topics(new, operation_timeout=timeout, request_timeout=timeout).items():
        try:
            future.result()
            created.append(name)
        except KafkaException as exc:
            if exc.args and exc.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            raise PublishError(f"cannot create topic {name}: {exc}") from exc
    return created


@dataclass(frozen=True)
class Coordinates:
    topic: str
    partition: int
    offset: int


def coordinates(msg: Message) -> Coordinates:
    """Where a consumed message sits. Consumed messages always have them; the client types them optional."""
    topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
    if topic is None or partition is None or offset is None:
        raise ValueError("a consumed message without topic, partition or offset")
    return Coordinates(topic, partition, offset)


def message_headers(msg: Message) -> list[tuple[str, bytes]]:
    """A message's headers as (name, bytes) pairs, whatever form the client returned them in."""
    raw = msg.headers() or []
    items = raw.items() if isinstance(raw, dict) else raw
    return [(name, value.encode() if isinstance(value, str) else (value or b"")) for name, value in items]
