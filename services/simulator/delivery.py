"""Webhook delivery: POSTs each queued job to its registration's URL in the background (aiohttp edge).

One delivery at a time, in outbox order, so the order the outbox decided (including reordered and
late ones) is the order receivers see. No retries: Trio's retry behaviour is not documented, and a
receiver must not count on one.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import aiohttp

from services.common.logs import get_logger
from services.simulator.outbox import Delivery, Outbox

log = get_logger("simulator.webhooks")

Recorder = Callable[[Delivery, int | None, str | None], None]


class WebhookDispatcher:
    def __init__(self, outbox: Outbox, record: Recorder, *, timeout_seconds: float = 5.0) -> None:
        self._outbox = outbox
        self._record = record
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._wakeup = asyncio.Event()
        self._lock = asyncio.Lock()
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None

    async def start(self) -> None:
        if self._task is not None:
            raise RuntimeError("webhook delivery is already running for this simulator")
        self._session = aiohttp.ClientSession(timeout=self._timeout)
        self._task = asyncio.create_task(self._run(), name="simulator-webhooks")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def notify(self) -> None:
        """Something was queued: wake the background loop."""
        self._wakeup.set()

    async def flush(self) -> int:
        """Deliver everything queued now, late and held-back ones included; returns how many went out."""
        temporary = self._session is None  # flushing a simulator whose app is not running
        session = aiohttp.ClientSession(timeout=self._timeout) if self._session is None else self._session
        sent = 0
        try:
            async with self._lock:
                while (delivery := self._outbox.pop_any()) is not None:
                    await self._deliver(session, delivery)
                    sent += 1
        finally:
            if temporary:
                await session.close()
        return sent

    async def _run(self) -> None:
        while True:
            self._wakeup.clear()
            async with self._lock:
                delivery = self._outbox.pop_due(time.monotonic())
                if delivery is not None:
                    assert self._session is not None
                    await self._deliver(self._session, delivery)
                    continue
            next_due = self._outbox.next_due()
            delay = None if next_due is None else max(0.0, next_due - time.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), delay)

    async def _deliver(self, session: aiohttp.ClientSession, delivery: Delivery) -> None:
        status: int | None = None
        error: str | None = None
        try:
            async with session.post(
                delivery.url, data=delivery.body, headers={"Content-Type": "application/json"}
            ) as response:
                await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        log.debug(
            "webhook_delivered",
            job_number=delivery.number,
            modified=delivery.modified,
            status=status,
            error=error,
            duplicated=delivery.duplicated,
            late=delivery.late,
            reordered=delivery.reordered,
        )
        self._record(delivery, status, error)
