"""``jobsync simulator`` / ``python -m services.simulator``: run the simulated Trio API (development tool)."""

from __future__ import annotations

import asyncio
from typing import Any

import click

from services.common.errors import ConfigurationError
from services.common.logs import configure_logging, get_logger
from services.common.settings import LogSettings, load


@click.command(context_settings={"show_default": True})
@click.option("--host", default=None, help="Address to listen on [env JOBSYNC_SIMULATOR_HOST, default 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Port [env JOBSYNC_SIMULATOR_PORT, default 8070].")
@click.option("--api-key", default=None, help="X-API-KEY clients must send [env JOBSYNC_SIMULATOR_API_KEY].")
@click.option("--tenant", default=None, help="Tenant path segment [env JOBSYNC_SIMULATOR_TENANT, default ahsa].")
@click.option("--jobs", type=int, default=None, help="Jobs seeded at start [default 1000].")
@click.option("--rate", type=float, default=None, help="Scenario changes per second [default 0: none].")
@click.option("--seed", type=int, default=None, help="Seed of the scenario and of fault draws [default 0].")
@click.option("--faults", default=None, help='Fault settings, e.g. "rate_limit=0.1,drop_webhook=0.05".')
@click.option("--webhook-url", default=None, help="Register a Job Update webhook to this URL at start.")
def cli(**options: Any) -> None:
    """Run the Trio VMS simulator: a development tool, never deployed as part of the product."""
    from services.simulator.settings import SimulatorSettings

    overrides = {name: value for name, value in options.items() if value is not None}
    try:
        settings = load(SimulatorSettings, **overrides)
        log_settings = load(LogSettings)
        configure_logging(log_settings.format, log_settings.level)
        sim = build_simulator(settings)
    except ConfigurationError as exc:
        raise click.UsageError(str(exc)) from exc
    asyncio.run(serve(sim, settings))


def build_simulator(settings: Any) -> Any:
    """The Simulator the settings describe (faults parsed, webhook registered)."""
    from services.simulator.faults import FaultConfig
    from services.simulator.simulator import Simulator

    sim = Simulator(
        seed=settings.seed,
        jobs=settings.jobs,
        tenant=settings.tenant,
        api_key=settings.api_key.get_secret_value(),
        faults=FaultConfig.parse(settings.faults),
        webhook_timeout_seconds=settings.webhook_timeout_seconds,
    )
    if settings.webhook_url:
        sim.register_webhook(settings.webhook_url)
    return sim


async def serve(sim: Any, settings: Any) -> None:
    """Serve until cancelled (Ctrl-C)."""
    from aiohttp import web

    from services.simulator.app import create_app
    from services.simulator.faults import PROBABILITIES

    log = get_logger("simulator")
    runner = web.AppRunner(create_app(sim, rate=settings.rate), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.host, settings.port)
        await site.start()
        log.info(
            "simulator_started",
            address=[f"http://{host}:{port}" for host, port, *_ in runner.addresses],
            tenant=sim.tenant,
            jobs=len(sim.book),
            rate=settings.rate,
            seed=sim.seed,
            faults={k: v for k, v in sim.faults.to_dict().items() if k in PROBABILITIES and v},
            webhooks=len(sim.registrations),
        )
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
