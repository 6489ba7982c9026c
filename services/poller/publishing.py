"""Where the poller's Kafka writes go: events with a bounded window, markers per partition, dead letters,
checkpoints. Works with ``services.common.kafka.AsyncProducer`` or any object with the same two methods.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from services.common.codec import job_event_codec
from services.common.dlq import DeadLetter, dlq_headers
from services.common.errors import PublishError, QueueFullError
from services.common.events import EVENT_ID_HEADER, SYNC_ID_HEADER, JobEvent
from services.common.kafka import Delivered
from services.common.settings import KafkaSettings
from services.poller.checkpoint import Checkpoint

ORIGIN = "poller"
QUEUE_FULL_PAUSE_S = 0.05


class Producer(Protocol):
    async def send(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        *,
        headers: Sequence[tuple[str, bytes | str]] | None = None,
        partition: int | None = None,
    ) -> Delivered: ...

    def partitions_of(self, topic: str, timeout: float = 10.0) -> list[int]: ...


def event_headers(event: JobEvent) -> list[tuple[str, bytes]]:
    """Correlation headers: the projector logs the event id and the sync id when it applies the event."""
    headers = [(EVENT_ID_HEADER, event.event_id.encode())]
    if event.sync_id:
        headers.append((SYNC_ID_HEADER, event.sync_id.encode()))
    return headers


class Publisher:
    def __init__(self, producer: Producer, kafka: KafkaSettings) -> None:
        self.producer = producer
        self.kafka = kafka
        self._codec = job_event_codec()

    async def send_event(self, event: JobEvent, *, partition: int | None = None) -> Delivered:
        value = self._codec.encode(event)
        while True:
            try:
                return await self.producer.send(
                    self.kafka.events_topic, value, event.key, headers=event_headers(event), partition=partition
                )
            except QueueFullError:
                # Back-pressure from our own window racing other sends: wait for deliveries to drain.
                await asyncio.sleep(QUEUE_FULL_PAUSE_S)

    async def publish_all(
        self, events: Iterable[JobEvent], *, window: int, on_acked: Callable[[int], None] | None = None
    ) -> int:
        """Publish every event, at most ``window`` unacknowledged at once; return how many were acked.

        Raises the first PublishError (the rest are cancelled): the caller's sync fails. Completion is
        tracked with callbacks, O(1) per event, so a 100,000-job snapshot costs no more per job than ten.
        """
        slots = asyncio.Semaphore(window)
        pending: set[asyncio.Task[Delivered]] = set()
        idle = asyncio.Event()
        idle.set()
        failures: list[BaseException] = []
        acked = 0

        def settled(task: asyncio.Task[Delivered]) -> None:
            nonlocal acked
            pending.discard(task)
            slots.release()
            if task.cancelled():
                pass
            elif (exc := task.exception()) is not None:
                failures.append(exc)
            else:
                acked += 1
                if on_acked is not None:
                    on_acked(1)
            if not pending:
                idle.set()

        try:
            for event in events:
                await slots.acquire()
                if failures:
                    slots.release()
                    break
                task = asyncio.ensure_future(self.send_event(event))
                pending.add(task)
                idle.clear()
                task.add_done_callback(settled)
            await idle.wait()
        except BaseException:
            for task in list(pending):
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            raise
        if failures:
            raise failures[0]
        return acked

    async def partitions(self) -> list[int]:
        return await asyncio.to_thread(self.producer.partitions_of, self.kafka.events_topic)

    async def publish_markers(self, build: Callable[[], JobEvent], partitions: Sequence[int]) -> list[Delivered]:
        """One marker per partition (explicit ``partition=p``): each projector partition sees the snapshot end."""
        if not partitions:
            raise PublishError(f"{self.kafka.events_topic} has no partitions to mark")
        return list(await asyncio.gather(*(self.send_event(build(), partition=p) for p in partitions)))

    async def dead_letter(
        self, body: bytes, key: bytes | None, reason: str, *, max_bytes: int, extra: dict[str, str]
    ) -> None:
        """Keep a bad body in jobs.dlq for diagnosis (cut at ``max_bytes``; the headers say so).

        No ``original_topic``: what failed is Trio's raw text, not an event, so there is nothing to replay.
        """
        headers = dict(extra)
        headers["poller-body-bytes"] = str(len(body))
        if len(body) > max_bytes:
            headers["poller-body-truncated"] = "true"
            body = body[:max_bytes]
        await self.producer.send(
            self.kafka.dlq_topic,
            body,
            key,
            headers=dlq_headers(DeadLetter(reason=reason, origin=ORIGIN), headers.items()),
        )

    async def write_checkpoint(self, name: str, checkpoint: Checkpoint) -> Delivered:
        return await self.producer.send(self.kafka.poller_state_topic, checkpoint.to_json(), name.encode())


def record_bytes(record: Any) -> bytes:
    """A listing record as JSON bytes, for the dead-letter queue."""
    try:
        return json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode()
    except (TypeError, ValueError):
        return repr(record).encode()
