"""Handling one webhook: the validation layers in order, then publishing with acknowledgement.

No HTTP here: the view (views.py) hands over the request's data and maps the ``Result`` to a status.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from services.common.codec import job_event_codec
from services.common.dlq import DeadLetter, dlq_headers
from services.common.errors import PublishError, QueueFullError
from services.common.events import EVENT_ID_HEADER, Source, job_observed, new_event_id, utcnow
from services.common.kafka import Delivered
from services.common.logs import get_logger
from services.common.settings import KafkaSettings
from services.ingress.metrics import IngressMetrics
from services.ingress.settings import IngressSettings
from services.ingress.validation import (
    Outcome,
    ParsedJob,
    Rejection,
    SignatureCheck,
    WebhookPolicy,
    check_content_type,
    parse_job,
    too_large,
)

log = get_logger("services.ingress")

_MAX_HEADER_BYTES = 1024
# With signatures on, an oversized body is still read (not kept) to verify it, up to this many times
# the limit; past that it cannot be authenticated and is refused without a dead letter.
OVERSIZE_DRAIN_FACTOR = 16


class Publisher(Protocol):
    """What the ingress needs of a Kafka producer (services.common.kafka.AsyncProducer)."""

    @property
    def started(self) -> bool: ...

    async def start(self) -> None: ...

    async def send(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        *,
        headers: list[tuple[str, bytes]] | None = None,
        partition: int | None = None,
    ) -> Delivered: ...

    def reachable(self, timeout: float = 2.0) -> bool: ...

    def queued(self) -> int: ...

    async def stop(self, timeout: float = 10.0) -> int: ...


@dataclass(frozen=True)
class WebhookRequest:
    """What the handler needs of an HTTP request; ``headers`` are looked up by lower-case name."""

    secret: str
    peer: str | None
    headers: Mapping[str, str]
    body: AsyncIterator[bytes]


@dataclass
class Result:
    """How a webhook ended, for the reply and the log line."""

    event_id: str
    outcome: Outcome
    reason: str = ""
    field: str | None = None
    job_number: int | None = None
    source_address: str | None = None
    size: int = 0
    dead_lettered: bool = False
    delivered: Delivered | None = None
    error: str | None = None  # what Kafka said, for the log only
    refused_as: str | None = None  # the refusal a 503 replaced (its dead letter was not acknowledged)


@dataclass(frozen=True)
class Body:
    data: bytes  # at most max_body_bytes
    size: int  # bytes read
    oversized: bool
    complete: bool  # the whole body was read (its true size is known and a signature could be verified)


async def read_body(chunks: AsyncIterator[bytes], limit: int, check: SignatureCheck | None) -> Body:
    """Read at most ``limit`` bytes to keep; with a signature check, stream the rest through it (bounded)."""
    kept = bytearray()
    size = 0
    drain_limit = limit * OVERSIZE_DRAIN_FACTOR
    async for chunk in chunks:
        size += len(chunk)
        if check is not None:
            check.update(chunk)
        if len(kept) < limit:
            kept += chunk[: limit - len(kept)]
        if size > limit and (check is None or size > drain_limit):
            return Body(bytes(kept), size, oversized=True, complete=False)
    return Body(bytes(kept), size, oversized=size > limit, complete=True)


class WebhookHandler:
    """The ingress's one use case: validate a webhook, publish it, and say how it went."""

    def __init__(
        self,
        settings: IngressSettings,
        kafka: KafkaSettings,
        publisher: Publisher,
        metrics: IngressMetrics,
        policy: WebhookPolicy | None = None,
    ) -> None:
        self.settings = settings
        self.kafka = kafka
        self.publisher = publisher
        self.metrics = metrics
        self.policy = policy or settings.policy()
        self.in_flight = 0
        self._codec = job_event_codec()

    @property
    def destination_topic(self) -> str:
        return self.kafka.hints_topic if self.settings.confirm_mode else self.kafka.events_topic

    async def handle(self, request: WebhookRequest) -> Result:
        event_id = new_event_id()
        if self.in_flight >= self.settings.max_in_flight:
            return self._finish(
                Result(event_id, Outcome.OVERLOADED, f"more than {self.settings.max_in_flight} webhooks in flight")
            )
        self.in_flight += 1
        self.metrics.in_flight.inc()
        try:
            return self._finish(await self._handle(request, event_id, utcnow()))
        finally:
            self.in_flight -= 1
            self.metrics.in_flight.dec()

    def _finish(self, result: Result) -> Result:
        self.metrics.requests.labels(outcome=result.outcome.value).inc()
        return result

    async def _handle(self, request: WebhookRequest, event_id: str, received_at: datetime) -> Result:
        policy = self.policy
        result = Result(event_id, Outcome.ACCEPTED)
        if rejection := policy.check_secret(request.secret):
            return _rejected(result, rejection)
        address, rejection = policy.check_source(request.peer, request.headers.get("x-forwarded-for"))
        result.source_address = str(address) if address is not None else None
        if rejection:
            return _rejected(result, rejection)
        signature = policy.begin_signature(request.headers, time.time())
        if isinstance(signature, Rejection):
            return _rejected(result, signature)

        body = await read_body(request.body, policy.max_body_bytes, signature)
        result.size = body.size
        self.metrics.body_bytes.observe(body.size)
        if signature is not None:
            if not body.complete:  # too big to verify: not authentic as far as we can tell
                return _rejected(result, too_large(policy.max_body_bytes, body.size, False, 0))
            if rejection := signature.finish():
                return _rejected(result, rejection)

        # Authentic from here on: whatever is wrong with the content, the payload is dead-lettered.
        parsed: ParsedJob | Rejection
        if body.oversized:
            kept = body.data[: self.settings.dlq_body_prefix_bytes]
            rejection = too_large(policy.max_body_bytes, body.size, body.complete, len(kept))
            return await self._dead_letter(result, rejection, request, received_at, kept)
        if rejection := check_content_type(request.headers.get("content-type")):
            return await self._dead_letter(result, rejection, request, received_at, body.data)
        parsed = parse_job(body.data)
        if isinstance(parsed, Rejection):
            return await self._dead_letter(result, parsed, request, received_at, body.data)
        result.job_number = parsed.facts.number
        if self.settings.confirm_mode:
            return await self._publish_hint(result, parsed, request, received_at, body.data)
        return await self._publish_event(result, parsed, request, received_at, body.data)

    async def _publish_event(
        self, result: Result, parsed: ParsedJob, request: WebhookRequest, received_at: datetime, raw: bytes
    ) -> Result:
        try:
            event = job_observed(
                parsed.job, Source.WEBHOOK, raw_json=parsed.text, observed_at=received_at, event_id=result.event_id
            )
            value = self._codec.encode(event)
        except (ValueError, TypeError, OverflowError) as exc:  # e.g. a lone surrogate Avro cannot carry
            rejection = Rejection(Outcome.INVALID_JOB, f"not a Trio job: cannot encode it as a JobEvent: {exc}")
            return await self._dead_letter(result, rejection, request, received_at, raw)
        headers = self._audit_headers(result, request, received_at)
        if await self._publish(result, "events", self.kafka.events_topic, value, headers):
            result.outcome = Outcome.ACCEPTED
        return result

    async def _publish_hint(
        self, result: Result, parsed: ParsedJob, request: WebhookRequest, received_at: datetime, raw: bytes
    ) -> Result:
        # The hint is the webhook as received; the poller confirms it with GET /api/v3/Job/{number}.
        headers = self._audit_headers(result, request, received_at)
        if await self._publish(result, "hints", self.kafka.hints_topic, raw, headers):
            result.outcome = Outcome.HINTED
        return result

    async def _publish(
        self,
        result: Result,
        destination: str,
        topic: str,
        value: bytes,
        headers: list[tuple[str, bytes]],
    ) -> bool:
        """Send and wait for the broker's acknowledgement; False (result made a 503) when there is none."""
        key = str(result.job_number).encode() if result.job_number is not None else None
        started = time.perf_counter()
        try:
            delivered = await self.publisher.send(topic, value, key, headers=headers)
        except QueueFullError as exc:
            self.metrics.publish_failures.labels(destination=destination, kind="queue_full").inc()
            _unavailable(result, "the local Kafka send queue is full", str(exc))
            return False
        except PublishError as exc:
            self.metrics.publish_failures.labels(destination=destination, kind="not_acknowledged").inc()
            _unavailable(result, "Kafka did not acknowledge the event", str(exc))
            return False
        self.metrics.publish_latency.labels(destination=destination).observe(time.perf_counter() - started)
        result.delivered = delivered
        return True

    async def _dead_letter(
        self, result: Result, rejection: Rejection, request: WebhookRequest, received_at: datetime, kept: bytes
    ) -> Result:
        """Write an authentic payload that failed validation to jobs.dlq; only then is the refusal final."""
        _rejected(result, rejection)
        letter = DeadLetter(
            reason=f"{rejection.outcome.value}: {rejection.reason}",
            origin="ingress",
            original_topic=self.destination_topic,
            failed_at=received_at,
        )
        headers = dlq_headers(letter, extra=self._audit_headers(result, request, received_at))
        if not await self._publish(result, "dlq", self.kafka.dlq_topic, kept, headers):
            result.refused_as = rejection.outcome.value
            return result
        self.metrics.dead_letters.labels(reason=rejection.outcome.value).inc()
        result.dead_lettered = True
        return result

    def _audit_headers(self, result: Result, request: WebhookRequest, received_at: datetime) -> list[tuple[str, bytes]]:
        headers = [
            (EVENT_ID_HEADER, result.event_id),
            ("received-at", received_at.isoformat()),
            ("source-address", result.source_address or ""),
            ("peer-address", request.peer or ""),
            ("body-size", str(result.size)),
        ]
        for name in ("content-type", "user-agent", "x-forwarded-for", "webhook-id", "webhook-timestamp",
                     "webhook-signature"):
            if (value := request.headers.get(name)) is not None:
                headers.append((f"http-{name}", value))
        return [(name, value.encode("utf-8", "replace")[:_MAX_HEADER_BYTES]) for name, value in headers]


def _rejected(result: Result, rejection: Rejection) -> Result:
    result.outcome = rejection.outcome
    result.reason = rejection.reason
    result.field = rejection.field
    return result


def _unavailable(result: Result, reason: str, error: str) -> Result:
    result.outcome = Outcome.UNAVAILABLE
    result.reason = f"{reason}; nothing was recorded, retry later"
    result.field = None
    result.error = error
    return result
