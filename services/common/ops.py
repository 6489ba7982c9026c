"""The operational HTTP endpoints every service exposes: /healthz, /readyz, /metrics (aiohttp)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CollectorRegistry

from services.common.metrics import exposition

ReadinessCheck = Callable[[], Awaitable[tuple[bool, dict[str, object]]]]


def add_ops_routes(app: web.Application, registry: CollectorRegistry, readiness: ReadinessCheck) -> None:
    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def readyz(_: web.Request) -> web.Response:
        ready, detail = await readiness()
        return web.json_response({"ready": ready, **detail}, status=200 if ready else 503)

    async def metrics(_: web.Request) -> web.Response:
        body = exposition(registry)
        return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)


async def start_ops_server(
    registry: CollectorRegistry, readiness: ReadinessCheck, host: str, port: int
) -> web.AppRunner:
    """Serve the ops endpoints alone (for the poller and projector, which have no other HTTP API)."""
    app = web.Application()
    add_ops_routes(app, registry, readiness)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
