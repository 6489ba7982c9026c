"""Run the Trio simulator inside a test: ``start_simulator`` and the ``simulator`` fixture.

Import the fixture explicitly where it is used: ``from tests.simulator_support import simulator``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest_asyncio
from aiohttp import web

from services.simulator import Simulator
from services.simulator.app import create_app


@dataclass(frozen=True)
class RunningSimulator:
    sim: Simulator
    url: str  # http://127.0.0.1:<port>
    base_url: str  # http://127.0.0.1:<port>/<tenant>/api/v3 (what a Trio client is configured with)
    api_key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"X-API-KEY": self.api_key}


@asynccontextmanager
async def start_simulator(
    sim: Simulator, host: str = "127.0.0.1", port: int = 0, *, rate: float = 0.0
) -> AsyncIterator[RunningSimulator]:
    """Serve ``sim`` on ``host:port`` (0: a free port) with webhook delivery running, until the block exits."""
    runner = web.AppRunner(create_app(sim, rate=rate), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_host, bound_port = runner.addresses[0][:2]
        url = f"http://{bound_host}:{bound_port}"
        yield RunningSimulator(sim, url, f"{url}/{sim.tenant}/api/v3", sim.api_key)
    finally:
        await runner.cleanup()


@pytest_asyncio.fixture
async def simulator() -> AsyncIterator[RunningSimulator]:
    """A fresh ``Simulator(seed=1, jobs=50)`` serving on a free loopback port."""
    async with start_simulator(Simulator(seed=1, jobs=50)) as running:
        yield running


class FakeClock:
    """A clock a test moves by hand: pass ``clock=FakeClock(...)`` to ``Simulator``."""

    def __init__(self, start: datetime = datetime(2024, 9, 1, 12, 0, tzinfo=UTC)) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now
