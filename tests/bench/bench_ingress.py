"""Ingress throughput and latency: accepted webhooks over loopback HTTP, each acknowledged by a real broker.

Uses KAFKA_BOOTSTRAP_SERVERS when set, else starts a private broker. Bounded: a fixed number of
requests (``--quick`` fewer) at a fixed concurrency, with a wall-clock cap; loopback only.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
from aiohttp import web

from services.common.kafka import ensure_topics, standard_topics
from services.common.logs import configure_logging
from services.common.metrics import new_registry
from services.common.settings import KafkaSettings
from services.ingress.app import create_app
from services.ingress.settings import IngressSettings
from services.localinfra.servers import KafkaServer, free_port

SECRET = "bench-" + "s" * 40
CONCURRENCY = 32
TIME_CAP_SECONDS = 120.0


def _job(number: int) -> bytes:
    return (
        f'{{"Number": {number}, "Title": "RN ICU", "JobStatus": "Open", "JobStatusReason": null, '
        f'"ModifiedDateUtc": "2024-09-01T10:11:12.1234567Z", "NumberOfCurrentOpenPositions": 2, '
        f'"UnitDescription": "ICU", "PlacementCoordinatorEmail": "pc@example.org"}}'
    ).encode()


async def _load(base: str, total: int, concurrency: int) -> tuple[list[float], float, dict[int, int]]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(total):
        queue.put_nowait(n)
    deadline = time.monotonic() + TIME_CAP_SECONDS
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            while not queue.empty() and time.monotonic() < deadline:
                n = queue.get_nowait()
                body = _job(100_000 + n % 5_000)
                started = time.perf_counter()
                async with session.post(
                    f"{base}/trio/webhooks/jobs/{SECRET}", data=body, headers={"Content-Type": "application/json"}
                ) as response:
                    await response.read()
                    statuses[response.status] = statuses.get(response.status, 0) + 1
                    if response.status == 200:
                        latencies.append(time.perf_counter() - started)

        # warm up: connections, producer id, metadata
        for n in range(20):
            async with session.post(
                f"{base}/trio/webhooks/jobs/{SECRET}", data=_job(n), headers={"Content-Type": "application/json"}
            ) as response:
                await response.read()
        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    return latencies, elapsed, statuses


async def _run(bootstrap: str, total: int, concurrency: int) -> list[tuple[str, float, str, str]]:
    kafka = KafkaSettings(bootstrap_servers=bootstrap, topic_prefix=f"bench{uuid.uuid4().hex[:8]}", partitions=6)
    await asyncio.to_thread(ensure_topics, kafka, standard_topics(kafka))
    settings = IngressSettings(path_secrets=[SECRET], max_in_flight=max(512, concurrency * 2))
    runner = web.AppRunner(create_app(settings, kafka=kafka, registry=new_registry()), access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        latencies, elapsed, statuses = await _load(f"http://127.0.0.1:{port}", total, concurrency)
    finally:
        await runner.cleanup()
    accepted = len(latencies)
    quantiles = statistics.quantiles(latencies, n=100, method="inclusive") if accepted >= 2 else [0.0] * 99
    note = f"{accepted} accepted of {sum(statuses.values())} sent, concurrency {concurrency}, statuses {statuses}"
    return [
        ("accepted_rps", accepted / elapsed if elapsed else 0.0, "req/s", note),
        ("latency_p50", quantiles[49] * 1000, "ms", "client-side, request to 200 after acks=all"),
        ("latency_p99", quantiles[98] * 1000, "ms", "client-side, request to 200 after acks=all"),
    ]


async def main(args) -> list[tuple[str, float, str, str]]:
    total = 500 if getattr(args, "quick", False) else 5000
    # one log line per webhook is the service's contract; here it would measure the terminal instead
    configure_logging("json", "WARNING")
    if bootstrap := os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        return await _run(bootstrap, total, CONCURRENCY)
    with tempfile.TemporaryDirectory(prefix="jobsync-bench-kafka-") as tmp:
        server = KafkaServer("kafka", Path(tmp), free_port(), controller_port=free_port(), heap="512m")
        await asyncio.to_thread(server.start)
        try:
            return await _run(server.bootstrap, total, CONCURRENCY)
        finally:
            await asyncio.to_thread(server.stop)
