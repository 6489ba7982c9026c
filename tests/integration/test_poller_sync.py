"""Full and incremental syncs against the simulator and a real Kafka broker."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from services.common.dlq import parse_dlq_headers
from services.common.events import Source
from services.common.kafka import AsyncProducer
from services.common.settings import KafkaSettings
from services.common.trio import LISTED_STATUSES
from services.poller.checkpoint import Checkpoint
from services.poller.schedule import SyncKind
from services.simulator import Simulator
from tests.helpers import consume
from tests.poller_support import (
    markers,
    observations,
    poller_settings,
    read_checkpoint,
    read_events,
    syncer_for,
    wait_until,
)
from tests.simulator_support import FakeClock, RunningSimulator, simulator, start_simulator  # noqa: F401

pytestmark = pytest.mark.integration


def listed(sim: Simulator) -> dict[int, dict]:
    return {n: job for n, job in sim.truth().items() if job["JobStatus"] in LISTED_STATUSES}


async def test_a_full_sync_publishes_every_listed_job_then_one_marker_per_partition(
    simulator: RunningSimulator,  # noqa: F811
    kafka_settings: KafkaSettings,
    producer: AsyncProducer,
) -> None:
    expected = listed(simulator.sim)
    async with syncer_for(poller_settings(simulator), kafka_settings, producer) as syncer:
        result = await syncer.run(SyncKind.FULL)
    assert result.outcome == "succeeded", result.error
    reads = read_events(kafka_settings, len(expected) + 3)
    jobs, marks = observations(reads), markers(reads)
    # Every listed job, once, verbatim (every field, known or not), keyed by its Number.
    assert sorted(r.event.job_number for r in jobs) == sorted(expected)
    assert all(r.event.job == expected[r.event.job_number] for r in jobs)
    assert all(r.key == str(r.event.job_number).encode() for r in jobs)
    assert {(r.event.source, r.event.snapshot_id) for r in jobs} == {(Source.POLL_FULL, result.snapshot_id)}
    # One marker on each of the 3 partitions, after every job of that partition.
    assert sorted(r.partition for r in marks) == [0, 1, 2]
    for mark in marks:
        assert (mark.event.snapshot_id, mark.event.job_count) == (result.snapshot_id, len(expected))
        assert mark.event.started_at == result.started_at and not mark.event.suspicious
        assert all(r.offset < mark.offset for r in jobs if r.partition == mark.partition)
    saved = read_checkpoint(kafka_settings)
    assert saved is not None
    assert (saved.cursor, saved.last_full_count, saved.last_snapshot_id) == (
        result.started_at,
        len(expected),
        result.snapshot_id,
    )


async def test_an_incremental_sync_picks_up_exactly_the_changes_after_cursor_minus_overlap(
    kafka_settings: KafkaSettings, producer: AsyncProducer
) -> None:
    clock = FakeClock()
    sim = Simulator(seed=3, jobs=30, clock=clock)
    numbers = sorted(listed(sim))
    full_start = clock.advance(hours=1)
    async with start_simulator(sim) as running:
        settings = poller_settings(running, overlap_s=10.0)
        # B is stamped exactly at (cursor - overlap): strictly-after excludes it, and the full sync saw it.
        clock.now = full_start - timedelta(seconds=10)
        sim.update_job(numbers[0], Title="B at the boundary")
        clock.now = full_start - timedelta(seconds=10) + timedelta(milliseconds=1)
        sim.update_job(numbers[1], Title="C just inside the overlap")
        clock.now = full_start
        async with syncer_for(settings, kafka_settings, producer, clock=clock) as syncer:
            full = await syncer.run(SyncKind.FULL)
            assert full.outcome == "succeeded" and syncer.checkpoint.cursor == full_start
            clock.advance(seconds=5)
            sim.update_job(numbers[2], Title="D after the full sync")
            sim.set_positions(numbers[3], 99)  # invisible to incremental syncs: no new ModifiedDateUtc
            clock.advance(minutes=5)
            incremental = await syncer.run(SyncKind.INCREMENTAL)
        assert incremental.outcome == "succeeded", incremental.error
        assert incremental.since == full_start - timedelta(seconds=10)
        reads = read_events(kafka_settings, len(numbers) + 3 + 2)
        got = {r.event.job_number for r in observations(reads) if r.event.source is Source.POLL_INCREMENTAL}
        assert got == {numbers[1], numbers[2]}
        saved = read_checkpoint(kafka_settings)
        assert saved is not None and saved.cursor == clock.now and saved.last_full_at == full_start


async def test_the_checkpoint_survives_a_new_syncer_and_is_never_moved_back(
    simulator: RunningSimulator,  # noqa: F811
    kafka_settings: KafkaSettings,
    producer: AsyncProducer,
) -> None:
    settings = poller_settings(simulator)
    async with syncer_for(settings, kafka_settings, producer) as first:
        assert (await first.run(SyncKind.FULL)).outcome == "succeeded"
    stored = read_checkpoint(kafka_settings)
    assert stored is not None and stored == first.checkpoint
    async with syncer_for(settings, kafka_settings, producer, checkpoint=stored) as second:
        result = await second.run(SyncKind.INCREMENTAL)
    assert result.outcome == "succeeded" and result.snapshot_id is None
    after = read_checkpoint(kafka_settings)
    assert after is not None and stored.cursor is not None and after.cursor is not None
    assert after.cursor >= stored.cursor and after.last_full_count == stored.last_full_count


@pytest.mark.parametrize(
    "faults",
    [["rate_limit"], ["server_error", "server_error"], ["timeout"], ["rate_limit", "server_error", "timeout"]],
)
async def test_rate_limits_server_errors_and_timeouts_are_retried_and_the_sync_completes(
    simulator: RunningSimulator,  # noqa: F811
    kafka_settings: KafkaSettings,
    producer: AsyncProducer,
    faults: list[str],
) -> None:
    simulator.sim.faults.retry_after_seconds = 1.0
    simulator.sim.faults.next_api_faults = list(faults)
    expected = listed(simulator.sim)
    async with syncer_for(poller_settings(simulator, request_timeout_s=1.0), kafka_settings, producer) as syncer:
        result = await syncer.run(SyncKind.FULL)
        retries = syncer.metrics.http_retries
    assert result.outcome == "succeeded", result.error
    assert sum(s.value for m in retries.collect() for s in m.samples if s.name.endswith("_total")) == len(faults)
    assert simulator.sim.faults.next_api_faults == []
    assert len(observations(read_events(kafka_settings, len(expected) + 3))) == len(expected)


@pytest.mark.parametrize("fault", ["malformed_json", "truncated_json"])
async def test_a_malformed_listing_fails_the_sync_keeps_the_body_and_moves_nothing(
    simulator: RunningSimulator,  # noqa: F811
    kafka_settings: KafkaSettings,
    producer: AsyncProducer,
    fault: str,
) -> None:
    before = Checkpoint()
    simulator.sim.faults.next_api_faults = [fault]
    async with syncer_for(poller_settings(simulator), kafka_settings, producer) as syncer:
        result = await syncer.run(SyncKind.FULL)
        assert result.outcome == "failed" and "not valid JSON" in (result.error or "")
        assert syncer.checkpoint == before
        [dead] = consume(kafka_settings, kafka_settings.dlq_topic, 1, timeout=20)
        letter = parse_dlq_headers(dead.headers())
        assert letter.origin == "poller" and "GET /Job" in letter.reason
        assert dead.value() and dead.value()[:1] == b"["
        assert read_checkpoint(kafka_settings) is None
        assert read_events(kafka_settings, 1, timeout=2) == []  # nothing published, no marker
        # The next sync tries again and succeeds.
        again = await syncer.run(SyncKind.FULL)
    assert again.outcome == "succeeded"
    assert read_checkpoint(kafka_settings) is not None


async def test_a_record_without_a_number_fails_the_sync_and_is_dead_lettered(
    kafka_settings: KafkaSettings, producer: AsyncProducer
) -> None:
    sim = Simulator(seed=5, jobs=5)
    number = sorted(listed(sim))[0]
    sim.book.get(number).job["Number"] = "not-a-number"  # a corrupt upstream record
    sim.book.get(number)._body = None
    async with start_simulator(sim) as running, syncer_for(poller_settings(running), kafka_settings, producer) as s:
        result = await s.run(SyncKind.FULL)
    assert result.outcome == "failed" and "Number" in (result.error or "")
    [dead] = consume(kafka_settings, kafka_settings.dlq_topic, 1, timeout=20)
    assert json.loads(dead.value())["Number"] == "not-a-number"
    assert read_checkpoint(kafka_settings) is None
    assert read_events(kafka_settings, 1, timeout=2) == []


async def test_a_sync_cut_off_mid_publish_leaves_no_marker_and_no_checkpoint(
    kafka_settings: KafkaSettings, producer: AsyncProducer
) -> None:
    sim = Simulator(seed=7, jobs=3000)
    async with start_simulator(sim) as running:
        settings = poller_settings(running, publish_window=50)
        async with syncer_for(settings, kafka_settings, producer) as syncer:
            import asyncio

            from services.poller.sync import SyncProgress

            progress = SyncProgress(SyncKind.FULL)
            task = asyncio.create_task(syncer.run(SyncKind.FULL, progress))
            await wait_until(lambda: progress.published >= 100, "some events acknowledged")
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert progress.outcome == "abandoned" and progress.markers == 0
            assert syncer.checkpoint == Checkpoint()
    assert read_checkpoint(kafka_settings) is None
    reads = read_events(kafka_settings, 3000, timeout=5)
    assert 100 <= len(reads) < 3000 and markers(reads) == []


async def test_a_refused_api_key_fails_at_once_naming_the_setting(
    simulator: RunningSimulator,  # noqa: F811
    kafka_settings: KafkaSettings,
    producer: AsyncProducer,
) -> None:
    settings = poller_settings(simulator, api_key="wrong-key")
    async with syncer_for(settings, kafka_settings, producer) as syncer:
        result = await syncer.run(SyncKind.FULL)
        calls = syncer.metrics.http_requests
    assert result.outcome == "failed" and "JOBSYNC_POLLER_API_KEY" in (result.error or "")
    assert "wrong-key" not in (result.error or "")
    statuses = {s.labels["status"]: s.value for m in calls.collect() for s in m.samples if s.name.endswith("_total")}
    assert statuses == {"401": 1}


async def test_a_much_smaller_full_listing_is_published_with_a_suspicious_marker(
    kafka_settings: KafkaSettings, producer: AsyncProducer
) -> None:
    sim = Simulator(seed=9, jobs=100)
    count = len(listed(sim))
    async with start_simulator(sim) as running:
        settings = poller_settings(running, suspicious_drop_share=0.3, suspicious_min_drop=5)
        async with syncer_for(settings, kafka_settings, producer) as syncer:
            assert (await syncer.run(SyncKind.FULL)).outcome == "succeeded"
            sim.faults.partial_listing_share = 0.5
            sim.faults.next_api_faults = ["partial_listing"]
            partial = await syncer.run(SyncKind.FULL)
    assert partial.outcome == "succeeded" and partial.suspicious
    reads = read_events(kafka_settings, count + 3 + (count - count // 2) + 3)
    last = [r for r in markers(reads) if r.event.snapshot_id == partial.snapshot_id]
    assert len(last) == 3
    assert {(r.event.suspicious, r.event.expected_count) for r in last} == {(True, count)}
