"""Poller benchmark: a full sync of N simulated jobs end to end into Kafka, and the fetch alone beside it.

The simulator runs in its own process (as Trio is remote); the poller side runs here: one
``GET /Job`` of every job, validation, Avro encoding, publishing with every event acknowledged
(acks=all, idempotent), a SnapshotCompleted marker on every partition, and the checkpoint write.
"Fetch only" is ``TrioClient.list_jobs()`` on the same simulator in the same run: request, transfer and
JSON parse. ``python -m tests.bench poller [--quick]`` (100,000 jobs; --quick: 10,000).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from typing import Any

import httpx

from services.common.kafka import AsyncProducer, ensure_topics, standard_topics
from services.common.metrics import new_registry
from services.common.settings import KafkaSettings
from services.localinfra.servers import free_port
from services.poller.client import TrioClient
from services.poller.metrics import PollerMetrics
from services.poller.publishing import Publisher
from services.poller.schedule import SyncKind
from services.poller.settings import PollerSettings
from services.poller.sync import Syncer
from tests.infra import kafka_server

API_KEY = "bench-key"
PARTITIONS = 6


async def _wait_for_simulator(base_url: str, process: subprocess.Popen, timeout: float = 600.0) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as http:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"the simulator exited with {process.returncode}")
            try:
                if (await http.get(f"{base_url}/Webhooks", headers={"X-API-KEY": API_KEY})).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.5)
    raise RuntimeError("the simulator did not come up")


async def _run(
    address: str, jobs: int, sim: subprocess.Popen, port: int, started: float
) -> list[tuple[str, float, str, str]]:
    base_url = f"http://127.0.0.1:{port}/ahsa/api/v3"
    await _wait_for_simulator(base_url, sim)
    seeding = time.perf_counter() - started
    kafka = KafkaSettings(bootstrap_servers=address, topic_prefix=f"bench{uuid.uuid4().hex[:8]}",
                          partitions=PARTITIONS)  # fmt: skip
    ensure_topics(kafka, standard_topics(kafka))
    settings = PollerSettings(base_url=base_url, api_key=API_KEY, request_timeout_s=300, sync_budget_s=3600)
    metrics = PollerMetrics(new_registry())
    producer = AsyncProducer(kafka)
    await producer.start()
    client = TrioClient.from_settings(settings, metrics)
    try:
        await client.list_jobs()  # warm the simulator's cached bodies and the connection
        fetch_started = time.perf_counter()
        fetched = len(await client.list_jobs())
        fetch = time.perf_counter() - fetch_started
        syncer = Syncer(settings, kafka, client, Publisher(producer, kafka), metrics)
        sync_started = time.perf_counter()
        result = await syncer.run(SyncKind.FULL)
        full = time.perf_counter() - sync_started
        if result.outcome != "succeeded":
            raise RuntimeError(f"the benchmark sync failed: {result.error}")
    finally:
        await client.aclose()
        await producer.stop()
    note = f"{jobs} jobs, {PARTITIONS} partitions, acks=all"
    return [
        ("full_sync_end_to_end", full, "s", f"{note}: fetch+validate+publish all acked+{result.markers} markers"),
        ("full_sync_rate", result.published / full, "jobs/s", note),
        ("fetch_only", fetch, "s", f"GET /Job of {fetched} jobs incl. JSON parse, same run"),
        ("simulator_seeding", seeding, "s", "not part of the sync (process start + job generation)"),
    ]


def main(args: Any) -> list[tuple[str, float, str, str]]:
    jobs = 10_000 if getattr(args, "quick", False) else 100_000
    port = free_port()
    started = time.perf_counter()
    sim = subprocess.Popen(
        [sys.executable, "-m", "services.simulator", "--port", str(port), "--jobs", str(jobs), "--seed", "1",
         "--api-key", API_KEY],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "JOBSYNC_LOG_LEVEL": "WARNING"},
    )  # fmt: skip
    try:
        with kafka_server() as handle:
            return asyncio.run(_run(handle.address, jobs, sim, port, started))
    finally:
        sim.terminate()
        sim.wait(30)
