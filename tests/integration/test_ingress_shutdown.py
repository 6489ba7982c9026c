"""Graceful shutdown: the real process on SIGTERM, against the real broker."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from services.common.settings import KafkaSettings
from services.localinfra.servers import free_port
from tests.ingress_support import JSON, PATH, SECRET, body_of, event_ids_on, trio_job

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


async def test_sigterm_stops_accepting_finishes_in_flight_requests_flushes_and_exits_cleanly(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "JOBSYNC_INGRESS_PATH_SECRETS": SECRET,
        "JOBSYNC_INGRESS_HOST": "127.0.0.1",
        "JOBSYNC_INGRESS_PORT": str(port),
        "JOBSYNC_INGRESS_SHUTDOWN_TIMEOUT_SECONDS": "20",
        "JOBSYNC_KAFKA_BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers,
        "JOBSYNC_KAFKA_TOPIC_PREFIX": kafka_settings.topic_prefix,
        "JOBSYNC_LOG_FORMAT": "json",
    }
    log_path = tmp_path / "ingress.log"
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services.ingress", cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    base = f"http://127.0.0.1:{port}"
    statuses: list[int | str] = []
    accepted: set[str] = set()
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(200):  # wait until it listens (bounded; not an assertion on time)
                try:
                    async with session.get(f"{base}/readyz") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.1)
            else:
                pytest.fail(f"the ingress never became ready; log:\n{log_path.read_text()}")

            first_answer = asyncio.Event()

            async def post(number: int) -> None:
                try:
                    async with session.post(f"{base}{PATH}", data=body_of(trio_job(number)), headers=JSON) as r:
                        reply = await r.json()
                        statuses.append(r.status)
                        if r.status == 200:
                            accepted.add(reply["event_id"])
                except aiohttp.ClientConnectionError as exc:  # refused after the listener closed
                    statuses.append(type(exc).__name__)
                first_answer.set()

            requests = [asyncio.ensure_future(post(n)) for n in range(1, 81)]
            await first_answer.wait()
            process.send_signal(signal.SIGTERM)
            await asyncio.gather(*requests)
        exit_code = await asyncio.wait_for(process.wait(), 60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

    log_lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    assert exit_code == 0, log_path.read_text()
    assert len(statuses) == 80
    assert all(status in (200, 503) or isinstance(status, str) for status in statuses), statuses
    assert accepted, "no webhook was accepted before the shutdown"
    stopped = [line for line in log_lines if line["event"] == "ingress_stopped"]
    assert stopped and stopped[0]["undelivered"] == 0
    assert SECRET not in log_path.read_text()
    on_topic = await asyncio.to_thread(event_ids_on, kafka_settings, kafka_settings.events_topic, accepted)
    assert accepted - on_topic == set(), "a webhook answered 2xx before the shutdown is missing from the topic"
