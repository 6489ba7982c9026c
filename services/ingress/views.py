"""HTTP views: the only place that maps outcomes to status codes."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from services.common.logs import get_logger
from services.ingress.handler import Result, WebhookHandler, WebhookRequest
from services.ingress.keys import HANDLER, SETTINGS
from services.ingress.validation import Outcome

log = get_logger("services.ingress")

STATUS: dict[Outcome, int] = {
    Outcome.ACCEPTED: 200,
    Outcome.HINTED: 200,
    Outcome.UNKNOWN_SECRET: 404,
    Outcome.FORBIDDEN_ADDRESS: 403,
    Outcome.BAD_SIGNATURE: 401,
    Outcome.UNSUPPORTED_MEDIA_TYPE: 415,
    Outcome.TOO_LARGE: 413,
    Outcome.NOT_JSON: 400,
    Outcome.INVALID_JOB: 422,
    Outcome.UNSUPPORTED_EVENT: 422,
    Outcome.OVERLOADED: 503,
    Outcome.UNAVAILABLE: 503,
}
_CHUNK = 65_536


async def receive_webhook(request: web.Request) -> web.Response:
    """POST <base_path>/{secret}: one Trio ``Job Update`` webhook."""
    handler: WebhookHandler = request.app[HANDLER]
    started = time.perf_counter()
    webhook = WebhookRequest(
        secret=request.match_info["secret"],
        peer=request.remote,
        headers={name.lower(): value for name, value in request.headers.items()},
        body=request.content.iter_chunked(_CHUNK),
    )
    result = await handler.handle(webhook)
    status = STATUS[result.outcome]
    _log(request, result, status, time.perf_counter() - started)
    return web.json_response(_reply(result), status=status, headers=_headers(request, result))


def _reply(result: Result) -> dict[str, object]:
    if result.outcome in (Outcome.ACCEPTED, Outcome.HINTED):
        return {"status": result.outcome.value, "event_id": result.event_id, "job_number": result.job_number}
    body: dict[str, object] = {
        "status": "unavailable" if STATUS[result.outcome] == 503 else "rejected",
        "error": result.outcome.value,
        "message": result.reason,
        "event_id": result.event_id,
    }
    if result.field is not None:
        body["field"] = result.field
    if result.dead_lettered:
        body["dead_lettered"] = True
    return body


def _headers(request: web.Request, result: Result) -> dict[str, str]:
    if STATUS[result.outcome] == 503:
        return {"Retry-After": str(request.app[SETTINGS].retry_after_seconds)}
    return {}


def _log(request: web.Request, result: Result, status: int, seconds: float) -> None:
    settings = request.app[SETTINGS]
    fields: dict[str, object] = {
        "outcome": result.outcome.value,
        "status": status,
        "event_id": result.event_id,
        "job_number": result.job_number,
        "size": result.size,
        "source_address": result.source_address,
        "peer": request.remote,
        # the secret is never logged: the path is rebuilt from the configured prefix
        "path": f"{settings.base_path}/<redacted>",
        "duration_ms": round(seconds * 1000, 3),
    }
    if result.reason:
        fields["reason"] = result.reason
    if result.field is not None:
        fields["field"] = result.field
    if result.dead_lettered:
        fields["dead_lettered"] = True
    if result.delivered is not None:
        fields.update(topic=result.delivered.topic, partition=result.delivered.partition,
                      offset=result.delivered.offset)
    if result.error is not None:
        fields["error"] = result.error
    if result.refused_as is not None:
        fields["refused_as"] = result.refused_as
    if status < 300:
        log.info("webhook_handled", **fields)
    elif status >= 500:
        log.error("webhook_handled", **fields)
    else:
        log.warning("webhook_handled", **fields)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Routing errors (unknown path, wrong method) and bugs answer JSON too, and never echo the path."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}
        return web.json_response(
            {"status": "rejected", "error": exc.reason.lower().replace(" ", "_"), "message": exc.reason},
            status=exc.status,
            headers=headers,
        )
    except Exception:
        log.exception("request_failed", method=request.method, route=_route_name(request))
        return web.json_response(
            {"status": "error", "error": "internal_error", "message": "unexpected error; see the service log"},
            status=500,
        )


def _route_name(request: web.Request) -> str | None:
    route = request.match_info.route
    return route.resource.canonical if route.resource is not None else None
