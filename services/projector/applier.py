"""Applying decoded events to the view and collecting the change-feed records: the I/O around the core.

Used by the consumer loop (service.py) and by the operator's ``closures apply`` command, so both write
the same way: optimistic concurrency on the revision, one change-feed record per effective change, and
the change recorded in the document (``last_change``), so that a change written but never announced (a
crash between the write and the feed) is announced when its event is read again (feed.unannounced).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.common.events import JobEvent, JobState
from services.common.logs import get_logger
from services.projector import document as d
from services.projector.closures import GuardDecision, GuardVerdict, guard
from services.projector.feed import BatchReader, job_state, unannounced
from services.projector.metrics import ProjectorMetrics
from services.projector.rules import Coords, JobFold, Label, Observation, fold_job, group_by_job, infer_closure
from services.projector.settings import ProjectorSettings
from services.projector.view import SnapshotRecord, View

log = get_logger("projector")


@dataclass
class Applied:
    """What one batch (or one operator command) did: feed records to publish, labels to count."""

    records: list[JobState] = field(default_factory=list)
    labels: list[Label] = field(default_factory=list)
    reader: BatchReader | None = None  # the consumer's batch (None: an operator command)
    # (job, event id) of operator-made changes to mark announced once the feed has them
    operator_changes: list[tuple[int, str]] = field(default_factory=list)
    # events whose job document the server refused: dead-lettered with the reason, the batch goes on
    refused: list[tuple[Coords, str]] = field(default_factory=list)
    jobs_refused: int = 0
    freshness: list[tuple[str, float]] = field(default_factory=list)  # (source, seconds)
    guard_trips: int = 0
    closures_refused: int = 0
    _seen: set[tuple[int, int, str]] = field(default_factory=set)

    def begin_attempt(self, reader: BatchReader | None) -> None:
        """Forget what a failed attempt at the same batch counted; its feed records stay (deduplicated)."""
        self.reader = reader
        self.labels.clear()
        self.freshness.clear()
        self.operator_changes.clear()
        self.refused.clear()
        self.jobs_refused = self.closures_refused = 0

    def add_record(self, state: JobState) -> None:
        # A retried batch re-announces, from last_change, what an earlier attempt already collected.
        key = (state.job_number, state.revision, state.event_id)
        if key not in self._seen:
            self._seen.add(key)
            self.records.append(state)


class Applier:
    def __init__(self, view: View, settings: ProjectorSettings, metrics: ProjectorMetrics) -> None:
        self.view = view
        self.settings = settings
        self.metrics = metrics

    def _on_conflict(self, number: int) -> None:
        self.metrics.write_conflicts.inc()
        log.info("write conflict, re-applying on the fresh document", job_number=number)

    async def _converge(self, numbers: Sequence[int], plan, bases=None) -> tuple[dict[int, JobFold], dict[int, str]]:
        folds, refused = await self.view.converge(
            numbers, plan, attempts=self.settings.write_attempts, bases=bases,
            on_conflict=self._on_conflict, on_write=self.metrics.write_latency.observe,
        )
        for number, why in refused.items():
            log.error("job document refused by the view's server", job_number=number, reason=why)
        return folds, refused

    async def observations(self, items: Sequence[tuple[Observation, Coords]], out: Applied) -> None:
        """Fold a run of observations (no marker among them) into the view."""
        if not items:
            return
        grouped = group_by_job(items)

        def plan(number: int, doc: dict[str, Any] | None) -> JobFold:
            return fold_job(doc, grouped[number])

        folds, refused = await self._converge(list(grouped), plan)
        out.jobs_refused += len(refused)
        for number, why in refused.items():
            for _, coords in grouped[number]:
                out.refused.append((coords, f"job {number}: {why}"))
        now = time.time()
        for number, result in folds.items():
            self._collect(result, out)
            for outcome, (obs, coords) in zip(result.outcomes, grouped[number], strict=True):
                out.labels.append(outcome.label)
                if outcome.anomaly:
                    log.warning("trio contract broken", job_number=number, event_id=obs.event.event_id,
                                partition=coords.partition, offset=coords.offset, anomaly=outcome.anomaly)
                if outcome.change is not None:
                    out.freshness.append((str(obs.event.source), max(0.0, now - obs.event.observed_at.timestamp())))
                log.debug("event applied", job_number=number, event_id=obs.event.event_id, outcome=str(outcome.label),
                          partition=coords.partition, offset=coords.offset, source=str(obs.event.source))

    def _collect(self, result: JobFold, out: Applied) -> None:
        earlier = unannounced(result.base, out.reader)
        if earlier is not None and result.base is not None:  # written by an earlier run, maybe never announced
            out.add_record(job_state(result.base, earlier))
        for change, state in result.changes:
            out.add_record(job_state(state, change))
        final = result.doc if result.doc is not None else result.base
        mark = (final or {}).get(d.LAST_CHANGE) or {}
        if mark.get("announced") is False:
            out.operator_changes.append((result.number, mark["event_id"]))

    async def marker(self, marker: JobEvent, coords: Coords, out: Applied) -> GuardDecision:
        """Closure inference for the partition the marker was read on."""
        assert marker.snapshot_id is not None and marker.started_at is not None
        started_us = d.to_us(marker.started_at)
        # Closures an earlier run made on this very marker: announced again if that run did not commit.
        for doc in await self.view.changed_by(coords.partition, marker.event_id):
            self._collect(JobFold(doc[d.ID], doc, None, []), out)
        candidates = await self.view.closure_candidates(coords.partition, marker.snapshot_id, started_us)
        open_jobs = await self.view.count_open(coords.partition)
        decision = guard(len(candidates), open_jobs, share=self.settings.guard_share,
                         floor=self.settings.guard_floor, suspicious=marker.suspicious)
        context = dict(snapshot_id=marker.snapshot_id, partition=coords.partition, offset=coords.offset,
                       event_id=marker.event_id, candidates=len(candidates), open_jobs=open_jobs,
                       job_count=marker.job_count, expected_count=marker.expected_count,
                       suspicious=marker.suspicious, reason=decision.reason)
        out.labels.append(Label.SNAPSHOT)
        if decision.verdict == GuardVerdict.GUARDED:
            record = self._record(marker, coords, "pending", [c[d.ID] for c in candidates], open_jobs, decision)
            if await self.view.record_snapshot(record):
                out.guard_trips += 1
                log.warning("closure guard tripped: nothing closed, waiting for an operator", **context,
                            command=f"jobsync projector closures apply {marker.snapshot_id}")
            return decision
        closed = 0
        if decision.verdict == GuardVerdict.CLOSE:
            closed = await self.close(marker, [c[d.ID] for c in candidates], out,
                                      bases={c[d.ID]: c for c in candidates}, coords=coords)
        status = "applied" if decision.verdict == GuardVerdict.CLOSE else "nothing"
        await self.view.record_snapshot(self._record(marker, coords, status, [], open_jobs, decision, closed))
        log.info("snapshot marker applied", closed=closed, **context)
        return decision

    async def close(self, marker: JobEvent, numbers: Sequence[int], out: Applied,
                    bases: dict[int, dict[str, Any]] | None = None, coords: Coords | None = None) -> int:
        """Close ``numbers`` as not listed by ``marker``'s snapshot (each re-checked against its document).

        ``coords``: where the consumer read the marker; None when an operator applies guarded closures.
        """

        def plan(number: int, doc: dict[str, Any] | None) -> JobFold:
            outcome = infer_closure(doc, marker, coords) if doc is not None else None
            if outcome is None:
                return JobFold(number, doc, None, [])
            return JobFold(number, doc, outcome.doc, [outcome])

        folds, refused = await self._converge(list(numbers), plan, bases=bases)
        out.closures_refused += len(refused)  # the job stays open; the next full snapshot tries again
        closed = 0
        for number, result in folds.items():
            self._collect(result, out)
            for outcome in result.outcomes:
                out.labels.append(outcome.label)
                closed += 1
                log.info("job closed by inference", job_number=number, snapshot_id=marker.snapshot_id,
                         event_id=marker.event_id)
        return closed

    @staticmethod
    def _record(marker: JobEvent, coords: Coords, status: str, candidates: list[int], open_jobs: int,
                decision: GuardDecision, closed: int = 0) -> SnapshotRecord:
        started: datetime = marker.started_at  # type: ignore[assignment]
        return SnapshotRecord(
            snapshot_id=marker.snapshot_id or "", partition=coords.partition, status=status, started_at=started,
            candidates=candidates, open_jobs=open_jobs, reason=decision.reason, marker_event_id=marker.event_id,
            closed=closed,
        )

    async def operator_changes_unannounced(self, out: Applied) -> None:
        """Announce the operator-made changes a crashed command wrote but did not announce (start-up)."""
        for doc in await self.view.operator_changes_unannounced():
            result = JobFold(doc[d.ID], doc, None, [])
            self._collect(result, out)
