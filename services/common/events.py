"""The events on ``jobs.events`` and the records on ``jobs.state``, as plain data (no I/O).

Field names and meaning follow schemas/job_event and schemas/job_state, which are the source of truth.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from services.common.trio import job_facts

# Kafka headers that correlate a record with the logs of whoever wrote and applied it.
EVENT_ID_HEADER = "event-id"
SYNC_ID_HEADER = "sync-id"


class EventType(StrEnum):
    JOB_OBSERVED = "JobObserved"
    SNAPSHOT_COMPLETED = "SnapshotCompleted"


class Source(StrEnum):
    WEBHOOK = "webhook"
    POLL_FULL = "poll_full"
    POLL_INCREMENTAL = "poll_incremental"
    POLL_SINGLE = "poll_single"
    RESYNC = "resync"


class ChangeKind(StrEnum):
    OPENED = "opened"
    UPDATED = "updated"
    CLOSED = "closed"
    REOPENED = "reopened"


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_event_id() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True, slots=True)
class JobEvent:
    """One record of ``jobs.events``: a job observation or a snapshot marker."""

    event_id: str
    event_type: EventType
    source: Source
    observed_at: datetime
    job_number: int | None = None
    job_status: str | None = None
    modified_at: datetime | None = None
    open_positions: int | None = None
    job_json: str | None = None
    sync_id: str | None = None
    snapshot_id: str | None = None
    started_at: datetime | None = None
    job_count: int | None = None
    suspicious: bool = False
    expected_count: int | None = None

    @property
    def job(self) -> dict[str, Any]:
        """The verbatim Trio job (parsed from ``job_json``)."""
        if self.job_json is None:
            raise ValueError(f"event {self.event_id} ({self.event_type}) carries no job")
        return json.loads(self.job_json)

    @property
    def key(self) -> bytes:
        """The Kafka key: the job Number as UTF-8 decimal (markers are sent to explicit partitions)."""
        if self.job_number is not None:
            return str(self.job_number).encode()
        return f"snapshot:{self.snapshot_id}".encode()

    def to_record(self) -> dict[str, Any]:
        # Shallow on purpose: dataclasses.asdict deep-copies every value and dominated full-sync profiles.
        record = {name: getattr(self, name) for name in _EVENT_FIELDS}
        record["event_type"] = str(self.event_type)
        record["source"] = str(self.source)
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> JobEvent:
        values = dict(record)
        values["event_type"] = EventType(values["event_type"])
        values["source"] = Source(values["source"])
        return cls(**{k: v for k, v in values.items() if k in cls.__dataclass_fields__})


_EVENT_FIELDS = tuple(f.name for f in fields(JobEvent))


def job_observed(
    job: dict[str, Any],
    source: Source,
    *,
    raw_json: str | None = None,
    observed_at: datetime | None = None,
    sync_id: str | None = None,
    snapshot_id: str | None = None,
    event_id: str | None = None,
) -> JobEvent:
    """Build a ``JobObserved`` from a Trio job; raises InvalidJobError naming a bad field.

    ``raw_json`` keeps the job's text exactly as received when the caller has it (webhooks).
    """
    facts = job_facts(job)
    return JobEvent(
        event_id=event_id or new_event_id(),
        event_type=EventType.JOB_OBSERVED,
        source=source,
        observed_at=observed_at or utcnow(),
        job_number=facts.number,
        job_status=facts.status,
        modified_at=facts.modified_at,
        open_positions=facts.open_positions,
        job_json=raw_json if raw_json is not None else json.dumps(job, separators=(",", ":"), ensure_ascii=False),
        sync_id=sync_id,
        snapshot_id=snapshot_id,
    )


def snapshot_completed(
    snapshot_id: str,
    started_at: datetime,
    job_count: int,
    *,
    sync_id: str | None = None,
    suspicious: bool = False,
    expected_count: int | None = None,
    source: Source = Source.POLL_FULL,
    event_id: str | None = None,
) -> JobEvent:
    """Build the marker a full snapshot publishes to every partition once all its jobs are acked."""
    return JobEvent(
        event_id=event_id or new_event_id(),
        event_type=EventType.SNAPSHOT_COMPLETED,
        source=source,
        observed_at=utcnow(),
        sync_id=sync_id,
        snapshot_id=snapshot_id,
        started_at=started_at,
        job_count=job_count,
        suspicious=suspicious,
        expected_count=expected_count,
    )


@dataclass(frozen=True, slots=True)
class JobState:
    """One record of the ``jobs.state`` change feed: the full current state after an effective change."""

    job_number: int
    change_kind: ChangeKind
    source: str
    event_id: str
    job_status: str
    revision: int
    first_seen_at: datetime
    observed_at: datetime
    job_json: str
    changed_fields: list[str] = field(default_factory=list)
    modified_at: datetime | None = None
    open_positions: int | None = None
    closed_at: datetime | None = None
    closed_reason: str | None = None
    closure_inferred: bool = False

    @property
    def key(self) -> bytes:
        return str(self.job_number).encode()

    def to_record(self) -> dict[str, Any]:
        record = {name: getattr(self, name) for name in _STATE_FIELDS}
        record["change_kind"] = str(self.change_kind)
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> JobState:
        values = dict(record)
        values["change_kind"] = ChangeKind(values["change_kind"])
        return cls(**{k: v for k, v in values.items() if k in cls.__dataclass_fields__})


_STATE_FIELDS = tuple(f.name for f in fields(JobState))
