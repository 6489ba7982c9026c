"""Helpers for the ingress tests: settings, job bodies, a running app on a real port."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from confluent_kafka import Consumer
from prometheus_client import CollectorRegistry

from services.common.kafka import base_config
from services.common.metrics import new_registry
from services.common.settings import KafkaSettings
from services.ingress.app import create_app
from services.ingress.handler import Publisher
from services.ingress.settings import IngressSettings
from services.localinfra.servers import free_port

SECRET = "s3cr3t-" + "a" * 40  # a URL-safe secret of the required length
OTHER_SECRET = "rotated-" + "b" * 40
PATH = f"/trio/webhooks/jobs/{SECRET}"
JSON = {"Content-Type": "application/json"}


def ingress_settings(**overrides: Any) -> IngressSettings:
    values: dict[str, Any] = {"path_secrets": [SECRET, OTHER_SECRET], "port": 0}
    values.update(overrides)
    return IngressSettings(**values)


def trio_job(number: int, **fields: Any) -> dict[str, Any]:
    """A Trio job object as the webhook carries it, with a field the pipeline does not know."""
    job = {
        "Number": number,
        "Title": f"RN ICU #{number}",
        "JobStatus": "Open",
        "JobStatusReason": None,
        "ModifiedDateUtc": "2024-09-01T10:11:12.1234567Z",
        "NumberOfCurrentOpenPositions": 2,
        "UnitDescription": "ICU",
        "SomeFieldTrioAddsLater": {"nested": [1, "two", None]},
    }
    job.update(fields)
    return job


def body_of(job: Any) -> bytes:
    """Bytes as a sender might format them (spacing kept, so verbatim-ness is observable)."""
    return json.dumps(job, indent=1).encode()


@contextlib.asynccontextmanager
async def ingress_client(
    settings: IngressSettings,
    kafka: KafkaSettings,
    *,
    producer: Publisher | None = None,
    registry: CollectorRegistry | None = None,
) -> AsyncIterator[TestClient]:
    """The ingress app on a real loopback port, with a client (the app's cleanup context runs)."""
    app = create_app(settings, kafka=kafka, producer=producer, registry=registry or new_registry())
    async with TestClient(TestServer(app)) as client:
        yield client


@contextlib.contextmanager
def ingress_in_thread(settings: IngressSettings, kafka: KafkaSettings) -> Iterator[str]:
    """Serve the ingress from a thread of its own (for synchronous clients such as schemathesis).

    Yields the base URL; stops the app (and flushes its producer) on exit.
    """
    port = free_port()
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    runner_box: list[web.AppRunner] = []
    failure: list[BaseException] = []

    async def start() -> None:
        runner = web.AppRunner(create_app(settings, kafka=kafka, registry=new_registry()), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runner_box.append(runner)

    def serve() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(start())
        except BaseException as exc:
            failure.append(exc)
            ready.set()
            return
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner_box[0].cleanup())
        loop.close()

    thread = threading.Thread(target=serve, name="ingress-under-test", daemon=True)
    thread.start()
    ready.wait()
    if failure:
        raise failure[0]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join()


def event_ids_on(settings: KafkaSettings, topic: str, wanted: set[str], timeout: float = 60.0) -> set[str]:
    """Read ``topic`` from the start until every wanted ``event-id`` header was seen (or ``timeout``).

    Returns every event id found (possibly more than wanted: a send answered 503 may still have been
    written, which is a harmless duplicate); the caller asserts that ``wanted`` is inside it.
    """
    consumer = Consumer(
        {
            **base_config(settings),
            "group.id": f"test-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    found: set[str] = set()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not wanted <= found:
            message = consumer.poll(0.2)
            if message is None or message.error():
                continue
            found.update(value.decode() for name, value in message.headers() or [] if name == "event-id")
    finally:
        consumer.close()
    return found
