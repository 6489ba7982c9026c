"""The numbers of ``jobsync ops status`` and of ``make run``'s live screen, read from the running services'
/metrics pages (and, for the DLQ, from the topic itself)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import httpx

from services.operator.promtext import Sample, by_label, histogram_quantile, parse_samples, total


@dataclass
class Endpoints:
    ingress: str | None = None
    poller: str | None = None
    projector: str | None = None


@dataclass
class Status:
    at: float
    up: dict[str, bool] = field(default_factory=dict)
    jobs_by_status: dict[str, float] = field(default_factory=dict)
    events_applied: float = 0.0
    events_by_outcome: dict[str, float] = field(default_factory=dict)
    lag: float | None = None
    freshness_p50: float | None = None  # webhooks only: what an agency feels as "real time"
    freshness_p99: float | None = None
    last_sync: dict[str, float] = field(default_factory=dict)
    webhooks_by_outcome: dict[str, float] = field(default_factory=dict)
    dlq: float = 0.0
    guard_trips: float = 0.0
    leader: bool | None = None
    webhook_registration_healthy: bool | None = None

    def events_per_second(self, previous: Status | None) -> float | None:
        if previous is None or self.at <= previous.at:
            return None
        return max(0.0, self.events_applied - previous.events_applied) / (self.at - previous.at)


def _scrape(client: httpx.Client, url: str | None) -> list[Sample] | None:
    if url is None:
        return None
    try:
        response = client.get(f"{url}/metrics", timeout=2.0)
        response.raise_for_status()
        return parse_samples(response.text)
    except httpx.HTTPError:
        return None


def collect(endpoints: Endpoints) -> Status:
    status = Status(at=time.time())
    with httpx.Client() as client:
        ingress = _scrape(client, endpoints.ingress)
        poller = _scrape(client, endpoints.poller)
        projector = _scrape(client, endpoints.projector)
    status.up = {"ingress": ingress is not None, "poller": poller is not None, "projector": projector is not None}
    if projector:
        status.jobs_by_status = by_label(projector, "projector_view_jobs", "status")
        status.events_by_outcome = by_label(projector, "projector_events_total", "outcome")
        status.events_applied = sum(status.events_by_outcome.values())
        status.lag = total(projector, "projector_consumer_lag_messages")
        status.freshness_p50 = histogram_quantile(projector, "projector_freshness_seconds", 0.5, source="webhook")
        status.freshness_p99 = histogram_quantile(projector, "projector_freshness_seconds", 0.99, source="webhook")
        status.dlq += status.events_by_outcome.get("dlq", 0.0)
        status.guard_trips = total(projector, "projector_closure_guard_trips_total") or 0.0
    if poller:
        status.last_sync = by_label(poller, "poller_last_success_timestamp_seconds", "kind")
        leader = total(poller, "poller_leader")
        status.leader = None if leader is None else leader > 0
        healthy = total(poller, "poller_webhook_registration_healthy")
        status.webhook_registration_healthy = None if healthy is None else healthy > 0
        status.dlq += total(poller, "poller_dead_letters_total") or 0.0
    if ingress:
        status.webhooks_by_outcome = by_label(ingress, "ingress_requests_total", "outcome")
        status.dlq += total(ingress, "ingress_dlq_total") or 0.0
    return status


def _ago(timestamp: float | None, now: float) -> str:
    if not timestamp:
        return "never"
    seconds = now - timestamp
    return f"{seconds:.0f}s ago" if seconds < 120 else f"{seconds / 60:.0f}m ago"


def _secs(value: float | None) -> str:
    return "-" if value is None else (f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s")


def render(status: Status, previous: Status | None = None) -> str:
    """One screen of text."""
    rate = status.events_per_second(previous)
    jobs = ", ".join(f"{k} {v:.0f}" for k, v in sorted(status.jobs_by_status.items())) or "-"
    outcomes = ", ".join(f"{k} {v:.0f}" for k, v in sorted(status.events_by_outcome.items())) or "-"
    hooks = ", ".join(f"{k} {v:.0f}" for k, v in sorted(status.webhooks_by_outcome.items())) or "-"
    up = "  ".join(f"{name} {'up' if ok else 'DOWN'}" for name, ok in status.up.items())
    syncs = ", ".join(f"{k} {_ago(v, status.at)}" for k, v in sorted(status.last_sync.items())) or "none yet"
    lines = [
        f"services        {up}",
        f"jobs in view    {jobs}",
        f"events applied  {status.events_applied:.0f} total"
        + (f", {rate:.1f}/s" if rate is not None else "")
        + f"   ({outcomes})",
        f"consumer lag    {'-' if status.lag is None else f'{status.lag:.0f} messages'}",
        f"freshness       webhook to view: p50 {_secs(status.freshness_p50)}   p99 {_secs(status.freshness_p99)}",
        f"webhooks        {hooks}",
        f"last syncs      {syncs}",
        f"webhook reg.    {'-' if status.webhook_registration_healthy is None else ('active' if status.webhook_registration_healthy else 'MISSING/INACTIVE')}",  # noqa: E501
        f"dead letters    {status.dlq:.0f}      closure-guard trips {status.guard_trips:.0f}",
    ]
    return "\n".join(lines)
