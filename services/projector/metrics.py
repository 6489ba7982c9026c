"""The projector's Prometheus metrics, registered once on an injected registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.common.metrics import FRESHNESS_BUCKETS, LATENCY_BUCKETS

BATCH_BUCKETS = (1, 5, 10, 50, 100, 250, 500, 1000, 2500, 5000)


class ProjectorMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.events = Counter(
            "projector_events_total",
            "Events consumed, by what they did: applied, stale, duplicate, unchanged, closed, reopened, "
            "inferred_closed (jobs closed by a snapshot), snapshot (markers), dlq.",
            ["outcome"],
            registry=registry,
        )
        self.batch_size = Histogram(
            "projector_batch_events", "Events per consumed batch.", buckets=BATCH_BUCKETS, registry=registry
        )
        self.write_latency = Histogram(
            "projector_write_latency_seconds", "Duration of one bulk write of the view.",
            buckets=LATENCY_BUCKETS, registry=registry,
        )
        self.write_conflicts = Counter(
            "projector_write_conflicts_total",
            "Writes that lost an optimistic-concurrency race (another projector wrote first) and were re-applied.",
            registry=registry,
        )
        self.batch_failures = Counter(
            "projector_batch_failures_total", "Batch attempts that failed (MongoDB or Kafka) and were retried.",
            ["stage"], registry=registry,
        )
        self.lag = Gauge(
            "projector_consumer_lag_messages", "Events not yet consumed, per partition of jobs.events.",
            ["partition"], registry=registry,
        )
        self.view_jobs = Gauge(
            "projector_view_jobs", "Jobs in the view, by status.", ["status"], registry=registry
        )
        self.freshness = Histogram(
            "projector_freshness_seconds",
            "From an observation's arrival (observed_at) to its change in the view, by source (webhook, poll_full...).",
            ["source"], buckets=FRESHNESS_BUCKETS, registry=registry,
        )
        self.guard_trips = Counter(
            "projector_closure_guard_trips_total",
            "Snapshot markers whose inferred closures were held back for an operator.", registry=registry,
        )
        self.documents_refused = Counter(
            "projector_documents_refused_total",
            "Job documents the view's server refused (not a lost race, not transient); by=event: the events "
            "were dead-lettered; by=closure: an inferred closure was not applied.",
            ["by"], registry=registry,
        )
        self.feed_records = Counter(
            "projector_feed_records_total", "Records published to jobs.state, by change kind.", ["kind"],
            registry=registry,
        )
        self.ready = Gauge("projector_ready", "1 when consuming and writing normally, 0 otherwise.",
                           registry=registry)
