"""The projection rules (ARCHITECTURE.md, "Projection rules") as pure functions of data.

``apply(current_doc | None, event, coords) -> Outcome`` decides what one ``JobObserved`` does to one
view document; ``fold_job`` / ``fold_batch`` fold the events of one consumed batch, per job, in offset
order. No I/O here: the service reads the documents, folds, writes the results.

Ordering. An observation's *version* is Trio's ``ModifiedDateUtc`` in microseconds (missing orders
first). Among observations of one version, *received later* means a greater ``(observed_at, event_id)``;
the event id only breaks exact ties so that the result never depends on arrival order.

What "the same view" means (rule 6). Folding any permutation, with any redelivery (the same message
again: same event, same coordinates), of one set of observations gives a document equal in every field
except ``revision`` (how many writes it took) and ``last_change`` (which change was written last, and
from where: what the change feed announces again after a crash). That includes the Trio job (text and
query copy), status, closure fields, ``modified_*``, positions, the provenance of the winning
observation (``observed_*``, ``source``, ``event_id``, ``partition``, ``offset``) and the bookkeeping
(``first_seen_*`` is the earliest observation, ``last_seen_*`` the latest, ``last_snapshot_*`` the full
snapshot of the latest ``poll_full`` observation). It holds for observations that honour Trio's contract
that an unchanged ``ModifiedDateUtc`` means unchanged content except ``NumberOfCurrentOpenPositions``;
when Trio breaks it, rule 3 still wins (only the positions move) and the outcome carries an ``anomaly``
for the log.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from services.common.events import ChangeKind, EventType, JobEvent, Source
from services.common.trio import CLOSED, JOB_STATUS, JOB_STATUS_REASON, LISTED_STATUSES, NUMBER, OPEN_POSITIONS
from services.projector import document as d

INFERRED_CLOSURE_SOURCE = "inferred_closure"


class Label(StrEnum):
    """What an event did, for the ``projector_events_total{outcome=...}`` metric and the log."""

    APPLIED = "applied"  # opened or updated the job
    CLOSED = "closed"  # Trio stated the closure
    REOPENED = "reopened"
    INFERRED_CLOSED = "inferred_closed"  # a full snapshot no longer listed the job
    STALE = "stale"  # older than the view (or an earlier-received copy of its version)
    DUPLICATE = "duplicate"  # the very event the view already holds (redelivery)
    UNCHANGED = "unchanged"  # not older, but changes nothing of the job
    SNAPSHOT = "snapshot"  # a SnapshotCompleted marker was processed (its closures count separately)


@dataclass(frozen=True, slots=True)
class Coords:
    """Where an event was read (and by which consumer group): bookkeeping, never content."""

    partition: int
    offset: int
    group: str | None = None


@dataclass(frozen=True, slots=True)
class Change:
    """One effective change, as the change feed will announce it.

    ``partition``/``offset`` are the coordinates of the event that made it and ``group`` the consumer
    group that read it (all None for a change an operator command made): that group's committed offset
    tells whether the feed has the change.
    """

    kind: ChangeKind
    changed_fields: tuple[str, ...]
    source: str
    event_id: str
    partition: int | None = None
    offset: int | None = None
    group: str | None = None

    @classmethod
    def made_by(cls, kind: ChangeKind, fields: tuple[str, ...], source: str, event_id: str,
                coords: Coords | None) -> Change:
        if coords is None:
            return cls(kind, fields, source, event_id)
        return cls(kind, fields, source, event_id, coords.partition, coords.offset, coords.group)

    def as_mark(self) -> dict[str, Any]:
        """The document's ``last_change`` field. A change without coordinates also carries
        ``announced: False`` until the command that made it has published it (View.mark_announced)."""
        mark: dict[str, Any] = {"kind": str(self.kind), "changed_fields": list(self.changed_fields),
                                "source": self.source, "event_id": self.event_id,
                                "partition": self.partition, "offset": self.offset, "group": self.group}
        if self.offset is None:
            mark["announced"] = False
        return mark

    @classmethod
    def from_mark(cls, mark: dict[str, Any]) -> Change:
        return cls(ChangeKind(mark["kind"]), tuple(mark.get("changed_fields") or ()), mark["source"],
                   mark["event_id"], mark.get("partition"), mark.get("offset"), mark.get("group"))


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of one event on one document.

    ``doc`` is the new document, or None when nothing at all is to be written (not even bookkeeping).
    ``change`` is set only for an effective change (it goes to the change feed).
    """

    label: Label
    doc: dict[str, Any] | None
    change: Change | None = None
    anomaly: str | None = None

    @property
    def effective(self) -> bool:
        return self.change is not None


class InvalidEventError(ValueError):
    """An event that decodes but breaks the schema's contract; the message says which field."""


@dataclass(frozen=True, slots=True)
class Observation:
    """A validated ``JobObserved``: the facts the rules need, and the parsed job."""

    event: JobEvent
    number: int
    status: str
    job: dict[str, Any]
    modified_us: int
    observed_us: int

    @property
    def received_key(self) -> tuple[int, str]:
        return (self.observed_us, self.event.event_id)


def observation(event: JobEvent) -> Observation:
    """Check a ``JobObserved`` against the contract; raises InvalidEventError naming the field."""
    if event.event_type != EventType.JOB_OBSERVED:
        raise InvalidEventError(f"event_type: expected JobObserved, got {event.event_type}")
    if event.job_number is None:
        raise InvalidEventError("job_number: missing on a JobObserved")
    if not event.job_status:
        raise InvalidEventError("job_status: missing on a JobObserved")
    if event.job_json is None:
        raise InvalidEventError("job_json: missing on a JobObserved")
    try:
        job = json.loads(event.job_json, parse_constant=_not_json)
    except ValueError as exc:
        raise InvalidEventError(f"job_json: not JSON ({exc})") from exc
    except RecursionError as exc:
        raise InvalidEventError("job_json: nested too deeply") from exc
    if not isinstance(job, dict):
        raise InvalidEventError("job_json: not a JSON object")
    if job.get(NUMBER) != event.job_number:
        raise InvalidEventError(f"job_json: Number {job.get(NUMBER)!r} differs from job_number {event.job_number}")
    return Observation(
        event=event,
        number=event.job_number,
        status=event.job_status,
        job=job,
        modified_us=d.to_us(event.modified_at) if event.modified_at is not None else d.NO_TIME,
        observed_us=d.to_us(event.observed_at),
    )


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (Python's parser accepts it; no MongoDB-wire server stores it)")


def _label_for(kind: ChangeKind) -> Label:
    return {ChangeKind.CLOSED: Label.CLOSED, ChangeKind.REOPENED: Label.REOPENED}.get(kind, Label.APPLIED)


def _take(obs: Observation, coords: Coords) -> dict[str, Any]:
    """The content and provenance fields of a document that holds ``obs`` as its winning observation."""
    event = obs.event
    closed = obs.status == CLOSED
    # closed_at is when Trio says the job reached its current closed version (its ModifiedDateUtc), so
    # that it is a function of the winning observation alone: re-applying a closure cannot move it.
    closed_us = (obs.modified_us if obs.modified_us != d.NO_TIME else obs.observed_us) if closed else None
    return {
        d.STATUS: obs.status,
        d.JOB_JSON: event.job_json,
        d.JOB: d.query_copy(obs.job),
        d.MODIFIED_US: obs.modified_us,
        d.MODIFIED_AT: d.ms_datetime(obs.modified_us),
        d.OPEN_POSITIONS: event.open_positions,
        d.STATUS_REASON: obs.job.get(JOB_STATUS_REASON),
        d.OBSERVED_US: obs.observed_us,
        d.OBSERVED_AT: d.ms_datetime(obs.observed_us),
        d.SOURCE: str(event.source),
        d.EVENT_ID: event.event_id,
        d.PARTITION: coords.partition,
        d.OFFSET: coords.offset,
        d.CLOSED_US: closed_us,
        d.CLOSED_AT: d.ms_datetime(closed_us),
        d.CLOSED_REASON: obs.job.get(JOB_STATUS_REASON) if closed else None,
        d.CLOSURE_INFERRED: False,
    }


def _bookkeeping(doc: dict[str, Any] | None, obs: Observation) -> dict[str, Any]:
    """Rule 7: the job was seen. Min/max semantics, so order and repetition do not matter."""
    first = obs.observed_us if doc is None else min(doc[d.FIRST_SEEN_US], obs.observed_us)
    last = obs.observed_us if doc is None else max(doc[d.LAST_SEEN_US], obs.observed_us)
    out = {
        d.FIRST_SEEN_US: first,
        d.FIRST_SEEN_AT: d.ms_datetime(first),
        d.LAST_SEEN_US: last,
        d.LAST_SEEN_AT: d.ms_datetime(last),
        d.LAST_SNAPSHOT_ID: None if doc is None else doc.get(d.LAST_SNAPSHOT_ID),
        d.LAST_SNAPSHOT_US: None if doc is None else doc.get(d.LAST_SNAPSHOT_US),
    }
    snapshot = obs.event.snapshot_id
    if obs.event.source == Source.POLL_FULL and snapshot:
        held = (out[d.LAST_SNAPSHOT_US] or d.NO_TIME, out[d.LAST_SNAPSHOT_ID] or "")
        if (obs.observed_us, snapshot) > held:
            out[d.LAST_SNAPSHOT_ID] = snapshot
            out[d.LAST_SNAPSHOT_US] = obs.observed_us
    return out


def _changed_fields(old_job: dict[str, Any] | None, new_job: dict[str, Any], status_moved: bool) -> tuple[str, ...]:
    if old_job is None:
        return ()
    names = {k for k in old_job.keys() | new_job.keys() if old_job.get(k, _MISSING) != new_job.get(k, _MISSING)}
    if status_moved:
        names.add(JOB_STATUS)
    return tuple(sorted(names))


_MISSING = object()


def _is_closed(doc: dict[str, Any]) -> bool:
    return doc.get(d.STATUS) == CLOSED


def _finish(doc: dict[str, Any], new: dict[str, Any], obs: Observation, coords: Coords, *, stale: bool,
            anomaly: str | None = None, content_label: Label | None = None) -> Outcome:
    """Compare ``new`` with ``doc``; build the outcome (label, change, revision, last change)."""
    if d.content(new) != d.content(doc):
        was_closed, is_closed = _is_closed(doc), _is_closed(new)
        if is_closed and not was_closed:
            kind = ChangeKind.CLOSED
        elif was_closed and not is_closed:
            kind = ChangeKind.REOPENED
        else:
            kind = ChangeKind.UPDATED
        fields = _changed_fields(doc[d.JOB], new[d.JOB], new[d.STATUS] != doc[d.STATUS])
        change = Change.made_by(kind, fields, str(obs.event.source), obs.event.event_id, coords)
        new[d.REVISION] = doc[d.REVISION] + 1
        new[d.LAST_CHANGE] = change.as_mark()
        return Outcome(content_label or _label_for(kind), new, change, anomaly)
    label = Label.STALE if stale else Label.UNCHANGED
    if new == doc:
        return Outcome(label, None, None, anomaly)
    new[d.REVISION] = doc[d.REVISION] + 1
    return Outcome(label, new, None, anomaly)


def apply(doc: dict[str, Any] | None, event: JobEvent | Observation, coords: Coords) -> Outcome:
    """Rules 1-7 for one observation of one job. ``doc`` is the job's view document or None."""
    obs = event if isinstance(event, Observation) else observation(event)
    if doc is None:
        new = {d.ID: obs.number, d.REVISION: 1, **_take(obs, coords), **_bookkeeping(None, obs)}
        kind = ChangeKind.CLOSED if obs.status == CLOSED else ChangeKind.OPENED
        change = Change.made_by(kind, (), str(obs.event.source), obs.event.event_id, coords)
        new[d.LAST_CHANGE] = change.as_mark()
        return Outcome(_label_for(kind), new, change)
    if doc[d.ID] != obs.number:
        raise ValueError(f"event for job {obs.number} applied to the document of job {doc[d.ID]}")
    if doc[d.EVENT_ID] == obs.event.event_id:
        return Outcome(Label.DUPLICATE, None)  # rule 7: a redelivery changes nothing at all

    new = {**doc, **_bookkeeping(doc, obs)}
    stored_modified = doc[d.MODIFIED_US]
    received_later = obs.received_key > (doc[d.OBSERVED_US], doc[d.EVENT_ID])

    # Rule 5: an inferred closure is weaker than Trio's word. An Open/OnHold observation of a version
    # at least as new, received after the snapshot that closed the job began, reopens it.
    if (doc.get(d.CLOSURE_INFERRED) and obs.status in LISTED_STATUSES and obs.modified_us >= stored_modified
            and obs.observed_us >= doc[d.CLOSED_US]):
        new.update(_take(obs, coords))
        return _finish(doc, new, obs, coords, stale=False)

    if obs.modified_us > stored_modified:  # rule 2 (and rule 4: a newer Open reopens a closed job)
        new.update(_take(obs, coords))
        return _finish(doc, new, obs, coords, stale=False)

    if obs.modified_us == stored_modified and received_later:
        # Rule 3: same version, received later: only what Trio changes without bumping the version
        # (the open positions) may change.
        taken = _take(obs, coords)
        # The view's status and closure stay (an inferred closure stays closed; a status that differs is
        # Trio breaking its contract). A stated closure of an undated version dates from the winner.
        same_status = doc[d.STATUS] == obs.status and not doc.get(d.CLOSURE_INFERRED)
        kept = {} if same_status else {
            k: doc[k] for k in (d.STATUS, d.CLOSED_US, d.CLOSED_AT, d.CLOSED_REASON, d.CLOSURE_INFERRED)}
        anomaly = None
        stored_job = json.loads(doc[d.JOB_JSON])
        if _without_positions(stored_job) != _without_positions(obs.job):
            # Trio broke its contract: keep the stored fields, move only the positions.
            anomaly = "same ModifiedDateUtc but fields other than the open positions differ; kept the stored ones"
            patched = dict(stored_job)
            if OPEN_POSITIONS in obs.job:
                patched[OPEN_POSITIONS] = obs.job[OPEN_POSITIONS]
            taken[d.JOB_JSON] = json.dumps(patched, separators=(",", ":"), ensure_ascii=False)
            taken[d.JOB] = d.query_copy(patched)
            taken[d.STATUS_REASON] = doc.get(d.STATUS_REASON)
        new.update(taken)
        new.update(kept)
        return _finish(doc, new, obs, coords, stale=False, anomaly=anomaly)

    # Rules 2 and 4: older (or an earlier-received copy of the same version) changes nothing but
    # bookkeeping; an older Open never reopens a closed job.
    return _finish(doc, new, obs, coords, stale=True)


def _without_positions(job: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in job.items() if k != OPEN_POSITIONS}


def infer_closure(doc: dict[str, Any], marker: JobEvent, coords: Coords | None = None) -> Outcome | None:
    """Rule 5's closure: close ``doc`` because full snapshot ``marker`` did not list it.

    ``coords`` is where the marker was read (None: an operator applies a guarded snapshot).

    Returns None when the job is not a candidate: not Open/OnHold, seen in the snapshot, or observed
    at or after the snapshot started. Applying it twice changes nothing (the second time the job is
    Closed, so not a candidate).
    """
    if marker.snapshot_id is None or marker.started_at is None:
        raise InvalidEventError("SnapshotCompleted without snapshot_id or started_at")
    started_us = d.to_us(marker.started_at)
    if not is_closure_candidate(doc, marker.snapshot_id, started_us):
        return None
    new = dict(doc)
    new.update({
        d.STATUS: CLOSED,
        d.CLOSED_US: started_us,
        d.CLOSED_AT: d.ms_datetime(started_us),
        d.CLOSED_REASON: f"not in snapshot {marker.snapshot_id}",
        d.CLOSURE_INFERRED: True,
        d.REVISION: doc[d.REVISION] + 1,
    })
    change = Change.made_by(ChangeKind.CLOSED, (JOB_STATUS,), INFERRED_CLOSURE_SOURCE, marker.event_id, coords)
    new[d.LAST_CHANGE] = change.as_mark()
    return Outcome(Label.INFERRED_CLOSED, new, change)


def is_closure_candidate(doc: dict[str, Any], snapshot_id: str, started_us: int) -> bool:
    return (
        doc.get(d.STATUS) in LISTED_STATUSES
        and doc.get(d.LAST_SNAPSHOT_ID) != snapshot_id
        and doc[d.LAST_SEEN_US] < started_us
    )


@dataclass
class JobFold:
    """The events of one batch folded onto one job's document."""

    number: int
    base: dict[str, Any] | None  # the document as read
    doc: dict[str, Any] | None  # the document after the fold (None: no write needed)
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def changes(self) -> list[tuple[Change, dict[str, Any]]]:
        """Effective changes, each with the document state right after it."""
        return [(o.change, o.doc) for o in self.outcomes if o.change is not None and o.doc is not None]


def fold_job(base: dict[str, Any] | None, items: Iterable[tuple[Observation, Coords]]) -> JobFold:
    """Fold one job's observations in offset order onto ``base``."""
    current = base
    outcomes: list[Outcome] = []
    number: int | None = base[d.ID] if base is not None else None
    for obs, coords in items:
        number = obs.number
        outcome = apply(current, obs, coords)
        outcomes.append(outcome)
        if outcome.doc is not None:
            current = outcome.doc
    if number is None:
        raise ValueError("fold_job needs a document or at least one observation")
    return JobFold(number, base, current if current is not base else None, outcomes)


def group_by_job(items: Sequence[tuple[Observation, Coords]]) -> dict[int, list[tuple[Observation, Coords]]]:
    """Group a batch's observations per job, keeping each job's offset order."""
    grouped: dict[int, list[tuple[Observation, Coords]]] = {}
    for obs, coords in items:
        grouped.setdefault(obs.number, []).append((obs, coords))
    return grouped


def fold_batch(
    docs: dict[int, dict[str, Any]], items: Sequence[tuple[Observation, Coords]]
) -> dict[int, JobFold]:
    """Fold a batch: per job, in offset order, onto the documents read (absent = a new job)."""
    return {number: fold_job(docs.get(number), job_items) for number, job_items in group_by_job(items).items()}
