"""The poller process: composition root, leader-only work (schedule, confirm mode, webhook health), shutdown.

``Poller.run(stop)`` starts the Kafka producer, the election consumer and the ops/admin HTTP server, then
waits. While this instance is the elected leader it runs the sync schedule, the confirm-mode consumer and
the webhook-registration check; when it loses leadership or is told to stop, it gives a running sync
``shutdown_grace_s`` to finish (only on stop: after losing leadership another instance is already
active) and then abandons it. An abandoned sync never advances the cursor.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web
from confluent_kafka import Consumer, KafkaException, Message

from services.common.dlq import DeadLetter, dlq_headers
from services.common.errors import InvalidJobError, JobSyncError, PublishError
from services.common.events import Source, job_observed, utcnow
from services.common.kafka import AsyncProducer, base_config, ensure_topics, standard_topics
from services.common.logs import get_logger
from services.common.metrics import new_registry
from services.common.settings import KafkaSettings
from services.poller.checkpoint import Checkpoint
from services.poller.client import TrioClient
from services.poller.confirm import hint_number
from services.poller.election import Coordinator
from services.poller.errors import NotLeaderError, TrioAuthError, TrioRequestError
from services.poller.metrics import PollerMetrics
from services.poller.publishing import ORIGIN, Publisher, event_headers, record_bytes
from services.poller.registration import Health, assess, repair_request
from services.poller.schedule import Attempts, Intervals, SyncKind, next_sync
from services.poller.settings import PollerSettings
from services.poller.sync import Syncer, SyncProgress

log = get_logger("poller")

KEEP_RECENT_SYNCS = 50


class Poller:
    def __init__(
        self,
        settings: PollerSettings,
        kafka: KafkaSettings,
        *,
        registry: Any = None,
        producer: AsyncProducer | None = None,
        client: TrioClient | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.settings = settings
        self.kafka = kafka
        self.registry = registry if registry is not None else new_registry()
        self.metrics = PollerMetrics(self.registry)
        self._own_producer = producer is None
        self.producer = producer or AsyncProducer(kafka)
        self._own_client = client is None
        self.client = client or TrioClient.from_settings(settings, self.metrics)
        self.publisher = Publisher(self.producer, kafka)
        self.syncer = Syncer(settings, kafka, self.client, self.publisher, self.metrics, clock=clock)
        self.coordinator = Coordinator(
            kafka,
            settings.group_id or f"{kafka.topic_prefix}.poller",
            session_timeout_ms=settings.session_timeout_ms,
            on_leadership=lambda leading: self.metrics.leader.set(1 if leading else 0),
        )
        self._clock = clock
        self._intervals = Intervals(
            incremental=timedelta(seconds=settings.incremental_interval_s),
            full=timedelta(seconds=settings.full_interval_s),
            failed_full_retry=timedelta(seconds=settings.failed_full_retry_s),
        )
        self._attempts = Attempts()
        self._resyncs: collections.deque[SyncProgress] = collections.deque()
        self._wake = asyncio.Event()
        self._sync_idle = asyncio.Event()
        self.syncs: collections.OrderedDict[str, SyncProgress] = collections.OrderedDict()
        self.current: SyncProgress | None = None
        self._stopping = False
        self.webhook_health: Health | None = None
        self._runner: web.AppRunner | None = None
        self.ops_port: int | None = None

    # --- the public surface (admin endpoint, tests)

    @property
    def leader(self) -> bool:
        return self.coordinator.term is not None

    def request_resync(self) -> SyncProgress:
        """Queue a full sync to run now (after the running one, if any); raises NotLeaderError on a standby."""
        if not self.leader:
            raise NotLeaderError("this poller is the standby; ask the active one (see poller_leader in /metrics)")
        progress = SyncProgress(SyncKind.RESYNC)
        self._remember(progress)
        self._resyncs.append(progress)
        self._wake.set()
        log.info("resync_requested", sync_id=progress.sync_id)
        return progress

    def status(self) -> dict[str, Any]:
        cp = self.syncer.checkpoint
        return {
            "leader": self.leader,
            "current": self.current.to_dict() if self.current and not self.current.finished else None,
            "queued_resyncs": len(self._resyncs),
            "checkpoint": {
                "cursor": cp.cursor.isoformat() if cp.cursor else None,
                "last_full_at": cp.last_full_at.isoformat() if cp.last_full_at else None,
                "last_full_count": cp.last_full_count,
            },
            "webhook_registration": str(self.webhook_health) if self.webhook_health else None,
            "recent": [p.to_dict() for p in list(self.syncs.values())[-10:]],
        }

    async def readiness(self) -> tuple[bool, dict[str, object]]:
        kafka_ok = await asyncio.to_thread(self.producer.reachable)
        return kafka_ok, {"kafka": kafka_ok, "leader": self.leader}

    # --- lifecycle

    async def run(self, stop: asyncio.Event) -> None:
        if self.kafka.create_topics:
            await asyncio.to_thread(ensure_topics, self.kafka, standard_topics(self.kafka))
        await self.producer.start()
        await self._start_http()
        await self.coordinator.start()
        log.info("poller_started", base_url=self.client.base_url, ops_port=self.ops_port)
        stop_wait = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                term = self.coordinator.term
                if term is None:
                    change = asyncio.ensure_future(self.coordinator.wait_change())
                    await asyncio.wait({change, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
                    change.cancel()
                    continue
                self.syncer.reset(term.checkpoints.get(self.settings.checkpoint_name, Checkpoint()))
                await self._lead(term.number, stop_wait)
        finally:
            stop_wait.cancel()
            await self._shutdown()

    async def _lead(self, term_number: int, stop_wait: asyncio.Future[Any]) -> None:
        """Run the leader's work until leadership ends or ``stop`` is set."""
        self._attempts = Attempts()
        log.info("leading", term=term_number)
        tasks = [asyncio.create_task(self._schedule(), name="poller-schedule")]
        if self.settings.confirm_mode:
            tasks.append(asyncio.create_task(self._confirm_hints(), name="poller-confirm"))
        if self.settings.webhook_url or self.settings.webhook_name:
            tasks.append(asyncio.create_task(self._watch_webhook(), name="poller-webhook"))
        try:
            while True:
                lost = asyncio.ensure_future(self.coordinator.wait_change())
                done, _ = await asyncio.wait({lost, stop_wait, *tasks}, return_when=asyncio.FIRST_COMPLETED)
                lost.cancel()
                for task in tasks:
                    if task in done and not task.cancelled() and task.exception() is not None:
                        raise task.exception()  # type: ignore[misc]
                current = self.coordinator.term
                if stop_wait.done():
                    await self._let_sync_finish()
                    return
                if current is None or current.number != term_number:
                    log.warning("abandoning_leader_work", term=term_number)
                    return
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for progress in self._resyncs:
                progress.outcome, progress.phase, progress.error = "abandoned", "done", "leadership ended"
            self._resyncs.clear()

    async def _let_sync_finish(self) -> None:
        self._stopping = True
        if self.current is not None and not self.current.finished and self.settings.shutdown_grace_s > 0:
            log.info("shutdown_waiting_for_sync", sync_id=self.current.sync_id, grace_s=self.settings.shutdown_grace_s)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._sync_idle.wait(), timeout=self.settings.shutdown_grace_s)
            if not self.current.finished:
                log.warning("shutdown_abandoning_sync", sync_id=self.current.sync_id)

    async def _shutdown(self) -> None:
        await self.coordinator.stop()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._own_client:
            await self.client.aclose()
        if self._own_producer:
            left = await self.producer.stop()
            if left:
                log.warning("producer_undelivered_at_stop", messages=left)
        log.info("poller_stopped")

    async def _start_http(self) -> None:
        from services.poller.admin import create_app

        self._runner = web.AppRunner(create_app(self), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.ops_host, self.settings.ops_port)
        await site.start()
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        self.ops_port = sockets[0].getsockname()[1] if sockets else self.settings.ops_port

    # --- schedule

    def _remember(self, progress: SyncProgress) -> None:
        self.syncs[progress.sync_id] = progress
        while len(self.syncs) > KEEP_RECENT_SYNCS:
            self.syncs.popitem(last=False)

    async def _schedule(self) -> None:
        while not self._stopping:
            if self._resyncs:
                progress = self._resyncs.popleft()
            else:
                now = self._clock()
                plan = next_sync(self.syncer.checkpoint, self._attempts, self._intervals, now)
                delay = (plan.at - now).total_seconds()
                if delay > 0:
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), timeout=delay)
                    continue
                progress = SyncProgress(plan.kind)
                self._remember(progress)
            await self.run_sync(progress)

    async def run_sync(self, progress: SyncProgress) -> SyncProgress:
        self.current = progress
        self._sync_idle.clear()
        try:
            result = await self.syncer.run(progress.kind, progress)
        finally:
            self._sync_idle.set()
            if progress.started_at is not None:
                if progress.kind is SyncKind.INCREMENTAL:
                    self._attempts = Attempts(full=self._attempts.full, incremental=progress.started_at)
                else:
                    self._attempts = Attempts(full=progress.started_at, incremental=self._attempts.incremental)
        return result

    # --- confirm mode

    async def _confirm_hints(self) -> None:
        group = self.settings.confirm_group_id or f"{self.kafka.topic_prefix}.poller-confirm"
        consumer = Consumer(
            {**base_config(self.kafka), "group.id": group, "enable.auto.commit": False, "auto.offset.reset": "earliest"}
        )
        consumer.subscribe([self.kafka.hints_topic])
        loop = asyncio.get_running_loop()
        inflight: asyncio.Future[Any] | None = None
        log.info("confirm_mode_started", topic=self.kafka.hints_topic, group_id=group)
        try:
            while True:
                inflight = loop.run_in_executor(None, consumer.poll, 0.5)
                msg: Message | None = await asyncio.shield(inflight)
                inflight = None
                if msg is None:
                    continue
                error = msg.error()
                if error is not None:
                    log.warning("hints_consume_error", error=error.str())
                    continue
                await self._confirm_until_done(msg)
                inflight = loop.run_in_executor(
                    None, functools.partial(consumer.commit, message=msg, asynchronous=False)
                )
                await asyncio.shield(inflight)
                inflight = None
        finally:
            if inflight is not None:
                await asyncio.wait({inflight})
            with contextlib.suppress(KafkaException, RuntimeError):
                await loop.run_in_executor(None, consumer.close)

    async def _confirm_until_done(self, msg: Message) -> None:
        """Confirm one hint; transient failures (Trio or Kafka down) are retried until they pass."""
        attempt = 0
        while True:
            try:
                await self.confirm_hint(msg.key(), msg.value(), msg.partition() or 0, msg.offset() or 0)
                return
            except (JobSyncError, OSError) as exc:
                attempt += 1
                wait = min(self.settings.backoff_max_s, self.settings.backoff_base_s * 2 ** min(attempt, 10))
                level = log.error if isinstance(exc, TrioAuthError) else log.warning
                level("hint_retry", error=str(exc), attempt=attempt, wait_s=wait, offset=msg.offset())
                self.metrics.hints.labels("retried").inc()
                await asyncio.sleep(wait)

    async def confirm_hint(self, key: bytes | None, value: bytes | None, partition: int, offset: int) -> str:
        """Fetch the job a hint names and publish it as ``poll_single``; returns the outcome."""
        coords = {"original_topic": self.kafka.hints_topic, "original_partition": partition, "original_offset": offset}
        try:
            number = hint_number(key, value)
        except InvalidJobError as exc:
            await self._dead_letter_hint(key, value, f"hint: {exc}", coords)
            self.metrics.hints.labels("invalid").inc()
            return "invalid"
        try:
            job = await self.client.get_job(number)
        except TrioRequestError as exc:  # a 4xx retrying cannot fix: park the hint instead of blocking the rest
            await self._dead_letter_hint(key, value, f"hint: {exc}", coords)
            self.metrics.hints.labels("rejected").inc()
            return "rejected"
        if job is None:
            await self._dead_letter_hint(
                key, value, f"hint: Trio does not know job {number} (GET /Job/{number} 404)", coords
            )
            self.metrics.hints.labels("not_found").inc()
            log.warning("hint_job_not_found", job_number=number, offset=offset)
            return "not_found"
        try:
            event = job_observed(job, Source.POLL_SINGLE)
        except InvalidJobError as exc:
            await self._dead_letter_hint(
                str(number).encode(), record_bytes(job), f"GET /Job/{number} returned an invalid job: {exc}", {}
            )
            self.metrics.hints.labels("invalid").inc()
            return "invalid"
        if event.job_number != number:
            log.warning("hint_number_mismatch", hint_number=number, job_number=event.job_number)
        await self.publisher.send_event(event)
        self.metrics.events_published.labels(str(Source.POLL_SINGLE)).inc()
        self.metrics.hints.labels("published").inc()
        log.info(
            "hint_confirmed",
            job_number=event.job_number,
            event_id=event.event_id,
            offset=offset,
            headers=len(event_headers(event)),
        )
        return "published"

    async def _dead_letter_hint(self, key: bytes | None, value: bytes | None, reason: str, coords: dict) -> None:
        headers = dlq_headers(DeadLetter(reason=reason, origin=ORIGIN, **coords))
        try:
            await self.producer.send(self.kafka.dlq_topic, value, key, headers=headers)
            self.metrics.dead_letters.inc()
        except PublishError as exc:
            raise PublishError(f"cannot dead-letter a hint ({reason}): {exc}") from exc

    # --- webhook registration health

    async def _watch_webhook(self) -> None:
        while True:
            try:
                await self.check_webhook()
            except JobSyncError as exc:
                self.metrics.webhook_checks.labels("error").inc()
                log.warning("webhook_check_failed", error=str(exc))
            await asyncio.sleep(self.settings.webhook_check_interval_s)

    async def check_webhook(self) -> Health:
        """GET /Webhooks, set the health gauge, and repair the registration when configured to."""
        url = self.settings.webhook_url.get_secret_value() if self.settings.webhook_url else None
        name = self.settings.webhook_name
        deadline = time.monotonic() + self.settings.sync_budget_s
        webhooks = await self.client.list_webhooks(deadline=deadline)
        found = assess(webhooks, url=url, name=name)
        self.webhook_health = found.health
        self.metrics.webhook_healthy.set(1 if found.healthy else 0)
        self.metrics.webhook_checks.labels(str(found.health)).inc()
        fields = {"health": str(found.health), "registration_id": found.registration_id, "name": name}
        if found.healthy:
            log.info("webhook_registration_checked", **fields)
            return found.health
        log.warning("webhook_registration_unhealthy", **fields)
        if not self.settings.webhook_auto_repair:
            return found.health
        body = repair_request(found, url=url, name=name)
        if body is None:
            log.warning("webhook_registration_not_repairable", reason="no JOBSYNC_POLLER_WEBHOOK_URL to create one")
            return found.health
        action = "create" if found.health is Health.MISSING else "reactivate"
        try:
            await self.client.save_webhook(body, deadline=deadline)
        except JobSyncError as exc:
            self.metrics.webhook_repairs.labels(action, "failed").inc()
            log.error("webhook_registration_repair_failed", action=action, error=str(exc), **fields)
            return found.health
        self.metrics.webhook_repairs.labels(action, "sent").inc()
        log.info("webhook_registration_repaired", action=action, **fields)
        again = assess(await self.client.list_webhooks(deadline=deadline), url=url, name=name)
        self.webhook_health = again.health
        self.metrics.webhook_healthy.set(1 if again.healthy else 0)
        return again.health
