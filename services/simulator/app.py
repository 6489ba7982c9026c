"""The simulated Trio API over HTTP (aiohttp): ``create_app(sim)`` serves a Simulator.

Routes under ``/{tenant}/api/v3`` behave like Trio's (X-API-KEY, bare JSON arrays, faults injected);
routes under ``/_sim/`` control the simulation (X-API-KEY, never faulted); ``/healthz``, ``/readyz`` and
``/metrics`` are the usual ops endpoints.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web

from services.common.logs import get_logger
from services.common.metrics import new_registry
from services.common.ops import add_ops_routes
from services.common.trio import OPEN_POSITIONS
from services.simulator import listing
from services.simulator.errors import (
    FaultConfigError,
    InvalidChangeError,
    InvalidRequestError,
    UnknownJobError,
    UnknownRegistrationError,
)
from services.simulator.faults import FaultConfig
from services.simulator.jobs import JobRecord, serialize
from services.simulator.metrics import SimulatorMetrics
from services.simulator.registrations import EVENTS
from services.simulator.simulator import Simulator

log = get_logger("simulator.api")

SIM = web.AppKey("simulator", Simulator)
METRICS = web.AppKey("simulator_metrics", SimulatorMetrics)
CLOSING = web.AppKey("simulator_closing", asyncio.Event)
FAULT = web.RequestKey("simulator_fault", str)  # the API fault chosen for this request, if any

API_KEY_HEADER = "X-API-KEY"
JSON = "application/json"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def create_app(sim: Simulator, *, rate: float = 0.0, registry: Any = None) -> web.Application:
    """The aiohttp app serving ``sim``; ``rate`` > 0 runs the scenario engine at that many changes per second."""
    if rate < 0:
        raise ValueError(f"rate must be >= 0, got {rate}")
    registry = registry if registry is not None else new_registry()
    app = web.Application(middlewares=[_errors, _guard])
    app[SIM] = sim
    app[METRICS] = SimulatorMetrics(registry, sim)
    app[CLOSING] = asyncio.Event()

    api = "/{tenant}/api/v3"
    app.router.add_get(f"{api}/Job", list_jobs, name="jobs")
    app.router.add_get(f"{api}/Job/{{number:\\d+}}", get_job, name="job")
    app.router.add_get(f"{api}/Webhooks", list_webhooks, name="webhooks")
    app.router.add_get(f"{api}/Webhooks/Events", list_events, name="webhook_events")
    app.router.add_post(f"{api}/Webhooks", save_webhook, name="save_webhook")

    app.router.add_get("/_sim/truth", sim_truth)
    app.router.add_post("/_sim/step", sim_step)
    app.router.add_get("/_sim/faults", sim_get_faults)
    app.router.add_put("/_sim/faults", sim_put_faults)
    app.router.add_patch("/_sim/faults", sim_patch_faults)
    app.router.add_get("/_sim/faults/log", sim_fault_log)
    app.router.add_post("/_sim/flush", sim_flush)
    app.router.add_get("/_sim/webhooks/log", sim_webhook_log)
    app.router.add_post("/_sim/jobs", sim_create_job)
    app.router.add_patch("/_sim/jobs/{number:\\d+}", sim_update_job)
    app.router.add_post("/_sim/jobs/{number:\\d+}/positions", sim_set_positions)
    app.router.add_post("/_sim/jobs/{number:\\d+}/{action:hold|close|reopen}", sim_transition)

    async def readiness() -> tuple[bool, dict[str, object]]:
        return True, {"jobs": len(sim.book)}

    add_ops_routes(app, registry, readiness)
    app.cleanup_ctx.append(_webhook_delivery)
    if rate > 0:
        app.cleanup_ctx.append(_scenario_runner(rate))
    app.on_shutdown.append(_release_hanging_requests)
    return app


# ------------------------------------------------------------------ lifecycle


async def _webhook_delivery(app: web.Application) -> AsyncIterator[None]:
    sim = app[SIM]
    await sim.start_webhooks()
    try:
        yield
    finally:
        await sim.stop_webhooks()


def _scenario_runner(rate: float) -> Callable[[web.Application], AsyncIterator[None]]:
    async def run(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(_run_scenario(app[SIM], rate), name="simulator-scenario")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    return run


async def _run_scenario(sim: Simulator, rate: float) -> None:
    """Make ``rate`` changes per second on average, in small batches, never more than a second's worth at once."""
    tick = min(1.0, max(0.05, 1.0 / rate))
    owed = 0.0
    last = time.monotonic()
    while True:
        await asyncio.sleep(tick)
        now = time.monotonic()
        owed = min(owed + rate * (now - last), max(rate, 1.0))
        last = now
        count = int(owed)
        if count:
            owed -= count
            sim.step(count)


async def _release_hanging_requests(app: web.Application) -> None:
    app[CLOSING].set()


# ------------------------------------------------------------------ middlewares


def _error(status: int, message: str, **extra: Any) -> web.Response:
    # Trio's error body is not documented; this is the ASP.NET Web API default shape.
    return web.json_response({"Message": message, **extra}, status=status)


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except InvalidRequestError as exc:
        return _error(400, f"The request is invalid: {exc}", Field=exc.field)
    except FaultConfigError as exc:
        return _error(400, str(exc))
    except (UnknownJobError, UnknownRegistrationError) as exc:
        return _error(404, str(exc))
    except InvalidChangeError as exc:
        return _error(409, str(exc))


@web.middleware
async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Authentication for the API and /_sim/, then the API's fault injection."""
    sim = request.app[SIM]
    tenant = request.match_info.get("tenant")
    control = request.path.startswith("/_sim/")
    if tenant is None and not control:
        return await handler(request)  # ops endpoints and unknown paths
    supplied = request.headers.get(API_KEY_HEADER, "")
    if not hmac.compare_digest(supplied.encode(), sim.api_key.encode()):
        _count(request, 401)
        return _error(401, "Authorization has been denied for this request.")
    if control:
        return await handler(request)
    if tenant != sim.tenant:
        _count(request, 404)
        return _error(404, f"unknown tenant {tenant!r}")
    response = await _with_fault(request, handler, sim)
    _count(request, response.status)
    return response


def _count(request: web.Request, status: int) -> None:
    route = request.match_info.route.name or "other"
    request.app[METRICS].api_requests.labels(route=route, status=str(status)).inc()


async def _with_fault(request: web.Request, handler: Handler, sim: Simulator) -> web.StreamResponse:
    full_listing = request.match_info.route.name == "jobs" and not _has_modified_date(request)
    fault = sim.injector.api_fault(full_listing=full_listing)
    if fault is None:
        return await handler(request)
    config = sim.faults
    if not (fault == "partial_listing" and full_listing):  # list_jobs records that one, with what it omitted
        sim.record_fault(fault, method=request.method, path=request.path)
    log.info("api_fault_injected", fault=fault, method=request.method, path=request.path)
    if fault == "rate_limit":
        refusal = _error(429, "Rate limit exceeded.")
        refusal.headers["Retry-After"] = _retry_after(config.retry_after_seconds)
        return refusal
    if fault == "server_error":
        status = sim.injector.server_error_status()
        refusal = _error(status, "An error has occurred." if status == 500 else "Service Unavailable")
        if status == 503:
            refusal.headers["Retry-After"] = _retry_after(config.retry_after_seconds)
        return refusal
    if fault == "timeout":
        await _pause(request, config.timeout_seconds)
        return _error(504, "The upstream did not answer in time.")
    if fault == "slow":
        await _pause(request, config.slow_seconds)
    request[FAULT] = fault
    response = await handler(request)
    if fault in BODY_FAULTS and isinstance(response, web.Response) and response.body:
        body = bytes(response.body)  # type: ignore[arg-type]
        # Truncated: the connection "dropped" half way. Malformed: a trailing comma, which lenient
        # parsers accept and JSON does not.
        body = body[: len(body) // 2] if fault == "truncated_json" else body[:-1] + b"," + body[-1:]
        return web.Response(body=body, status=response.status, content_type=JSON, charset="utf-8")
    return response


def _retry_after(seconds: float) -> str:
    return str(math.ceil(seconds))  # whole seconds, as HTTP wants; 0 is allowed (fast tests)


def _has_modified_date(request: web.Request) -> bool:
    try:
        return listing.modified_since(request.query) is not None
    except InvalidRequestError:
        return True  # a 400 is coming; it is not a full listing


async def _pause(request: web.Request, seconds: float) -> None:
    """Sleep, but let the app shut down without waiting for a hanging request."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(request.app[CLOSING].wait(), seconds)


# ------------------------------------------------------------------ Trio API


def _json_bytes(body: bytes, status: int = 200) -> web.Response:
    return web.Response(body=body, status=status, content_type=JSON, charset="utf-8")


async def list_jobs(request: web.Request) -> web.StreamResponse:
    sim = request.app[SIM]
    since = listing.modified_since(request.query)
    omit: set[int] = set()
    if request.get(FAULT) == "partial_listing" and since is None:
        omit = sim.injector.omitted([r.number for r in sim.book if r.listed])
        sim.record_fault("partial_listing", method=request.method, path=request.path, omitted=sorted(omit))
    records = listing.select(sim.book, since, omit)
    log.debug("jobs_listed", modified_since=str(since) if since else None, jobs=len(records), omitted=len(omit))
    if request.get(FAULT) in BODY_FAULTS:
        return _json_bytes(listing.body(records))  # the fault middleware rewrites the whole body
    return await _stream_listing(request, records)


BODY_FAULTS = ("truncated_json", "malformed_json")


async def _stream_listing(request: web.Request, records: list[JobRecord]) -> web.StreamResponse:
    """Write the listing in ~1 MB chunks with flow control: 100k jobs are ~80 MB, never built in one piece."""
    parts = [r.body() for r in records]
    response = web.StreamResponse(headers={"Content-Type": f"{JSON}; charset=utf-8"})
    response.content_length = listing.content_length(parts)
    await response.prepare(request)
    for chunk in listing.chunks(parts):
        await response.write(chunk)
    await response.write_eof()
    return response


async def get_job(request: web.Request) -> web.Response:
    record = request.app[SIM].book.get(int(request.match_info["number"]))
    return _json_bytes(record.body())


async def list_webhooks(request: web.Request) -> web.Response:
    return web.json_response([r.to_json() for r in request.app[SIM].registrations])


async def list_events(request: web.Request) -> web.Response:
    return web.json_response(list(EVENTS))


async def save_webhook(request: web.Request) -> web.Response:
    registration = request.app[SIM].registrations.save(await _json_body(request))
    log.info("webhook_registration_saved", registration_id=registration.id, active=registration.is_active)
    return web.json_response(registration.to_json())


async def _json_body(request: web.Request) -> Any:
    try:
        return json.loads(await request.read() or b"null")
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequestError("$", f"the body is not valid JSON ({exc})") from exc


# ------------------------------------------------------------------ /_sim/ controls


async def sim_truth(request: web.Request) -> web.StreamResponse:
    return await _stream_listing(request, list(request.app[SIM].book))


async def sim_step(request: web.Request) -> web.Response:
    n = _int_param(request.query.get("n", "1"), "n")
    changes = request.app[SIM].step(n)
    return web.json_response(
        [
            {"kind": c.kind, "Number": c.number, "fires_webhook": c.fires_webhook, "ModifiedDateUtc": c.modified}
            for c in changes
        ]
    )


async def sim_get_faults(request: web.Request) -> web.Response:
    return web.json_response(request.app[SIM].faults.to_dict())


async def sim_put_faults(request: web.Request) -> web.Response:
    """Replace every fault setting: a JSON object (unnamed settings take defaults), or the CLI string form."""
    sim = request.app[SIM]
    if request.content_type == "text/plain":
        sim.faults = FaultConfig.parse(await request.text())
    else:
        sim.faults = FaultConfig.from_dict(await _json_body(request))
    log.info("faults_replaced", faults=sim.faults.to_dict())
    return web.json_response(sim.faults.to_dict())


async def sim_patch_faults(request: web.Request) -> web.Response:
    """Change only the fault settings given in the JSON object."""
    sim = request.app[SIM]
    body = await _json_body(request)
    if not isinstance(body, dict):
        raise InvalidRequestError("$", "the body must be a JSON object of fault settings")
    sim.faults.update(body)
    log.info("faults_changed", faults=sim.faults.to_dict())
    return web.json_response(sim.faults.to_dict())


async def sim_fault_log(request: web.Request) -> web.Response:
    return web.json_response(request.app[SIM].fault_log)


async def sim_flush(request: web.Request) -> web.Response:
    return web.json_response({"delivered": await request.app[SIM].flush_webhooks()})


async def sim_webhook_log(request: web.Request) -> web.Response:
    return web.json_response(request.app[SIM].webhook_log)


async def sim_create_job(request: web.Request) -> web.Response:
    body = await _json_body(request)
    fields = _object(body or {})
    return _json_bytes(serialize(request.app[SIM].create_job(**fields)), status=201)


async def sim_update_job(request: web.Request) -> web.Response:
    fields = _object(await _json_body(request))
    job = request.app[SIM].update_job(int(request.match_info["number"]), **fields)
    return _json_bytes(serialize(job))


async def sim_set_positions(request: web.Request) -> web.Response:
    body = _object(await _json_body(request))
    positions = body.get("positions", body.get(OPEN_POSITIONS))
    if isinstance(positions, bool) or not isinstance(positions, int):
        raise InvalidRequestError("positions", f"must be an integer, got {positions!r}")
    job = request.app[SIM].set_positions(int(request.match_info["number"]), positions)
    return _json_bytes(serialize(job))


async def sim_transition(request: web.Request) -> web.Response:
    sim = request.app[SIM]
    number = int(request.match_info["number"])
    action = request.match_info["action"]
    body = _object(await _json_body(request) or {})
    if action == "hold":
        job = sim.hold(number, body.get("reason"))
    elif action == "close":
        job = sim.close(number, body.get("reason", "Filled"))
    else:
        job = sim.reopen(number)
    return _json_bytes(serialize(job))


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidRequestError("$", "the body must be a JSON object")
    return body


def _int_param(text: str, name: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise InvalidRequestError(name, f"must be an integer, got {text!r}") from None
    if value < 0:
        raise InvalidRequestError(name, f"must be >= 0, got {value}")
    return value
