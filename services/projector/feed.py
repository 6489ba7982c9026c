"""Change-feed records (``jobs.state``) built from view documents, and whether the feed has one: pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from services.common.events import JobState
from services.projector import document as d
from services.projector.rules import Change


def job_state(doc: dict[str, Any], change: Change) -> JobState:
    """The full state of ``doc`` announced as ``change`` (each record carries the whole job)."""
    modified = doc.get(d.MODIFIED_US)
    closed = doc.get(d.CLOSED_US)
    return JobState(
        job_number=doc[d.ID],
        change_kind=change.kind,
        source=change.source,
        event_id=change.event_id,
        job_status=doc[d.STATUS],
        revision=doc[d.REVISION],
        first_seen_at=d.from_us(doc[d.FIRST_SEEN_US]),
        observed_at=d.from_us(doc[d.OBSERVED_US]),
        job_json=doc[d.JOB_JSON],
        changed_fields=list(change.changed_fields),
        modified_at=None if modified is None or modified == d.NO_TIME else d.from_us(modified),
        open_positions=doc.get(d.OPEN_POSITIONS),
        closed_at=None if closed is None else d.from_us(closed),
        closed_reason=doc.get(d.CLOSED_REASON),
        closure_inferred=bool(doc.get(d.CLOSURE_INFERRED)),
    )


def unannounced(doc: dict[str, Any] | None, reader: BatchReader | None) -> Change | None:
    """The document's last change, if the change feed may not have it (a crash between write and publish).

    The projector commits an event's offset only after the feed acknowledged what the event changed, and
    reads each partition from its group's committed offset on. So a change made by the event at
    ``offset`` of ``partition``, read by the consumer group now reading, is unannounced exactly when
    the batch in hand starts at or before that offset. A change read by another group is that group's
    to announce when it reads the event again; outside the consumer (``reader`` None) no consumer change
    is. A change an operator command made has no coordinates and says itself whether it was announced.
    """
    if doc is None or not doc.get(d.LAST_CHANGE):
        return None
    mark = doc[d.LAST_CHANGE]
    change = Change.from_mark(mark)
    if change.offset is None:
        return None if mark.get("announced", True) else change
    if reader is None or change.group != reader.group or change.partition is None:
        return None
    start = reader.starts.get(change.partition)
    return change if start is not None and change.offset >= start else None


@dataclass(frozen=True)
class BatchReader:
    """The consumer group reading a batch, and the batch's first offset on each of its partitions."""

    group: str
    starts: Mapping[int, int]
