"""Prometheus metrics of the simulator, exported from the Simulator's plain counters at scrape time."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from services.common.trio import KNOWN_STATUSES
from services.simulator.simulator import Simulator


class _SimulatorCollector(Collector):
    def __init__(self, sim: Simulator) -> None:
        self._sim = sim

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        families = {
            "change": CounterMetricFamily(
                "simulator_changes", "Changes made to the simulated jobs, by kind.", labels=["kind"]
            ),
            "fault": CounterMetricFamily("simulator_faults_injected", "Faults injected, by fault.", labels=["fault"]),
            "webhook": CounterMetricFamily(
                "simulator_webhook_deliveries", "Webhook deliveries, by outcome.", labels=["outcome"]
            ),
        }
        for key, value in sorted(self._sim.stats.items()):
            group, _, label = key.partition(":")
            if group in families:
                families[group].add_metric([label], value)
        yield from families.values()
        jobs = GaugeMetricFamily("simulator_jobs", "Simulated jobs, by status.", labels=["status"])
        for status in sorted(KNOWN_STATUSES):
            jobs.add_metric([status], self._sim.book.count(status))
        yield jobs


class SimulatorMetrics:
    """Registered once per app, on the injected registry."""

    def __init__(self, registry: CollectorRegistry, sim: Simulator) -> None:
        self.api_requests = Counter(
            "simulator_api_requests_total",
            "Requests to the simulated Trio API, by route and status.",
            ["route", "status"],
            registry=registry,
        )
        registry.register(_SimulatorCollector(sim))
