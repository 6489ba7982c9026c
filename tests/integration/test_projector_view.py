"""The projector against the real broker and the real MongoDB-wire server: replay, feed, snapshots, DLQ."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.common.dlq import parse_dlq_headers
from services.common.events import ChangeKind, Source
from services.projector.operations import apply_snapshot, list_snapshots, read_dlq, replay_dlq
from services.projector.view import mongo_client
from tests.helpers import consume
from tests.projector_support import (
    T0,
    Running,
    feed,
    job_of,
    numbers_on,
    observed,
    projector_settings,
    publish,
    publish_marker,
    view_docs,
)

pytestmark = pytest.mark.integration


def scenario():
    """Observations of three jobs, out of order and duplicated, with the number of effective changes each makes."""
    v1 = observed(1, "Open", modified=1, positions=2, at=10)
    v2 = observed(1, "Open", modified=2, positions=2, at=20, Title="Night nurse")
    v3 = observed(1, "Closed", modified=3, positions=0, at=30, Title="Night nurse")
    late_v1 = observed(1, "Open", modified=1, positions=2, at=5)
    a = observed(2, "OnHold", modified=1, positions=1, at=10, source=Source.POLL_FULL, snapshot_id="S0")
    b = observed(2, "OnHold", modified=1, positions=3, at=40, source=Source.POLL_FULL, snapshot_id="S1")
    c = observed(3, "Open", modified=7, positions=1, at=10, Unknown={"nested": [1, 2, {"deep": True}]})
    events = [v1, v2, v2, late_v1, v3, v1, b, a, c, c]
    # job 1: opened, updated (Title), closed; job 2: opened (b: the later-received copy), a is older;
    # job 3: opened; redeliveries and late copies change nothing.
    expected = [(1, ChangeKind.OPENED), (1, ChangeKind.UPDATED), (1, ChangeKind.CLOSED),
                (2, ChangeKind.OPENED), (3, ChangeKind.OPENED)]
    return events, expected


async def test_replaying_the_same_events_changes_no_field_and_the_feed_has_one_record_per_change(
    kafka_settings, mongo_settings, producer
):
    events, expected = scenario()
    await publish(producer, kafka_settings, events)
    async with Running(projector_settings(), kafka_settings, mongo_settings) as first:
        await first.drain()
        assert first.sample("projector_events_total", outcome="stale") >= 1
        assert first.sample("projector_events_total", outcome="duplicate") >= 1
    view = await view_docs(mongo_settings)
    assert set(view) == {1, 2, 3}
    assert view[1]["status"] == "Closed" and view[1]["closed_reason"] == "Filled"
    assert job_of(view[1])["Title"] == "Night nurse"
    assert view[2]["open_positions"] == 3 and view[2]["last_snapshot_id"] == "S1"
    assert job_of(view[3])["Unknown"] == {"nested": [1, 2, {"deep": True}]}
    assert view[3]["job_json"] == events[8].job_json, "the Trio job is kept verbatim"
    assert view[3]["job"]["Facility\uff0eCode"] == "N-1"
    assert all(doc["last_change"]["group"] == first.projector.group_id for doc in view.values())

    records = feed(kafka_settings, len(expected))
    assert sorted((r.job_number, r.change_kind) for r in records) == sorted(expected)
    closed = next(r for r in records if r.change_kind == ChangeKind.CLOSED)
    assert closed.changed_fields and "JobStatus" in closed.changed_fields and closed.job_status == "Closed"

    # The same events again, and a second consumer group reading everything from the start.
    await publish(producer, kafka_settings, events)
    async with Running(projector_settings(), kafka_settings, mongo_settings) as second:
        await second.drain()
        assert second.sample("projector_feed_records_total", kind="opened") == 0
    assert await view_docs(mongo_settings) == view, "a replay must not change any field, not even a timestamp"
    assert len(feed(kafka_settings, len(expected) + 1, timeout=5)) == len(expected), "a replay announces nothing"


async def test_a_snapshot_marker_closes_exactly_the_unlisted_jobs_of_each_partition(
    kafka_settings, mongo_settings, producer
):
    listed0, unlisted0, seen_after0 = numbers_on(0, 3, 3)
    listed1, unlisted1 = numbers_on(1, 3, 2)
    closed0 = numbers_on(0, 3, 1, start=5000)[0]
    started = T0 + timedelta(seconds=100)
    before = [observed(n, "Open", modified=1, at=10) for n in (listed0, unlisted0, seen_after0, listed1, unlisted1)]
    before.append(observed(closed0, "Closed", modified=1, at=10))
    snapshot = [observed(n, "Open", modified=1, at=101, source=Source.POLL_FULL, snapshot_id="S7")
                for n in (listed0, listed1)]
    webhook = observed(seen_after0, "Open", modified=2, at=105)  # changed while the snapshot ran
    await publish(producer, kafka_settings, [*before, *snapshot, webhook])
    await publish_marker(producer, kafka_settings, "S7", started, job_count=2)
    async with Running(projector_settings(), kafka_settings, mongo_settings) as running:
        await running.drain()
        assert running.sample("projector_events_total", outcome="inferred_closed") == 2
        assert running.sample("projector_closure_guard_trips_total") == 0
    view = await view_docs(mongo_settings)
    closed = {n for n, doc in view.items() if doc["closure_inferred"]}
    assert closed == {unlisted0, unlisted1}
    for n in closed:
        assert view[n]["status"] == "Closed" and view[n]["closed_reason"] == "not in snapshot S7"
    for n in (listed0, seen_after0, listed1):
        assert view[n]["status"] == "Open"
    assert view[closed0]["closed_reason"] == "Filled" and view[closed0]["closure_inferred"] is False
    records = [r for r in feed(kafka_settings, 9) if r.source == "inferred_closure"]
    assert sorted(r.job_number for r in records) == sorted(closed)
    snapshots = await list_snapshots(projector_settings(), mongo_settings, None)
    assert {(s["partition"], s["status"]) for s in snapshots} == {(0, "applied"), (1, "applied"), (2, "nothing")}

    # Reopened by a later Open observation of the same version.
    await publish(producer, kafka_settings, [observed(unlisted0, "Open", modified=1, at=200)])
    async with Running(projector_settings(), kafka_settings, mongo_settings) as running:
        await running.drain()
    doc = (await view_docs(mongo_settings))[unlisted0]
    assert doc["status"] == "Open" and doc["closure_inferred"] is False and doc["closed_at"] is None


async def test_the_guard_stops_a_mass_closure_until_an_operator_applies_it(kafka_settings, mongo_settings, producer):
    jobs = numbers_on(0, 3, 20)
    await publish(producer, kafka_settings, [observed(n, "Open", modified=1, at=10) for n in jobs])
    await publish(producer, kafka_settings,
                  [observed(n, "Open", modified=1, at=101, source=Source.POLL_FULL, snapshot_id="S8")
                   for n in jobs[:2]])
    await publish_marker(producer, kafka_settings, "S8", T0 + timedelta(seconds=100), job_count=2)
    settings = projector_settings(guard_share=0.2, guard_floor=10)
    async with Running(settings, kafka_settings, mongo_settings) as running:
        await running.drain()
        assert running.sample("projector_closure_guard_trips_total") == 1
        assert running.sample("projector_events_total", outcome="inferred_closed") == 0
    view = await view_docs(mongo_settings)
    assert all(doc["status"] == "Open" for doc in view.values()), "the guard closes nothing"
    pending = await list_snapshots(settings, mongo_settings, "pending")
    assert len(pending) == 1 and sorted(pending[0]["candidates"]) == sorted(jobs[2:])

    # One held-back job shows up again before the operator looks: it must stay open.
    await publish(producer, kafka_settings, [observed(jobs[5], "Open", modified=1, at=300)])
    async with Running(settings, kafka_settings, mongo_settings) as running:
        await running.drain()
    report = await apply_snapshot("S8", settings, kafka_settings, mongo_settings)
    assert (report.candidates, report.closed) == (18, 17)
    view = await view_docs(mongo_settings)
    closed = {n for n, doc in view.items() if doc["status"] == "Closed"}
    assert closed == set(jobs[2:]) - {jobs[5]}
    assert all(view[n]["closed_reason"] == "not in snapshot S8" for n in closed)
    assert await list_snapshots(settings, mongo_settings, "pending") == []
    records = [r for r in feed(kafka_settings, 37) if r.source == "inferred_closure"]
    assert sorted(r.job_number for r in records) == sorted(closed)
    assert all(view[n]["last_change"]["announced"] is True for n in closed), "published, then marked so"

    # A command that died between its write and the feed leaves `announced: false`: the next start announces it.
    victim = min(closed)
    client = mongo_client(mongo_settings.uri, 5000)
    try:
        await client[mongo_settings.database]["jobs"].update_one(
            {"_id": victim}, {"$set": {"last_change.announced": False}})
    finally:
        await client.close()
    async with Running(settings, kafka_settings, mongo_settings) as running:
        await running.drain()
    assert (await view_docs(mongo_settings))[victim]["last_change"]["announced"] is True
    again = [r for r in feed(kafka_settings, 38) if r.source == "inferred_closure"]
    assert sorted(r.job_number for r in again) == sorted([*closed, victim])


async def test_a_dead_letter_does_not_stall_its_partition_and_can_be_replayed(kafka_settings, mongo_settings, producer):
    number = numbers_on(1, 3, 1)[0]
    await producer.send(kafka_settings.events_topic, b"not avro at all", str(number).encode())
    await publish(producer, kafka_settings, [observed(number, "Open", modified=1, at=10)])
    async with Running(projector_settings(), kafka_settings, mongo_settings) as running:
        await running.drain()
        assert running.sample("projector_events_total", outcome="dlq") == 1
    assert (await view_docs(mongo_settings))[number]["status"] == "Open"
    [letter] = consume(kafka_settings, kafka_settings.dlq_topic, 1)
    assert letter.value() == b"not avro at all" and letter.key() == str(number).encode()
    meta = parse_dlq_headers(letter.headers())
    assert meta.origin == "projector" and "Avro" in meta.reason
    assert (meta.original_topic, meta.original_partition, meta.original_offset) == (
        kafka_settings.events_topic, 1, 0)

    [record] = read_dlq(kafka_settings)
    [(_, where)] = await replay_dlq(kafka_settings, [record])
    assert where.startswith(f"{kafka_settings.events_topic}:1:")
    replayed = [m for m in consume(kafka_settings, kafka_settings.events_topic, 3) if m.value() == b"not avro at all"]
    assert len(replayed) == 2
