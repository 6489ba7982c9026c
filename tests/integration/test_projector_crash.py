"""A real projector process killed with SIGKILL mid-stream and restarted converges to the same view."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from services.common.events import Source
from tests.projector_support import (
    Running,
    caught_up,
    committed_offsets,
    end_offsets,
    feed,
    observed,
    projector_settings,
    publish,
    view_docs,
    without_group,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def spawn(kafka_settings, mongo_settings, group: str, log_path: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "JOBSYNC_KAFKA_BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers,
        "JOBSYNC_KAFKA_TOPIC_PREFIX": kafka_settings.topic_prefix,
        "JOBSYNC_KAFKA_PARTITIONS": "3",
        "JOBSYNC_MONGODB_URI": mongo_settings.uri,
        "JOBSYNC_MONGODB_DATABASE": mongo_settings.database,
        "JOBSYNC_PROJECTOR_GROUP_ID": group,
        "JOBSYNC_PROJECTOR_GROUP_INSTANCE_ID": f"{group}-0",  # the restart takes the partitions back at once
        "JOBSYNC_PROJECTOR_BATCH_SIZE": "40",
        "JOBSYNC_PROJECTOR_POLL_TIMEOUT_S": "0.2",
        "JOBSYNC_PROJECTOR_SESSION_TIMEOUT_MS": "6000",
        "JOBSYNC_PROJECTOR_OPS_PORT": "0",
        "JOBSYNC_LOG_LEVEL": "INFO",
    }
    log = log_path.open("ab")
    return subprocess.Popen([sys.executable, "-m", "services.projector"], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT)


def wait_for(condition, what: str, timeout: float = 120.0, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the projector exited ({process.returncode}) while waiting for {what}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for {what}")
        time.sleep(0.1)


def history(jobs: int) -> list:
    """Several versions per job, out of order, with redeliveries, closures and reopenings."""
    events = []
    for n in range(1, jobs + 1):
        v = [observed(n, "Open", modified=1, positions=1, at=10),
             observed(n, "OnHold", modified=2, positions=2, at=20, source=Source.POLL_INCREMENTAL),
             observed(n, "OnHold", modified=2, positions=4, at=25, source=Source.POLL_FULL, snapshot_id="S1"),
             observed(n, "Closed" if n % 3 == 0 else "Open", modified=3, positions=0, at=30)]
        events += [v[1], v[0], v[3], v[2], v[1], v[0]]
    return events


async def test_a_projector_killed_mid_batch_and_restarted_converges_to_the_same_view(
    kafka_settings, mongo_settings, producer, unique_name, tmp_path
):
    await publish(producer, kafka_settings, history(300))
    ends = end_offsets(kafka_settings)
    group = f"{unique_name}-crash"
    log_path = tmp_path / "projector.log"

    first = spawn(kafka_settings, mongo_settings, group, log_path)
    try:
        # Kill as soon as part of the stream is committed: the next batch is in flight.
        wait_for(lambda: any(o > 0 for o in committed_offsets(kafka_settings, group).values()),
                 "a first commit", process=first)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
    assert not caught_up(committed_offsets(kafka_settings, group), ends), "killed too late to prove anything"

    second = spawn(kafka_settings, mongo_settings, group, log_path)
    try:
        wait_for(lambda: caught_up(committed_offsets(kafka_settings, group), ends), "the restart to catch up",
                 process=second)
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=60) == 0, log_path.read_text()[-3000:]
    finally:
        if second.poll() is None:
            second.kill()
    crashed = await view_docs(mongo_settings)

    # The reference: the same stream projected by a projector that never crashed, into its own database.
    reference_db = mongo_settings.model_copy(update={"database": f"{mongo_settings.database}_ref"})
    async with Running(projector_settings(), kafka_settings, reference_db) as reference:
        await reference.drain()
    expected = await view_docs(reference_db)
    assert len(crashed) == 300
    assert without_group(crashed) == without_group(expected), "the restart differs from an uninterrupted run"

    # Every job's latest state reached the change feed (at least once: a crash may repeat some records).
    # The view's revision may be higher than the last record's: bookkeeping-only writes announce nothing.
    latest = {}
    for record in feed(kafka_settings, 10_000, timeout=10):
        if record.job_number not in latest or record.revision > latest[record.job_number].revision:
            latest[record.job_number] = record
    assert set(latest) == set(crashed)
    for number, doc in crashed.items():
        record = latest[number]
        assert (record.job_status, record.job_json, record.open_positions, record.revision <= doc["revision"]) == (
            doc["status"], doc["job_json"], doc["open_positions"], True)
