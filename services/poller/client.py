"""``TrioClient``: the Trio VMS API over httpx, with retries that honour Retry-After and a time budget.

Every call is one structured log line per attempt (method, path without secrets, status, duration,
attempt, jobs returned). The API key travels only in the ``X-API-KEY`` header: it is never logged and
never part of an error message.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import urlencode

import httpx
from pydantic import SecretStr

from services.common.logs import get_logger
from services.common.trio import format_trio_datetime
from services.poller.backoff import is_retryable_status, parse_retry_after, retry_wait
from services.poller.errors import (
    MalformedResponseError,
    TrioAuthError,
    TrioError,
    TrioRequestError,
    TrioUnavailableError,
)
from services.poller.listing import parse_listing, parse_object
from services.poller.metrics import PollerMetrics
from services.poller.settings import PollerSettings

log = get_logger("poller.client")

T = TypeVar("T")
Parser = Callable[[bytes], tuple[T, int | None]]  # body -> (result, jobs returned or None)

API_KEY_SETTING = "JOBSYNC_POLLER_API_KEY"


class TrioClient:
    """One tenant's Trio API. Use as ``async with TrioClient(...) as client`` or call ``aclose()``.

    ``deadline`` (a ``time.monotonic()`` instant) bounds a call with all its retries; a sync passes the
    same deadline to every call, so the sync as a whole has a bounded duration.
    """

    def __init__(
        self,
        base_url: str,
        api_key: SecretStr,
        *,
        request_timeout: float = 120.0,
        connect_timeout: float = 10.0,
        max_attempts: int = 6,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        metrics: PollerMetrics | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = httpx.Timeout(request_timeout, connect=connect_timeout)
        self._max_attempts = max_attempts
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._metrics = metrics
        self._sleep = sleep
        self._monotonic = monotonic
        self._rng = rng or random.Random()
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers={"X-API-KEY": api_key.get_secret_value(), "Accept": "application/json"},
            timeout=self._timeout,
            transport=transport,
            follow_redirects=False,
        )

    @classmethod
    def from_settings(cls, settings: PollerSettings, metrics: PollerMetrics | None = None, **kwargs: Any) -> TrioClient:
        return cls(
            settings.api_base_url(),
            settings.require_api_key(),
            request_timeout=settings.request_timeout_s,
            connect_timeout=settings.connect_timeout_s,
            max_attempts=settings.max_attempts,
            backoff_base=settings.backoff_base_s,
            backoff_max=settings.backoff_max_s,
            metrics=metrics,
            **kwargs,
        )

    async def __aenter__(self) -> TrioClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # --- the API

    async def list_jobs(self, modified_after: datetime | None = None, *, deadline: float | None = None) -> list[Any]:
        """``GET /Job`` (every Open/OnHold job) or ``GET /Job?modifiedDate=`` (modified strictly after)."""
        params = {"modifiedDate": format_trio_datetime(modified_after)} if modified_after is not None else None

        def parse(body: bytes) -> tuple[list[Any], int | None]:
            records = parse_listing(body, "GET /Job")
            return records, len(records)

        return await self._call("GET", "/Job", "jobs", parse, params=params, deadline=deadline)

    async def get_job(self, number: int, *, deadline: float | None = None) -> Any | None:
        """``GET /Job/{number}``: the job whatever its status, or None when Trio does not know it (404)."""

        def parse(body: bytes) -> tuple[Any, int | None]:
            return parse_object(body, f"GET /Job/{number}"), 1

        return await self._call("GET", f"/Job/{int(number)}", "job", parse, deadline=deadline, none_on_404=True)

    async def list_webhooks(self, *, deadline: float | None = None) -> list[Any]:
        """``GET /Webhooks``: the agency's webhook registrations."""

        def parse(body: bytes) -> tuple[list[Any], int | None]:
            return parse_listing(body, "GET /Webhooks"), None

        return await self._call("GET", "/Webhooks", "webhooks", parse, deadline=deadline)

    async def save_webhook(self, registration: dict[str, Any], *, deadline: float | None = None) -> Any:
        """``POST /Webhooks``: create a registration, or update the one whose ``Id`` the body carries."""

        def parse(body: bytes) -> tuple[Any, int | None]:
            return (parse_object(body, "POST /Webhooks") if body.strip() else None), None

        return await self._call("POST", "/Webhooks", "webhooks_save", parse, json=registration, deadline=deadline)

    # --- retries

    async def _call(
        self,
        method: str,
        path: str,
        endpoint: str,
        parse: Parser[T],
        *,
        params: dict[str, str] | None = None,
        json: Any = None,
        deadline: float | None = None,
        none_on_404: bool = False,
    ) -> Any:
        shown = f"{path}?{urlencode(params)}" if params else path
        attempt = 0
        while True:
            attempt += 1
            remaining = None if deadline is None else deadline - self._monotonic()
            if remaining is not None and remaining <= 0:
                raise TrioUnavailableError(f"{method} {shown}: the sync's time budget ran out before attempt {attempt}")
            timeout = self._timeout if remaining is None else _shrink(self._timeout, remaining)
            started = self._monotonic()
            status: int | None = None
            reason: str
            retry_after: float | None = None
            try:
                response = await self._http.request(method, path, params=params, json=json, timeout=timeout)
            except httpx.TimeoutException as exc:
                reason, error = "timeout", f"{type(exc).__name__}"
            except httpx.TransportError as exc:
                reason, error = "connect", f"{type(exc).__name__}: {exc}"
            else:
                status = response.status_code
                duration = self._monotonic() - started
                self._observe(endpoint, str(status), duration)
                if 200 <= status < 300:
                    try:
                        result, jobs = parse(response.content)
                    except MalformedResponseError as exc:
                        self._log(method, shown, status, duration, attempt, error=str(exc), size=len(response.content))
                        raise
                    self._log(method, shown, status, duration, attempt, jobs=jobs, size=len(response.content))
                    return result
                self._log(method, shown, status, duration, attempt, size=len(response.content))
                if status == 404 and none_on_404:
                    return None
                if status in (401, 403):
                    raise TrioAuthError(
                        f"Trio refused the API key: HTTP {status} on {method} {path}. Check {API_KEY_SETTING} "
                        "(and that JOBSYNC_POLLER_BASE_URL names the right tenant); not retrying."
                    )
                if not is_retryable_status(status):
                    raise TrioRequestError(
                        f"{method} {shown}: Trio answered HTTP {status}: {_snippet(response)}", status
                    )
                reason = "rate_limited" if status == 429 else "server_error"
                error = f"HTTP {status}"
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
            if status is None:
                duration = self._monotonic() - started
                self._observe(endpoint, "error", duration)
                self._log(method, shown, None, duration, attempt, error=error)
            if attempt >= self._max_attempts:
                raise TrioUnavailableError(f"{method} {shown}: gave up after {attempt} attempts; last: {error}")
            wait = retry_wait(attempt, retry_after, self._backoff_base, self._backoff_max, self._rng)
            if deadline is not None and self._monotonic() + wait >= deadline:
                raise TrioUnavailableError(
                    f"{method} {shown}: {error}; waiting {wait:.1f}s for attempt {attempt + 1} would pass the "
                    "sync's time budget (JOBSYNC_POLLER_SYNC_BUDGET_S)"
                )
            if self._metrics is not None:
                self._metrics.http_retries.labels(endpoint, reason).inc()
            log.info("trio_api_retry", method=method, path=shown, reason=reason, wait_s=round(wait, 3), attempt=attempt)
            await self._sleep(wait)

    def _observe(self, endpoint: str, status: str, duration: float) -> None:
        if self._metrics is not None:
            self._metrics.http_requests.labels(endpoint, status).inc()
            self._metrics.http_duration.labels(endpoint).observe(duration)

    @staticmethod
    def _log(
        method: str,
        path: str,
        status: int | None,
        duration: float,
        attempt: int,
        *,
        jobs: int | None = None,
        size: int | None = None,
        error: str | None = None,
    ) -> None:
        fields: dict[str, Any] = {
            "method": method,
            "path": path,
            "status": status,
            "duration_ms": round(duration * 1000, 1),
            "attempt": attempt,
        }
        if jobs is not None:
            fields["jobs"] = jobs
        if size is not None:
            fields["bytes"] = size
        if error is not None:
            fields["error"] = error
            log.warning("trio_api_call", **fields)
        else:
            log.info("trio_api_call", **fields)


def _shrink(timeout: httpx.Timeout, remaining: float) -> httpx.Timeout:
    def cap(value: float | None) -> float:
        return remaining if value is None else min(value, remaining)

    return httpx.Timeout(
        connect=cap(timeout.connect), read=cap(timeout.read), write=cap(timeout.write), pool=cap(timeout.pool)
    )


def _snippet(response: httpx.Response, limit: int = 200) -> str:
    text = response.content[:limit].decode("utf-8", errors="replace")
    return text + ("..." if len(response.content) > limit else "")


__all__ = ["TrioClient", "TrioError"]
