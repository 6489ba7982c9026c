"""The whole poller process in the test's loop: election of a single instance, schedule, restart from the
stored cursor, the admin API and the ``jobsync poller resync`` command, confirm mode, webhook health.
"""

from __future__ import annotations

import asyncio
import json
import sys

import httpx
import pytest

from services.common.dlq import parse_dlq_headers
from services.common.events import Source
from services.common.kafka import AsyncProducer
from services.common.metrics import new_registry
from services.common.settings import KafkaSettings
from services.poller.registration import Health
from services.poller.schedule import SyncKind
from services.poller.service import Poller
from tests.helpers import consume
from tests.poller_support import observations, poller_settings, read_events, running_poller, wait_until
from tests.simulator_support import RunningSimulator, simulator  # noqa: F401

pytestmark = pytest.mark.integration

TOKEN = "admin-token-for-tests"


def succeeded(poller: Poller, kind: SyncKind) -> list:
    return [p for p in list(poller.syncs.values()) if p.kind is kind and p.outcome == "succeeded"]


def finished(poller: Poller) -> list:
    return [p for p in list(poller.syncs.values()) if p.finished]


async def test_first_start_syncs_in_full_and_a_restart_resumes_incrementally_from_the_stored_cursor(
    simulator: RunningSimulator,  # noqa: F811
    kafka_settings: KafkaSettings,
) -> None:
    settings = poller_settings(simulator, incremental_interval_s=0.3)
    first = Poller(settings, kafka_settings, registry=new_registry())
    async with running_poller(first):
        await wait_until(lambda: bool(succeeded(first, SyncKind.FULL)), "the first full sync")
        assert first.registry.get_sample_value("poller_leader") == 1
        snapshot = succeeded(first, SyncKind.FULL)[0].snapshot_id
    assert first.registry.get_sample_value("poller_leader") == 0

    second = Poller(settings, kafka_settings, registry=new_registry())
    async with running_poller(second):
        await wait_until(lambda: bool(finished(second)), "the restarted poller's first sync")
        first_of_second = finished(second)[0]
        assert second.syncer.checkpoint.last_snapshot_id == snapshot
    assert first_of_second.kind is SyncKind.INCREMENTAL and first_of_second.outcome == "succeeded"
    assert second.registry.get_sample_value("poller_syncs_total", {"kind": "full", "outcome": "succeeded"}) is None


async def test_the_admin_api_and_the_resync_command_run_a_full_sync_and_show_its_progress(
    simulator: RunningSimulator,  # noqa: F811
    kafka_settings: KafkaSettings,
) -> None:
    settings = poller_settings(simulator, admin_token=TOKEN)
    poller = Poller(settings, kafka_settings, registry=new_registry())
    async with running_poller(poller):
        await wait_until(lambda: bool(succeeded(poller, SyncKind.FULL)), "the first full sync")
        url = f"http://127.0.0.1:{poller.ops_port}"
        async with httpx.AsyncClient(base_url=url) as http:
            assert (await http.post("/admin/resync")).status_code == 401
            wrong = await http.post("/admin/resync", headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401
            assert (await http.get("/healthz")).status_code == 200
            ready = await http.get("/readyz")
            assert ready.status_code == 200 and ready.json()["leader"] is True
        command = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services.cli", "poller", "resync", "--url", url, "--token", TOKEN,
            "--interval", "0.1",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(command.communicate(), 120)
        assert command.returncode == 0, err.decode()
        text = out.decode()
        assert "queued" in text and "succeeded" in text and "published=" in text
        [resync] = succeeded(poller, SyncKind.RESYNC)
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}) as http:
            status = (await http.get(f"/admin/syncs/{resync.sync_id}")).json()
            metrics = (await http.get("/metrics")).text
    assert status["outcome"] == "succeeded" and status["markers"] == 3 and status["kind"] == "resync"
    assert 'poller_syncs_total{kind="resync",outcome="succeeded"} 1.0' in metrics
    reads = read_events(kafka_settings, 2 * (resync.published + 3))
    assert {r.event.job_number for r in observations(reads) if r.event.source is Source.RESYNC} == {
        r.event.job_number for r in observations(reads) if r.event.source is Source.POLL_FULL
    }


async def test_admin_endpoints_are_closed_when_no_token_is_configured(
    simulator: RunningSimulator,  # noqa: F811
    kafka_settings: KafkaSettings,
) -> None:
    poller = Poller(poller_settings(simulator), kafka_settings, registry=new_registry())
    async with running_poller(poller), httpx.AsyncClient(base_url=f"http://127.0.0.1:{poller.ops_port}") as http:
        answer = await http.post("/admin/resync", headers={"Authorization": "Bearer anything"})
    assert answer.status_code == 403 and "JOBSYNC_POLLER_ADMIN_TOKEN" in answer.json()["error"]


async def test_confirm_mode_publishes_the_job_a_hint_names_as_trio_returns_it(
    simulator: RunningSimulator,  # noqa: F811
    kafka_settings: KafkaSettings,
    producer: AsyncProducer,
) -> None:
    number = sorted(simulator.sim.truth())[0]
    simulator.sim.update_job(number, Title="confirmed from Trio")
    forged = {"Number": number, "JobStatus": "Open", "Title": "forged by the webhook sender"}
    await producer.send(kafka_settings.hints_topic, json.dumps(forged).encode(), str(number).encode())
    await producer.send(kafka_settings.hints_topic, b'{"Number": 99999999}', b"99999999")
    await producer.send(kafka_settings.hints_topic, b"not json", None)
    poller = Poller(poller_settings(simulator, confirm_mode=True), kafka_settings, registry=new_registry())
    async with running_poller(poller):
        await wait_until(
            lambda: (
                poller.registry.get_sample_value("poller_hints_total", {"outcome": "published"}) == 1
                and poller.registry.get_sample_value("poller_hints_total", {"outcome": "not_found"}) == 1
                and poller.registry.get_sample_value("poller_hints_total", {"outcome": "invalid"}) == 1
            ),
            "all three hints handled",
        )
    listed = len([j for j in simulator.sim.truth().values() if j["JobStatus"] != "Closed"])
    reads = read_events(kafka_settings, listed + 3 + 1)
    [single] = [r for r in observations(reads) if r.event.source is Source.POLL_SINGLE]
    assert single.event.job_number == number and single.event.job == simulator.sim.truth()[number]
    assert single.event.job["Title"] == "confirmed from Trio"
    dead = consume(kafka_settings, kafka_settings.dlq_topic, 2, timeout=20)
    reasons = sorted(parse_dlq_headers(m.headers()).reason for m in dead)
    assert len(reasons) == 2 and "Trio does not know job 99999999" in reasons[1] and "hint" in reasons[0]
    assert all(parse_dlq_headers(m.headers()).original_topic == kafka_settings.hints_topic for m in dead)


async def test_webhook_health_reflects_an_inactive_registration_and_auto_repair_reactivates_it(
    simulator: RunningSimulator,  # noqa: F811
    kafka_settings: KafkaSettings,
) -> None:
    url = "http://127.0.0.1:9/trio-webhooks/jobs/very-long-path-secret"
    created = simulator.sim.register_webhook(url, name="jobsync")
    registry = new_registry()
    watcher = Poller(poller_settings(simulator, webhook_url=url), kafka_settings, registry=registry)
    repairer = Poller(
        poller_settings(simulator, webhook_url=url, webhook_auto_repair=True), kafka_settings, registry=new_registry()
    )
    try:
        assert await watcher.check_webhook() is Health.HEALTHY
        assert registry.get_sample_value("poller_webhook_registration_healthy") == 1
        simulator.sim.registrations.get(created["Id"]).is_active = False  # turned inactive in Trio's UI
        assert await watcher.check_webhook() is Health.INACTIVE
        assert registry.get_sample_value("poller_webhook_registration_healthy") == 0
        assert simulator.sim.registrations.get(created["Id"]).is_active is False  # no repair configured

        assert await repairer.check_webhook() is Health.HEALTHY
        assert simulator.sim.registrations.get(created["Id"]).is_active is True
        assert len(simulator.sim.registrations) == 1  # re-activated, not duplicated
        assert (
            repairer.registry.get_sample_value(
                "poller_webhook_repairs_total", {"action": "reactivate", "outcome": "sent"}
            )
            == 1
        )
    finally:
        await watcher.client.aclose()
        await repairer.client.aclose()
