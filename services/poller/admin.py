"""The poller's HTTP server: /healthz, /readyz, /metrics (shared) and the authenticated admin API.

- ``POST /admin/resync``: queue a full sync now; 202 with its ``sync_id``; 409 on the standby.
- ``GET /admin/syncs/{sync_id}``: progress of a recent sync (phase, fetched, published, outcome).
- ``GET /admin/status``: leader or standby, current sync, checkpoint, recent syncs.

Every admin route needs ``Authorization: Bearer <JOBSYNC_POLLER_ADMIN_TOKEN>``; with no token configured
they answer 403, so an unconfigured deployment exposes nothing.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web

from services.common.ops import add_ops_routes
from services.poller.errors import NotLeaderError

if TYPE_CHECKING:
    from services.poller.service import Poller

POLLER: web.AppKey[Poller] = web.AppKey("poller")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _problem(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _authenticated(handler: Handler) -> Handler:
    async def wrapper(request: web.Request) -> web.StreamResponse:
        token = request.app[POLLER].settings.admin_token
        if token is None or not token.get_secret_value():
            return _problem(403, "admin API disabled: set JOBSYNC_POLLER_ADMIN_TOKEN to enable it")
        given = request.headers.get("Authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            value.strip().encode(), token.get_secret_value().encode()
        ):
            return web.json_response(
                {"error": "missing or wrong bearer token (JOBSYNC_POLLER_ADMIN_TOKEN)"},
                status=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        return await handler(request)

    return wrapper


@_authenticated
async def resync(request: web.Request) -> web.StreamResponse:
    poller = request.app[POLLER]
    try:
        progress = poller.request_resync()
    except NotLeaderError as exc:
        return _problem(409, str(exc))
    return web.json_response(
        {**progress.to_dict(), "status_url": f"/admin/syncs/{progress.sync_id}"},
        status=202,
    )


@_authenticated
async def sync_status(request: web.Request) -> web.StreamResponse:
    progress = request.app[POLLER].syncs.get(request.match_info["sync_id"])
    if progress is None:
        return _problem(404, "no such sync on this poller (only the most recent are kept)")
    return web.json_response(progress.to_dict())


@_authenticated
async def status(request: web.Request) -> web.StreamResponse:
    return web.json_response(request.app[POLLER].status())


def create_app(poller: Poller) -> web.Application:
    app = web.Application()
    app[POLLER] = poller
    add_ops_routes(app, poller.registry, poller.readiness)
    app.router.add_post("/admin/resync", resync)
    app.router.add_get("/admin/syncs/{sync_id}", sync_status)
    app.router.add_get("/admin/status", status)
    return app
