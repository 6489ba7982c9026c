"""The operator's drift and status commands against a real view (MongoDB-wire server) and the simulator."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from pymongo import MongoClient

from services.common.settings import MongoSettings
from services.operator.commands import drift, status
from tests.simulator_support import RunningSimulator, simulator  # noqa: F401  (fixture)

pytestmark = pytest.mark.integration


def _store(mongo_settings: MongoSettings, jobs: list[dict]) -> None:
    with MongoClient(mongo_settings.uri) as client:
        client[mongo_settings.database]["jobs"].insert_many(
            [{"_id": job["Number"], "status": job["JobStatus"], "job_json": json.dumps(job)} for job in jobs]
        )


def _env(simulator: RunningSimulator, mongo_settings: MongoSettings) -> dict[str, str]:  # noqa: F811
    return {
        "JOBSYNC_POLLER_BASE_URL": simulator.base_url,
        "JOBSYNC_POLLER_API_KEY": simulator.api_key,
        "JOBSYNC_MONGODB_URI": mongo_settings.uri,
        "JOBSYNC_MONGODB_DATABASE": mongo_settings.database,
    }


async def test_drift_agrees_on_an_exact_view_and_names_each_difference(
    simulator: RunningSimulator, mongo_settings: MongoSettings  # noqa: F811
) -> None:
    listed = [job for job in simulator.sim.truth().values() if job["JobStatus"] in ("Open", "OnHold")]
    _store(mongo_settings, listed)
    runner = CliRunner()
    agreeing = await _invoke(runner, drift, _env(simulator, mongo_settings))
    assert agreeing.exit_code == 0, agreeing.output
    assert "0 missing, 0 extra, 0 mismatched" in agreeing.output

    first, second = listed[0]["Number"], listed[1]["Number"]
    simulator.sim.set_positions(first, 99)  # the trap: no version bump, only a full listing shows it
    simulator.sim.close(second, reason="Filled")
    disagreeing = await _invoke(runner, drift, _env(simulator, mongo_settings))
    assert disagreeing.exit_code == 1
    assert f"mismatched {first}: NumberOfCurrentOpenPositions" in disagreeing.output
    assert f"extra (open in the view, not listed by Trio): [{second}]" in disagreeing.output


async def _invoke(runner: CliRunner, command, env: dict[str, str]):
    import asyncio

    # The command runs its own event loop; keep it off this test's loop, which serves the simulator.
    return await asyncio.to_thread(runner.invoke, command, [], env=env)


def test_status_exits_non_zero_when_services_are_down() -> None:
    result = CliRunner().invoke(status, ["--ingress", "http://127.0.0.1:9", "--poller", "http://127.0.0.1:9",
                                         "--projector", "http://127.0.0.1:9"])
    assert result.exit_code == 1
    assert "ingress DOWN" in result.output
