"""The projection rules, property-tested: order, duplication, staleness, closures (pure, no I/O)."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, replace
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from services.common.events import ChangeKind, EventType, JobEvent, Source, snapshot_completed
from services.projector import document as d
from services.projector.feed import BatchReader, unannounced
from services.projector.rules import (
    Coords,
    InvalidEventError,
    Label,
    apply,
    fold_batch,
    fold_job,
    infer_closure,
    observation,
)

pytestmark = pytest.mark.unit

T0 = d.EPOCH + timedelta(days=20_000)
NUMBER = 4711


@dataclass(frozen=True)
class Version:
    """One Trio version of the job: content fixed by its ModifiedDateUtc (Trio's contract)."""

    modified: int | None  # seconds after T0, None = Trio sent no ModifiedDateUtc
    status: str
    title: str
    reason: str | None


def job_text(version: Version, positions: int | None, spacing: bool = False) -> str:
    job: dict = {"Number": NUMBER, "Title": version.title, "JobStatus": version.status,
                 "JobStatusReason": version.reason, "NumberOfCurrentOpenPositions": positions,
                 "Unknown.Field": {"$nested": [1, {"x": version.title}]}}
    if version.modified is not None:
        job["ModifiedDateUtc"] = (T0 + timedelta(seconds=version.modified, microseconds=7)).isoformat()
    return json.dumps(job, separators=(", ", ": ") if spacing else (",", ":"))


def event(version: Version, positions: int | None, observed: int, event_id: str,
          source: Source = Source.WEBHOOK, snapshot_id: str | None = None, spacing: bool = False) -> JobEvent:
    return JobEvent(
        event_id=event_id,
        event_type=EventType.JOB_OBSERVED,
        source=source,
        observed_at=T0 + timedelta(microseconds=observed),
        job_number=NUMBER,
        job_status=version.status,
        modified_at=None if version.modified is None else T0 + timedelta(seconds=version.modified, microseconds=7),
        open_positions=positions,
        job_json=job_text(version, positions, spacing),
        snapshot_id=snapshot_id,
    )


versions_st = st.lists(
    st.builds(
        Version,
        modified=st.one_of(st.none(), st.integers(0, 5)),
        status=st.sampled_from(["Open", "OnHold", "Closed"]),
        title=st.sampled_from(["Nurse", "RN ICU", "LPN"]),
        reason=st.sampled_from([None, "Filled", "Cancelled"]),
    ),
    min_size=1, max_size=4, unique_by=lambda v: v.modified,
)


@st.composite
def observations(draw):
    """Observations of one job that honour Trio's contract, each a (message, coords) pair."""
    versions = draw(versions_st)
    count = draw(st.integers(1, 8))
    items = []
    for i in range(count):
        version = draw(st.sampled_from(versions))
        source = draw(st.sampled_from(list(Source)))
        snapshot = draw(st.sampled_from(["S1", "S2"])) if source == Source.POLL_FULL else None
        ev = event(version, draw(st.one_of(st.none(), st.integers(0, 3))), draw(st.integers(0, 50)),
                   f"e{i:02d}", source, snapshot, spacing=draw(st.booleans()))
        items.append((ev, Coords(draw(st.integers(0, 2)), 100 + i)))
    return items


def fold(items):
    return fold_job(None, [(observation(ev), c) for ev, c in items])


def final(items):
    result = fold(items)
    return result.doc


@st.composite
def reorderings(draw):
    """A set of observations, and a second delivery of it: shuffled, with redeliveries mixed in."""
    items = draw(observations())
    redelivered = draw(st.lists(st.sampled_from(items), max_size=6))
    seed = draw(st.integers(0, 2**32))
    other = items + redelivered
    random.Random(seed).shuffle(other)
    return items, other


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(reorderings())
def test_any_order_and_duplication_yield_the_same_document_except_write_bookkeeping(pair):
    """Rule 6: equal in every field (Trio job, status, closure, times, provenance) but revision/last_change."""
    first, second = pair
    assert d.without_write_bookkeeping(final(first)) == d.without_write_bookkeeping(final(second))


@settings(max_examples=400)
@given(observations())
def test_the_view_holds_the_latest_version_and_the_latest_received_copy_of_it(items):
    """An independent oracle: the winner is the max of (ModifiedDateUtc, observed_at, event_id)."""
    def key(item):
        ev = item[0]
        return (d.NO_TIME if ev.modified_at is None else d.to_us(ev.modified_at), d.to_us(ev.observed_at), ev.event_id)

    winner, coords = max(items, key=key)
    doc = final(items)
    assert doc[d.JOB_JSON] == winner.job_json
    assert doc[d.EVENT_ID] == winner.event_id
    assert (doc[d.PARTITION], doc[d.OFFSET]) == (coords.partition, coords.offset)
    assert doc[d.STATUS] == winner.job_status
    assert doc[d.OPEN_POSITIONS] == winner.open_positions
    assert doc[d.MODIFIED_US] == (d.NO_TIME if winner.modified_at is None else d.to_us(winner.modified_at))
    assert doc[d.FIRST_SEEN_US] == min(d.to_us(ev.observed_at) for ev, _ in items)
    assert doc[d.LAST_SEEN_US] == max(d.to_us(ev.observed_at) for ev, _ in items)
    closed = winner.job_status == "Closed"
    assert (doc[d.CLOSED_REASON] if closed else None) == (json.loads(winner.job_json)["JobStatusReason"]
                                                          if closed else None)
    assert doc[d.CLOSURE_INFERRED] is False
    assert doc[d.JOB]["Unknown\uff0eField"] == {"\uff04nested": [1, {"x": json.loads(winner.job_json)["Title"]}]}


@settings(max_examples=300)
@given(observations(), st.data())
def test_a_stale_observation_changes_nothing_of_the_job(items, data):
    doc = final(items)
    assume(doc[d.MODIFIED_US] != d.NO_TIME)
    older = Version(None, "Open", "Older title", None)
    stale = event(older, 9, data.draw(st.integers(0, 10**9)), "stale-one")
    outcome = apply(doc, stale, Coords(0, 999))
    assert outcome.label == Label.STALE
    assert outcome.change is None
    after = outcome.doc or doc
    assert d.content(after) == d.content(doc)
    for name in (d.JOB_JSON, d.MODIFIED_US, d.OPEN_POSITIONS, d.EVENT_ID, d.OBSERVED_US, d.SOURCE, d.OFFSET):
        assert after[name] == doc[name]


@settings(max_examples=300)
@given(observations())
def test_a_redelivered_event_changes_nothing_at_all(items):
    result = fold(items)
    for ev, coords in items:
        outcome = apply(result.doc, ev, coords)
        assert outcome.doc is None, "a redelivery must not even write bookkeeping"
        assert outcome.change is None


def test_a_closure_applied_twice_changes_nothing_not_even_timestamps():
    closed = Version(3, "Closed", "Nurse", "Filled")
    opened = apply(None, event(Version(1, "Open", "Nurse", None), 2, 10, "open"), Coords(0, 1)).doc
    first = apply(opened, event(closed, 0, 20, "close-webhook"), Coords(0, 2))
    assert first.label == Label.CLOSED and first.change.kind == ChangeKind.CLOSED
    doc = first.doc
    assert doc[d.CLOSED_REASON] == "Filled"
    assert doc[d.CLOSED_AT] == d.ms_datetime(d.to_us(T0 + timedelta(seconds=3, microseconds=7)))
    assert apply(doc, event(closed, 0, 20, "close-webhook"), Coords(0, 2)).doc is None  # the same event
    # the same closure seen again by a later poll: same version and content, received later
    again = apply(doc, event(closed, 0, 30, "close-poll", Source.POLL_SINGLE), Coords(0, 3))
    assert again.change is None and again.label == Label.UNCHANGED
    for name in (d.STATUS, d.CLOSED_AT, d.CLOSED_US, d.CLOSED_REASON, d.JOB, d.MODIFIED_US):
        assert again.doc[name] == doc[name]


def test_an_older_open_never_reopens_a_stated_closure_and_a_newer_one_does():
    doc = apply(None, event(Version(3, "Closed", "Nurse", "Filled"), 0, 20, "close"), Coords(0, 1)).doc
    older = apply(doc, event(Version(2, "Open", "Nurse", None), 1, 30, "late-open"), Coords(0, 2))
    assert older.label == Label.STALE and older.change is None
    newer = apply(doc, event(Version(4, "Open", "Nurse", None), 1, 40, "reopen"), Coords(0, 3))
    assert newer.label == Label.REOPENED and newer.change.kind == ChangeKind.REOPENED
    assert newer.doc[d.STATUS] == "Open" and newer.doc[d.CLOSED_AT] is None and newer.doc[d.CLOSED_REASON] is None


@settings(max_examples=200)
@given(st.integers(0, 5), st.integers(0, 5), st.integers(0, 100), st.integers(1, 100), st.booleans())
def test_positions_at_equal_modified_date_come_from_the_later_received_observation(p1, p2, t1, gap, reverse):
    version = Version(2, "Open", "Nurse", None)
    early = (event(version, p1, t1, "early"), Coords(0, 1))
    late = (event(version, p2, t1 + gap, "late"), Coords(0, 2))
    result = fold([late, early] if reverse else [early, late])
    assert result.doc[d.OPEN_POSITIONS] == p2
    assert json.loads(result.doc[d.JOB_JSON])["NumberOfCurrentOpenPositions"] == p2
    changes = [c for c, _ in result.changes]
    if not reverse and p1 != p2:
        assert changes[-1].kind == ChangeKind.UPDATED
        assert changes[-1].changed_fields == ("NumberOfCurrentOpenPositions",)


def test_trio_breaking_its_contract_moves_only_the_positions_and_says_so():
    doc = apply(None, event(Version(2, "Open", "Nurse", None), 1, 10, "first"), Coords(0, 1)).doc
    odd = apply(doc, event(Version(2, "Open", "Surgeon", None), 4, 20, "odd"), Coords(0, 2))
    assert odd.anomaly is not None
    assert odd.doc[d.JOB]["Title"] == "Nurse"
    assert odd.doc[d.OPEN_POSITIONS] == 4
    assert odd.change.changed_fields == ("NumberOfCurrentOpenPositions",)


def marker(snapshot: str, started: int):
    return snapshot_completed(snapshot, T0 + timedelta(microseconds=started), 10, event_id=f"m-{snapshot}")


def test_an_inferred_closure_is_reopened_by_a_later_open_of_a_version_at_least_as_new():
    doc = apply(None, event(Version(2, "Open", "Nurse", None), 1, 10, "seen"), Coords(1, 5)).doc
    closure = infer_closure(doc, marker("S9", 100))
    assert closure.label == Label.INFERRED_CLOSED
    closed = closure.doc
    assert closed[d.STATUS] == "Closed" and closed[d.CLOSURE_INFERRED] is True
    assert closed[d.CLOSED_REASON] == "not in snapshot S9"
    assert closed[d.EVENT_ID] == "seen", "an inferred closure keeps the Trio observation's provenance"
    assert infer_closure(closed, marker("S9", 100)) is None, "a closure applied twice changes nothing"
    # a copy of the same version received before the snapshot began is no evidence against it
    before = apply(closed, event(Version(2, "Open", "Nurse", None), 1, 50, "before"), Coords(1, 6))
    assert before.doc[d.STATUS] == "Closed" and before.change is None
    # the same version seen again after the snapshot began reopens it
    after = apply(closed, event(Version(2, "Open", "Nurse", None), 1, 150, "after"), Coords(1, 7))
    assert after.label == Label.REOPENED and after.change.kind == ChangeKind.REOPENED
    assert after.doc[d.STATUS] == "Open" and after.doc[d.CLOSURE_INFERRED] is False
    assert after.change.changed_fields == ("JobStatus",)
    # an older version never reopens it
    older = apply(closed, event(Version(1, "Open", "Nurse", None), 1, 200, "older"), Coords(1, 8))
    assert older.doc[d.STATUS] == "Closed" and older.label == Label.STALE


def test_a_stated_closure_is_not_reopened_by_a_same_version_open():
    doc = apply(None, event(Version(2, "Closed", "Nurse", "Filled"), 0, 10, "closed"), Coords(0, 1)).doc
    same = apply(doc, event(Version(2, "Open", "Nurse", None), 1, 150, "odd-open"), Coords(0, 2))
    assert same.doc[d.STATUS] == "Closed"


def test_closure_candidates_exclude_jobs_seen_in_the_snapshot_or_after_it_started():
    seen_in = apply(None, event(Version(2, "Open", "N", None), 1, 10, "a", Source.POLL_FULL, "S1"), Coords(0, 1)).doc
    assert infer_closure(seen_in, marker("S1", 5)) is None
    seen_after = apply(None, event(Version(2, "Open", "N", None), 1, 200, "b"), Coords(0, 2)).doc
    assert infer_closure(seen_after, marker("S1", 100)) is None
    on_hold = apply(None, event(Version(2, "OnHold", "N", None), 1, 10, "c"), Coords(0, 3)).doc
    assert infer_closure(on_hold, marker("S1", 100)).label == Label.INFERRED_CLOSED
    closed = apply(None, event(Version(2, "Closed", "N", "Filled"), 1, 10, "d"), Coords(0, 4)).doc
    assert infer_closure(closed, marker("S1", 100)) is None


def test_a_fold_reports_every_effective_change_once_and_writes_once_per_job():
    v1, v2 = Version(1, "Open", "Nurse", None), Version(2, "Closed", "Nurse", "Filled")
    items = [(observation(event(v1, 1, 10, "a")), Coords(0, 1)),
             (observation(event(v1, 1, 10, "a")), Coords(0, 1)),
             (observation(event(v2, 0, 20, "b")), Coords(0, 2)),
             (observation(replace(event(v1, 1, 5, "c"), job_number=NUMBER + 1, job_json=job_text(v1, 1)
                                  .replace(str(NUMBER), str(NUMBER + 1)))), Coords(0, 3))]
    folds = fold_batch({}, items)
    assert set(folds) == {NUMBER, NUMBER + 1}
    job = folds[NUMBER]
    assert [o.label for o in job.outcomes] == [Label.APPLIED, Label.DUPLICATE, Label.CLOSED]
    assert [c.kind for c, _ in job.changes] == [ChangeKind.OPENED, ChangeKind.CLOSED]
    assert [s[d.REVISION] for _, s in job.changes] == [1, 2]
    assert job.doc[d.REVISION] == 2
    assert job.doc[d.LAST_CHANGE]["kind"] == "closed"


def test_a_document_already_holding_every_event_needs_no_write():
    ev = event(Version(1, "Open", "Nurse", None), 1, 10, "a")
    doc = apply(None, ev, Coords(0, 1)).doc
    result = fold_job(doc, [(observation(ev), Coords(0, 1))])
    assert result.doc is None and result.changes == []


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"job_number": None}, "job_number"),
        ({"job_status": None}, "job_status"),
        ({"job_json": None}, "job_json"),
        ({"job_json": "{not json"}, "job_json"),
        ({"job_json": "[1]"}, "job_json"),
        ({"job_number": 5}, "job_json"),
        ({"event_type": EventType.SNAPSHOT_COMPLETED}, "event_type"),
    ],
)
def test_an_event_breaking_the_contract_is_refused_naming_the_field(change, field):
    bad = replace(event(Version(1, "Open", "Nurse", None), 1, 10, "a"), **change)
    with pytest.raises(InvalidEventError, match=field):
        observation(bad)


def test_unsafe_keys_and_huge_integers_are_made_storable_only_in_the_query_copy():
    text = '{"Number":1,"JobStatus":"Open","a.b":1,"$c":2,"":3,"big":123456789012345678901234567890}'
    ev = JobEvent("x", EventType.JOB_OBSERVED, Source.WEBHOOK, T0, job_number=1, job_status="Open", job_json=text)
    doc = apply(None, ev, Coords(0, 0)).doc
    assert doc[d.JOB_JSON] == text
    assert doc[d.JOB] == {"Number": 1, "JobStatus": "Open", "a\uff0eb": 1, "\uff04c": 2, "\u2400": 3,
                          "big": "123456789012345678901234567890"}


# Valid JSON that some MongoDB-wire server cannot store as is: NUL (PostgreSQL's jsonb under FerretDB), a
# lone surrogate escape (not UTF-8), NUL in a key (BSON), arrays inside arrays (FerretDB).
AWKWARD = ('{"Number":1,"JobStatus":"Open","nul":"a\\u0000b","half":"x\\ud800y","k\\u0000":1,'
           '"grid":[[1,2],[3,[4]]],"mixed":[1,{"in":[[5]]},"s"]}')


def test_what_a_server_cannot_store_is_made_storable_only_in_the_query_copy():
    ev = JobEvent("x", EventType.JOB_OBSERVED, Source.WEBHOOK, T0, job_number=1, job_status="Open", job_json=AWKWARD)
    doc = apply(None, ev, Coords(0, 0)).doc
    assert doc[d.JOB_JSON] == AWKWARD
    assert doc[d.JOB] == {"Number": 1, "JobStatus": "Open", "nul": "a\u2400b", "half": "x\ufffdy", "k\u2400": 1,
                          "grid": ["[1,2]", "[3,[4]]"], "mixed": [1, {"in": ["[5]"]}, "s"]}


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_json_constants_python_accepts_are_not_json(literal: str):
    text = f'{{"Number":1,"JobStatus":"Open","Score":{literal}}}'
    ev = JobEvent("x", EventType.JOB_OBSERVED, Source.WEBHOOK, T0, job_number=1, job_status="Open", job_json=text)
    with pytest.raises(InvalidEventError, match=f"job_json: not JSON .*{literal} is not JSON"):
        observation(ev)


# ---- which change the feed may have missed (feed.unannounced)


def test_a_change_read_by_the_group_again_from_before_its_offset_is_unannounced():
    ev = event(Version(1, "Open", "Nurse", None), 1, 10, "a")
    doc = apply(None, ev, Coords(2, 40, "projector")).doc
    assert doc[d.LAST_CHANGE] == {"kind": "opened", "changed_fields": [], "source": "webhook", "event_id": "a",
                                       "partition": 2, "offset": 40, "group": "projector"}
    for start in (0, 40):  # the batch re-reads the event that made the change: the commit never happened
        change = unannounced(doc, BatchReader("projector", {2: start}))
        assert change is not None and change.kind == ChangeKind.OPENED and change.offset == 40
    assert unannounced(doc, BatchReader("projector", {2: 41})) is None, "committed past it: announced"
    assert unannounced(doc, BatchReader("projector", {1: 0})) is None, "the batch does not read that partition"
    assert unannounced(doc, BatchReader("other-group", {2: 0})) is None, "another group's change is its own"
    assert unannounced(doc, None) is None, "outside the consumer"


def test_an_operator_change_is_unannounced_until_marked():
    doc = apply(None, event(Version(1, "Open", "Nurse", None), 1, 10, "a"), Coords(0, 1, "projector")).doc
    closed = infer_closure(doc, marker("S9", 100)).doc  # no coordinates: an operator applied it
    assert closed[d.LAST_CHANGE]["announced"] is False and closed[d.LAST_CHANGE]["offset"] is None
    for reader in (None, BatchReader("projector", {0: 0})):
        change = unannounced(closed, reader)
        assert change is not None and change.kind == ChangeKind.CLOSED and change.source == "inferred_closure"
    marked = {**closed, d.LAST_CHANGE: {**closed[d.LAST_CHANGE], "announced": True}}
    assert unannounced(marked, None) is None
    by_consumer = infer_closure(doc, marker("S9", 100), Coords(0, 7, "projector")).doc
    assert "announced" not in by_consumer[d.LAST_CHANGE] and by_consumer[d.LAST_CHANGE]["offset"] == 7


def test_a_write_that_changes_nothing_effective_keeps_the_last_change():
    v1 = Version(1, "Open", "Nurse", None)
    doc = apply(None, event(v1, 1, 10, "a"), Coords(0, 1, "g")).doc
    later = apply(doc, event(v1, 1, 20, "b", source=Source.POLL_FULL, snapshot_id="S1"), Coords(0, 9, "g"))
    assert later.change is None and later.doc is not None, "bookkeeping only (last seen, snapshot)"
    assert later.doc[d.LAST_CHANGE] == doc[d.LAST_CHANGE], "still the change that event a made"


def test_only_a_write_error_about_the_document_is_a_refusal():
    from services.projector.view import refusal

    assert refusal(11000, "E11000 duplicate key") is None, "a lost race: re-read and re-apply"
    for transient in (91, 189, 262, 10107, 11600):  # shutdown, stepdown, time limit, not primary, interrupted
        assert refusal(transient, "try later") is None
    assert refusal(2, "invalid value") == "the view's server refused the document (code 2): invalid value"
    assert refusal(121, "Document failed validation") is not None


def test_a_document_the_driver_cannot_send_is_named_with_the_reason():
    from services.projector.view import MAX_DOCUMENT_BYTES, _unencodable

    assert _unencodable({"_id": 1, "job": {"Title": "Nurse"}}) is None
    assert "NULL byte" in _unencodable({"_id": 1, "job": {"a\x00": 1}})
    assert "surrogates not allowed" in _unencodable({"_id": 1, "job": {"a": "\ud800"}})
    too_big = _unencodable({"_id": 1, "job_json": "x" * MAX_DOCUMENT_BYTES})
    assert too_big is not None and "above the 16777216" in too_big
