"""The simulator's own figures: seeding 100k jobs, and serving their full listing over real HTTP on loopback."""

from __future__ import annotations

import statistics
import time
from typing import Any

import aiohttp

from services.common.logs import configure_logging
from services.simulator import Simulator
from tests.simulator_support import start_simulator


async def _timed_get(http: aiohttp.ClientSession, url: str, headers: dict[str, str], **kw: Any) -> tuple[float, int]:
    started = time.perf_counter()
    async with http.get(url, headers=headers, **kw) as response:
        body = await response.read()
        response.raise_for_status()
    return time.perf_counter() - started, len(body)


async def _timed_drain(http: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> float:
    """Like _timed_get, but the client discards each chunk: the server's and the socket's share alone."""
    started = time.perf_counter()
    async with http.get(url, headers=headers) as response:
        response.raise_for_status()
        async for _ in response.content.iter_chunked(1 << 20):
            pass
    return time.perf_counter() - started


async def main(args: Any) -> list[tuple[str, float, str, str]]:
    configure_logging("console", "WARNING")  # a debug line per request would be measured too
    jobs = 10_000 if getattr(args, "quick", False) else 100_000
    requests = 5 if getattr(args, "quick", False) else 10
    started = time.perf_counter()
    sim = Simulator(seed=1, jobs=jobs)
    seeded = time.perf_counter() - started
    results = [("seed_jobs", seeded, "s", f"{jobs} jobs, generated and serialized")]
    async with start_simulator(sim) as running, aiohttp.ClientSession() as http:
        url = running.base_url + "/Job"
        cold, size = await _timed_get(http, url, running.headers)
        warm = [(await _timed_get(http, url, running.headers))[0] for _ in range(requests)]
        results += [
            ("full_listing_first", cold * 1000, "ms", f"{jobs} jobs, {size / 1e6:.1f} MB"),
            ("full_listing_median", statistics.median(warm) * 1000, "ms", f"{requests} requests, cached bytes"),
            ("full_listing_max", max(warm) * 1000, "ms", f"{requests} requests"),
        ]
        drained = [await _timed_drain(http, url, running.headers) for _ in range(requests)]
        results.append(("full_listing_drained_median", statistics.median(drained) * 1000, "ms", "client keeps no body"))
        sim.step(100)  # invalidates the changed jobs' bytes only
        after_changes, _ = await _timed_get(http, url, running.headers)
        results.append(("full_listing_after_100_changes", after_changes * 1000, "ms", "re-serializes changed jobs"))
        since = {"modifiedDate": "2000-01-01"}
        incremental = [(await _timed_get(http, url, running.headers, params=since))[0] for _ in range(requests)]
        results.append(("since_listing_median", statistics.median(incremental) * 1000, "ms", "every job matches"))
        started = time.perf_counter()
        sim.step(10_000)
        results.append(("scenario_changes", 10_000 / (time.perf_counter() - started), "changes/s", "no webhook target"))
    return results
