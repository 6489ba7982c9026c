"""Two poller processes (``python -m services.poller``): one leads, the other waits; killing the leader
hands over to the standby, which resumes from the stored cursor; SIGTERM stops a poller cleanly.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import httpx
import pytest

from services.common.settings import KafkaSettings
from services.localinfra.servers import free_port
from tests.poller_support import read_checkpoint
from tests.simulator_support import RunningSimulator, simulator  # noqa: F401

pytestmark = pytest.mark.integration

TOKEN = "election-test-token"


class Instance:
    def __init__(self, name: str, process: asyncio.subprocess.Process, port: int, log: Path) -> None:
        self.name, self.process, self.port, self.log = name, process, port, log
        self.status: dict | None = None

    async def refresh(self, http: httpx.AsyncClient) -> dict | None:
        try:
            reply = await http.get(
                f"http://127.0.0.1:{self.port}/admin/status", headers={"Authorization": f"Bearer {TOKEN}"}
            )
            self.status = reply.json() if reply.status_code == 200 else None
        except httpx.HTTPError:
            self.status = None
        return self.status

    @property
    def leading(self) -> bool:
        return bool(self.status and self.status["leader"])

    def synced(self, kind: str | None = None) -> list[dict]:
        recent = (self.status or {}).get("recent", [])
        return [s for s in recent if s["outcome"] == "succeeded" and (kind is None or s["kind"] == kind)]


async def start(name: str, sim: RunningSimulator, kafka: KafkaSettings, tmp: Path) -> Instance:
    port = free_port()
    env = {
        **os.environ,
        "JOBSYNC_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "JOBSYNC_KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
        "JOBSYNC_KAFKA_PARTITIONS": "3",
        "JOBSYNC_POLLER_BASE_URL": sim.base_url,
        "JOBSYNC_POLLER_API_KEY": sim.api_key,
        "JOBSYNC_POLLER_OPS_HOST": "127.0.0.1",
        "JOBSYNC_POLLER_OPS_PORT": str(port),
        "JOBSYNC_POLLER_ADMIN_TOKEN": TOKEN,
        "JOBSYNC_POLLER_INCREMENTAL_INTERVAL_S": "0.5",
        "JOBSYNC_POLLER_OVERLAP_S": "5",
        "JOBSYNC_LOG_FORMAT": "json",
    }
    log = tmp / f"{name}.log"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.poller", env=env, stdout=log.open("wb"), stderr=asyncio.subprocess.STDOUT
    )
    return Instance(name, process, port, log)


async def test_one_of_two_pollers_leads_and_the_standby_takes_over_when_it_dies(
    simulator: RunningSimulator,  # noqa: F811
    kafka_settings: KafkaSettings,
    tmp_path: Path,
) -> None:
    instances = [await start(n, simulator, kafka_settings, tmp_path) for n in ("a", "b")]
    try:
        async with httpx.AsyncClient(timeout=5.0) as http:

            async def refresh_all() -> None:
                for instance in instances:
                    if instance.process.returncode is None:
                        await instance.refresh(http)

            async def until(predicate, what: str, timeout: float = 90.0) -> None:  # type: ignore[no-untyped-def]
                async def loop() -> None:
                    while True:
                        await refresh_all()
                        if predicate():
                            return
                        await asyncio.sleep(0.2)

                try:
                    await asyncio.wait_for(loop(), timeout)
                except TimeoutError:
                    logs = "\n".join(f"--- {i.name}\n{i.log.read_text()[-3000:]}" for i in instances)
                    raise AssertionError(f"gave up waiting for: {what}\n{logs}") from None

            await until(
                lambda: all(i.status for i in instances) and any(i.leading and i.synced("full") for i in instances),
                "both up, one leading with a full sync done",
            )
            [leader] = [i for i in instances if i.leading]
            [standby] = [i for i in instances if not i.leading]
            assert standby.status is not None and standby.status["recent"] == []  # the standby does nothing
            stored = read_checkpoint(kafka_settings)
            assert stored is not None and stored.last_full_count is not None

            leader.process.kill()  # no goodbye: the group notices after the 6 s session timeout
            await leader.process.wait()
            await until(lambda: standby.leading and bool(standby.synced()), "the standby leading and syncing")
            first = standby.synced()[0]
            assert first["kind"] == "incremental"  # resumed from the stored cursor, no needless full sync

            standby.process.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(standby.process.wait(), 60) == 0
            assert "poller_stopped" in standby.log.read_text()
    finally:
        for instance in instances:
            if instance.process.returncode is None:
                instance.process.kill()
                await instance.process.wait()
