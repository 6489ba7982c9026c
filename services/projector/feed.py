"""Change-feed records (``jobs.state``) built from view documents: pure."""

from __future__ import annotations

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


def pending_change(doc: dict[str, Any] | None) -> Change | None:
    """The change a document says the feed has not acknowledged yet (a crash between write and publish)."""
    if doc is None or not doc.get(d.FEED_PENDING):
        return None
    return Change.from_pending(doc[d.FEED_PENDING])
