"""One sync at a time: fetch from Trio, validate, publish, mark, then (and only then) advance the cursor.

A sync that fails or is cancelled at any point leaves the checkpoint as it was and publishes no marker:
whatever it had already published are true observations, which the projector applies idempotently.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog

from services.common.errors import JobSyncError, PublishError
from services.common.events import SYNC_ID_HEADER, JobEvent, Source, snapshot_completed, utcnow
from services.common.logs import get_logger
from services.common.settings import KafkaSettings
from services.poller.checkpoint import (
    Checkpoint,
    SuspicionPolicy,
    advance_after_full,
    advance_after_incremental,
    incremental_since,
    is_suspicious,
)
from services.poller.client import TrioClient
from services.poller.errors import MalformedResponseError, SyncFailedError
from services.poller.listing import to_events
from services.poller.metrics import PollerMetrics
from services.poller.publishing import Publisher, record_bytes
from services.poller.schedule import SyncKind
from services.poller.settings import PollerSettings

log = get_logger("poller.sync")

SOURCES = {
    SyncKind.FULL: Source.POLL_FULL,
    SyncKind.INCREMENTAL: Source.POLL_INCREMENTAL,
    SyncKind.RESYNC: Source.RESYNC,
}


@dataclass
class SyncProgress:
    """What a running or finished sync did so far (the admin endpoint and the CLI show it)."""

    kind: SyncKind
    sync_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    phase: str = "queued"  # queued, fetching, publishing, marking, checkpointing, done
    outcome: str | None = None  # succeeded, failed, abandoned
    started_at: datetime | None = None
    finished_at: datetime | None = None
    snapshot_id: str | None = None
    since: datetime | None = None
    fetched: int = 0
    published: int = 0
    markers: int = 0
    suspicious: bool = False
    error: str | None = None

    @property
    def finished(self) -> bool:
        return self.outcome is not None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key, value in data.items():
            if isinstance(value, datetime):
                data[key] = value.isoformat()
        data["kind"] = str(self.kind)
        return data


class Syncer:
    """Runs syncs against Trio and Kafka; holds the checkpoint this process believes in (the leader's)."""

    def __init__(
        self,
        settings: PollerSettings,
        kafka: KafkaSettings,
        client: TrioClient,
        publisher: Publisher,
        metrics: PollerMetrics,
        *,
        checkpoint: Checkpoint | None = None,
        clock: Callable[[], datetime] = utcnow,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.kafka = kafka
        self.client = client
        self.publisher = publisher
        self.metrics = metrics
        self.checkpoint = checkpoint or Checkpoint()
        self._clock = clock
        self._monotonic = monotonic
        self._policy = SuspicionPolicy(settings.suspicious_drop_share, settings.suspicious_min_drop)
        self._lock = asyncio.Lock()
        if self.checkpoint.cursor is not None:
            metrics.cursor.set(self.checkpoint.cursor.timestamp())

    def reset(self, checkpoint: Checkpoint) -> None:
        """Adopt the checkpoint read from Kafka when this instance becomes the leader."""
        self.checkpoint = checkpoint
        if checkpoint.cursor is not None:
            self.metrics.cursor.set(checkpoint.cursor.timestamp())

    @property
    def busy(self) -> bool:
        return self._lock.locked()

    async def run(self, kind: SyncKind, progress: SyncProgress | None = None) -> SyncProgress:
        """Run one sync of ``kind``; never two at once. Returns its progress with ``outcome`` set.

        Failures are reported in the result (and logged, and counted); cancellation propagates after
        recording the sync as abandoned.
        """
        progress = progress or SyncProgress(kind)
        async with self._lock:
            started = self._monotonic()
            progress.started_at = self._clock()
            with structlog.contextvars.bound_contextvars(sync_id=progress.sync_id, kind=str(kind)):
                log.info("sync_started", started_at=progress.started_at.isoformat())
                try:
                    async with asyncio.timeout(self.settings.sync_budget_s):
                        if kind is SyncKind.INCREMENTAL and self.checkpoint.cursor is not None:
                            await self._incremental(progress)
                        else:
                            await self._full(progress)
                except asyncio.CancelledError:
                    self._finish(progress, "abandoned", started, "cancelled (shutdown or leadership lost)")
                    raise
                except TimeoutError:
                    self._finish(
                        progress,
                        "failed",
                        started,
                        f"exceeded the sync budget of {self.settings.sync_budget_s:.0f}s "
                        "(JOBSYNC_POLLER_SYNC_BUDGET_S)",
                    )
                except JobSyncError as exc:
                    self._finish(progress, "failed", started, str(exc))
                except Exception as exc:  # a bug must fail this sync, not stop the poller
                    log.exception("sync_crashed")
                    self._finish(progress, "failed", started, f"unexpected {type(exc).__name__}: {exc}")
                else:
                    self._finish(progress, "succeeded", started)
        return progress

    def _finish(self, progress: SyncProgress, outcome: str, started: float, error: str | None = None) -> None:
        duration = self._monotonic() - started
        progress.outcome = outcome
        progress.error = error
        progress.finished_at = self._clock()
        progress.phase = "done"
        kind = str(progress.kind)
        self.metrics.syncs.labels(kind, outcome).inc()
        fields = {
            "outcome": outcome,
            "duration_s": round(duration, 3),
            "fetched": progress.fetched,
            "published": progress.published,
            "markers": progress.markers,
        }
        if outcome == "succeeded":
            self.metrics.sync_duration.labels(kind).observe(duration)
            assert progress.started_at is not None
            self.metrics.last_success.labels(kind).set(progress.started_at.timestamp())
            log.info("sync_finished", **fields)
        else:
            log.warning("sync_finished", error=error, **fields)

    async def _fetch(self, progress: SyncProgress, since: datetime | None, deadline: float) -> list[Any]:
        progress.phase = "fetching"
        try:
            records = await self.client.list_jobs(since, deadline=deadline)
        except MalformedResponseError as exc:
            self.metrics.invalid_records.inc()
            await self._keep(exc.body, None, str(exc), progress)
            raise SyncFailedError(f"{exc}; the body is kept in {self.kafka.dlq_topic}") from exc
        progress.fetched = len(records)
        self.metrics.jobs_fetched.labels(str(progress.kind)).inc(len(records))
        return records

    async def _validate_and_publish(self, progress: SyncProgress, records: list[Any], source: Source) -> int:
        validated = to_events(records, source, sync_id=progress.sync_id, snapshot_id=progress.snapshot_id)
        if validated.bad:
            self.metrics.invalid_records.inc(len(validated.bad))
            kept = validated.bad[: self.settings.dlq_max_records]
            for bad in kept:
                number = bad.record.get("Number") if isinstance(bad.record, dict) else None
                key = str(number).encode() if isinstance(number, int) and not isinstance(number, bool) else None
                await self._keep(record_bytes(bad.record), key, bad.reason, progress)
            raise SyncFailedError(
                f"{len(validated.bad)} of {len(records)} records are not valid Trio jobs (first: "
                f"{validated.bad[0].reason}); {len(kept)} kept in {self.kafka.dlq_topic}; cursor not advanced"
            )
        progress.phase = "publishing"

        def acked(n: int) -> None:
            progress.published += n

        count = await self.publisher.publish_all(validated.events, window=self.settings.publish_window, on_acked=acked)
        self.metrics.events_published.labels(str(source)).inc(count)
        return count

    async def _keep(self, body: bytes, key: bytes | None, reason: str, progress: SyncProgress) -> None:
        """Dead-letter a bad body; a failure to do so is logged, never allowed to hide the sync's failure."""
        try:
            await self.publisher.dead_letter(
                body,
                key,
                reason,
                max_bytes=self.settings.dlq_max_bytes,
                extra={SYNC_ID_HEADER: progress.sync_id, "poller-sync-kind": str(progress.kind)},
            )
            self.metrics.dead_letters.inc()
        except PublishError as exc:
            log.error("dead_letter_failed", reason=reason, error=str(exc), bytes=len(body))
        log.warning("bad_body_kept", reason=reason, bytes=len(body), dlq_topic=self.kafka.dlq_topic)

    async def _incremental(self, progress: SyncProgress) -> None:
        assert self.checkpoint.cursor is not None and progress.started_at is not None
        deadline = self._monotonic() + self.settings.sync_budget_s
        since = incremental_since(self.checkpoint.cursor, timedelta(seconds=self.settings.overlap_s))
        progress.since = since
        records = await self._fetch(progress, since, deadline)
        await self._validate_and_publish(progress, records, Source.POLL_INCREMENTAL)
        progress.phase = "checkpointing"
        new = advance_after_incremental(self.checkpoint, progress.started_at, progress.sync_id, self._clock())
        await self._save(new)

    async def _full(self, progress: SyncProgress) -> None:
        assert progress.started_at is not None
        deadline = self._monotonic() + self.settings.sync_budget_s
        progress.snapshot_id = str(uuid.uuid4())
        source = SOURCES[progress.kind] if progress.kind is not SyncKind.INCREMENTAL else Source.POLL_FULL
        records = await self._fetch(progress, None, deadline)
        count = await self._validate_and_publish(progress, records, source)
        progress.phase = "marking"
        expected = self.checkpoint.last_full_count
        progress.suspicious = is_suspicious(count, expected, self._policy)
        if progress.suspicious:
            self.metrics.suspicious_snapshots.inc()
            log.warning(
                "snapshot_suspicious",
                job_count=count,
                expected_count=expected,
                drop_share=self.settings.suspicious_drop_share,
            )
        partitions = await self.publisher.partitions()
        started_at, snapshot_id = progress.started_at, progress.snapshot_id

        def marker() -> JobEvent:  # a fresh event id per partition: each is its own record
            return snapshot_completed(
                snapshot_id,
                started_at,
                count,
                sync_id=progress.sync_id,
                suspicious=progress.suspicious,
                expected_count=expected,
                source=source,
            )

        await self.publisher.publish_markers(marker, partitions)
        progress.markers = len(partitions)
        self.metrics.markers_published.inc(len(partitions))
        log.info(
            "snapshot_completed",
            snapshot_id=snapshot_id,
            job_count=count,
            partitions=len(partitions),
            suspicious=progress.suspicious,
        )
        progress.phase = "checkpointing"
        new = advance_after_full(self.checkpoint, started_at, count, snapshot_id, progress.sync_id, self._clock())
        await self._save(new)

    async def _save(self, checkpoint: Checkpoint) -> None:
        await self.publisher.write_checkpoint(self.settings.checkpoint_name, checkpoint)
        self.checkpoint = checkpoint
        if checkpoint.cursor is not None:
            self.metrics.cursor.set(checkpoint.cursor.timestamp())
        log.info(
            "checkpoint_saved",
            cursor=checkpoint.cursor.isoformat() if checkpoint.cursor else None,
            last_full_count=checkpoint.last_full_count,
        )
