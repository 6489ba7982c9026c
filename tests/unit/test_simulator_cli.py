"""The simulator's command line and entrypoint: options and environment become a running simulator."""

from __future__ import annotations

import asyncio
import json
import os
import sys

import aiohttp
import pytest
from click.testing import CliRunner

from services.cli import main as jobsync
from services.common.settings import load
from services.simulator import Simulator
from services.simulator.app import create_app
from services.simulator.cli import build_simulator, cli
from services.simulator.settings import SimulatorSettings
from tests.simulator_support import start_simulator

pytestmark = pytest.mark.unit


def test_settings_build_the_simulator_they_describe() -> None:
    settings = load(
        SimulatorSettings,
        jobs=7,
        seed=3,
        tenant="acme",
        api_key="k",
        faults="rate_limit=0.5,late_seconds=2",
        webhook_url="http://127.0.0.1:9/hooks/x",
    )
    sim = build_simulator(settings)
    assert (len(sim.truth()), sim.tenant, sim.api_key, sim.seed) == (7, "acme", "k", 3)
    assert (sim.faults.rate_limit, sim.faults.late_seconds) == (0.5, 2.0)
    assert [r.to_json()["Url"] for r in sim.registrations] == ["http://127.0.0.1:9/hooks/x"]


def test_the_environment_supplies_what_options_do_not(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBSYNC_SIMULATOR_JOBS", "12")
    monkeypatch.setenv("JOBSYNC_SIMULATOR_API_KEY", "from-env")
    settings = load(SimulatorSettings, seed=4)
    assert (settings.jobs, settings.seed, settings.api_key.get_secret_value()) == (12, 4, "from-env")
    assert "from-env" not in repr(settings)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--faults", "bogus=1"], "unknown fault setting 'bogus'"),
        (["--faults", "rate_limit=2"], "rate_limit must be a number in 0..1"),
        (["--jobs", "-1"], "JOBSYNC_SIMULATOR_JOBS"),
        (["--rate", "-1"], "JOBSYNC_SIMULATOR_RATE"),
    ],
)
def test_bad_options_are_usage_errors_that_name_the_setting(args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert message in result.output


def test_jobsync_lists_the_simulator_command_and_its_options() -> None:
    result = CliRunner().invoke(jobsync, ["simulator", "--help"])
    assert result.exit_code == 0
    for option in (
        "--port",
        "--host",
        "--api-key",
        "--tenant",
        "--jobs",
        "--rate",
        "--seed",
        "--faults",
        "--webhook-url",
    ):
        assert option in result.output


async def test_python_dash_m_serves_the_api() -> None:
    """The real entrypoint in a child process: its start log names the port, and the API answers."""
    env = {**os.environ, "JOBSYNC_LOG_FORMAT": "json", "JOBSYNC_LOG_LEVEL": "INFO"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.simulator", "--port", "0", "--jobs", "3", "--api-key", "k",
        env=env, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert process.stderr is not None
        while True:
            line = await process.stderr.readline()
            assert line, "the simulator exited before it started serving"
            if b"simulator_started" in line:
                break
        address = json.loads(line)["address"][0]
        async with (
            aiohttp.ClientSession(headers={"X-API-KEY": "k"}) as http,
            http.get(f"{address}/ahsa/api/v3/Job") as r,
        ):
            assert r.status == 200
            assert len(await r.json()) == 3
    finally:
        process.terminate()
        await process.wait()


async def test_the_app_runs_the_scenario_at_the_configured_rate() -> None:
    sim = Simulator(seed=1, jobs=10)
    before = sim.truth()
    made: list[object] = []
    enough = asyncio.Event()
    step = sim.step

    def counting_step(n: int = 1) -> list:
        changes = step(n)
        made.extend(changes)
        if len(made) >= 20:
            enough.set()
        return changes

    sim.step = counting_step  # type: ignore[method-assign]
    async with start_simulator(sim, rate=500):
        await enough.wait()  # pytest-timeout bounds the wait; nothing asserts on time
    assert sim.truth() != before


def test_a_negative_rate_is_refused() -> None:
    with pytest.raises(ValueError, match="rate must be >= 0"):
        create_app(Simulator(), rate=-1)
