"""Driving the whole system in e2e tests: the stack as real processes, the simulator through its HTTP
controls, the view through a real MongoDB-wire client."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pymongo

from services.common.kafka import ensure_topics, standard_topics
from services.common.settings import KafkaSettings
from services.operator.drift import DriftReport, compare_with_truth
from services.operator.stack import Stack, StackConfig


def env_ints(name: str, default: str) -> list[int]:
    return [int(part) for part in os.environ.get(name, default).split(",") if part.strip()]


@contextmanager
def running_stack(
    kafka_address: str, mongo_uri: str, name: str, log_dir: Path, **overrides: Any
) -> Iterator[Stack]:
    defaults: dict[str, Any] = {
        "simulator_rate": 0.0, "incremental_interval_s": 2.0, "full_interval_s": 3600.0, "log_format": "json",
    }
    config = StackConfig(
        kafka_bootstrap=kafka_address,
        mongo_uri=mongo_uri,
        log_dir=log_dir,
        mongo_database=name,
        topic_prefix=name,
        partitions=3,
        **{**defaults, **overrides},  # a test may override these defaults
    )
    settings = KafkaSettings(bootstrap_servers=kafka_address, topic_prefix=name, partitions=3)
    ensure_topics(settings, standard_topics(settings))
    stack = Stack(config)
    try:
        yield stack
    finally:
        stack.stop_all()


class Driver:
    """The test's hands: the simulator's controls, the poller's admin API, the view."""

    def __init__(self, stack: Stack) -> None:
        self.config = stack.config
        self.http = httpx.Client(timeout=60.0)
        self.sim_headers = {"X-API-KEY": self.config.trio_api_key}
        self.mongo: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
            self.config.mongo_uri, serverSelectionTimeoutMS=5000
        )

    def close(self) -> None:
        self.http.close()
        self.mongo.close()

    # --- the simulator ---------------------------------------------------------------------------
    def step(self, n: int) -> list[dict[str, Any]]:
        response = self.http.post(f"{self.config.simulator_url}/_sim/step", params={"n": n}, headers=self.sim_headers)
        response.raise_for_status()
        return response.json()

    def set_faults(self, faults: str) -> None:
        response = self.http.put(
            f"{self.config.simulator_url}/_sim/faults", content=faults,
            headers={**self.sim_headers, "Content-Type": "text/plain"},
        )
        response.raise_for_status()

    def flush_webhooks(self) -> int:
        response = self.http.post(f"{self.config.simulator_url}/_sim/flush", headers=self.sim_headers)
        response.raise_for_status()
        return response.json()["delivered"]

    def truth(self) -> dict[int, dict[str, Any]]:
        response = self.http.get(f"{self.config.simulator_url}/_sim/truth", headers=self.sim_headers)
        response.raise_for_status()
        return {job["Number"]: job for job in response.json()}

    def webhook_log(self) -> list[dict[str, Any]]:
        response = self.http.get(f"{self.config.simulator_url}/_sim/webhooks/log", headers=self.sim_headers)
        response.raise_for_status()
        return response.json()

    # --- the poller -------------------------------------------------------------------------------
    def resync(self, timeout: float = 120.0) -> dict[str, Any]:
        """Start a full sync through the admin API and wait until it finished; returns its progress."""
        headers = {"Authorization": f"Bearer {self.config.admin_token}"}
        deadline = time.monotonic() + timeout
        while True:  # the poller may not have won its election yet
            response = self.http.post(f"{self.config.poller_url}/admin/resync", headers=headers)
            if response.status_code == 202 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert response.status_code == 202, response.text
        status_url = self.config.poller_url + response.json()["status_url"]
        while time.monotonic() < deadline:
            progress = self.http.get(status_url, headers=headers).json()
            if progress.get("outcome"):
                return progress
            time.sleep(0.3)
        raise AssertionError(f"resync did not finish within {timeout}s")

    def metrics(self, url: str) -> str:
        return self.http.get(f"{url}/metrics").text

    # --- the view ---------------------------------------------------------------------------------
    def view(self) -> dict[int, dict[str, Any]]:
        """Number -> the Trio job as the view holds it (the verbatim copy)."""
        jobs = self.mongo[self.config.mongo_database]["jobs"]
        return {doc["_id"]: json.loads(doc["job_json"]) for doc in jobs.find({}, {"job_json": 1})}

    def view_documents(self) -> dict[int, dict[str, Any]]:
        jobs = self.mongo[self.config.mongo_database]["jobs"]
        return {doc["_id"]: doc for doc in jobs.find({})}

    def drift(self) -> DriftReport:
        return compare_with_truth(self.view(), self.truth())

    def wait_until(self, check: Callable[[], bool], timeout: float, what: str, interval: float = 0.5) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(interval)
        raise AssertionError(f"timed out after {timeout:.0f}s waiting until {what}")

    def wait_converged(self, timeout: float = 90.0) -> DriftReport:
        """Wait until the view equals the truth for every job; returns the last report either way."""
        report = self.drift()
        deadline = time.monotonic() + timeout
        while not report.agrees and time.monotonic() < deadline:
            time.sleep(1.0)
            report = self.drift()
        return report

    def drive(self, steps: int, chunk: int = 10, pause: float = 0.2) -> None:
        """Run the scenario engine ``steps`` changes, in chunks, as steady churn."""
        done = 0
        while done < steps:
            n = min(chunk, steps - done)
            self.step(n)
            done += n
            time.sleep(pause)
