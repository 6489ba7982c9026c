"""A crash between the view write and the change feed: the restarted projector announces what was written.

The projector writes one document per changed job and no second "announced" write: the document records
its last change with the coordinates of the event that made it, and the consumer group's committed offset
says whether the feed has it. These tests crash a real projector (real broker, real MongoDB-wire server)
after its writes and before any feed record left, then restart it in the same group.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import timedelta

import pytest

from services.common.events import ChangeKind, Source
from tests.projector_support import (
    T0,
    Running,
    feed,
    numbers_on,
    observed,
    projector_settings,
    publish,
    publish_marker,
    view_docs,
)

pytestmark = pytest.mark.integration


class Crash(Exception):
    """Stands for the process dying: not a failure the projector retries."""


async def crash_before_every_publish(running: Running) -> None:
    """Consume everything; each batch is written to the view, then the process 'dies' before the feed."""

    async def die(*args: object, **kwargs: object) -> None:
        raise Crash("killed between the view write and the change feed")

    running.projector._publish = die  # type: ignore[method-assign]
    idle = 0
    while idle < 3:
        try:
            idle = idle + 1 if await running.projector.step() == 0 else 0
        except Crash:
            idle = 0


async def test_changes_written_but_never_announced_are_announced_once_after_a_restart(
    kafka_settings, mongo_settings, producer
):
    listed, unlisted = numbers_on(0, 3, 2)
    others = numbers_on(1, 3, 2) + numbers_on(2, 3, 2)
    settings = projector_settings(group_id=f"projector-{uuid.uuid4().hex[:8]}")
    # Before the crash, announced and committed as usual: every job opened.
    jobs = [listed, unlisted, *others]
    await publish(producer, kafka_settings, [observed(n, "Open", modified=1, at=10) for n in jobs])
    async with Running(settings, kafka_settings, mongo_settings) as first:
        await first.drain()
    before = {(r.job_number, r.revision) for r in feed(kafka_settings, len(jobs))}
    opened = len(before)
    assert opened == len(jobs)

    # Then updates, a full snapshot that no longer lists one job, and its marker: written, never announced.
    started = T0 + timedelta(seconds=100)
    await publish(producer, kafka_settings, [observed(n, "OnHold", modified=2, at=20, Title="Changed") for n in others])
    await publish(producer, kafka_settings, [
        observed(listed, "Open", modified=1, at=101, source=Source.POLL_FULL, snapshot_id="S1"),
        *(observed(n, "OnHold", modified=2, at=101, Title="Changed", source=Source.POLL_FULL, snapshot_id="S1")
          for n in others)])
    await publish_marker(producer, kafka_settings, "S1", started, job_count=len(jobs) - 1)
    async with Running(settings, kafka_settings, mongo_settings) as crashing:
        await crash_before_every_publish(crashing)
    written = await view_docs(mongo_settings)
    assert written[unlisted]["status"] == "Closed" and written[unlisted]["closure_inferred"] is True
    assert all(written[n]["status"] == "OnHold" for n in others)
    assert len(feed(kafka_settings, opened + 1, timeout=3)) == opened, "nothing may reach the feed before the crash"

    async with Running(settings, kafka_settings, mongo_settings) as restarted:
        await restarted.drain()
    view = await view_docs(mongo_settings)
    assert view == written, "the restart re-read the events: duplicates, nothing to write again"

    records = [r for r in feed(kafka_settings, opened + len(others) + 2, timeout=10)
               if (r.job_number, r.revision) not in before]
    by_job = defaultdict(list)
    for record in records:
        by_job[record.job_number].append(record)
    assert set(by_job) == {unlisted, *others}, "exactly the jobs changed before the crash are announced"
    for number, announced in by_job.items():
        assert len(announced) == 1, f"job {number} announced {len(announced)} times"
        doc = view[number]
        assert (announced[0].revision, announced[0].job_status, announced[0].job_json) == (
            doc["revision"], doc["status"], doc["job_json"])
    closure = by_job[unlisted][0]
    assert closure.change_kind == ChangeKind.CLOSED and closure.source == "inferred_closure"

    # Once more in the same group: everything is committed, nothing is announced again.
    async with Running(settings, kafka_settings, mongo_settings) as again:
        await again.drain()
    assert len(feed(kafka_settings, opened + len(records) + 1, timeout=3)) == opened + len(records)
