"""The poller's Prometheus metrics, registered once on an injected registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.common.metrics import LATENCY_BUCKETS

SYNC_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
HTTP_BUCKETS = (*LATENCY_BUCKETS, 30.0, 60.0, 120.0)


class PollerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.syncs = Counter(
            "poller_syncs_total",
            "Syncs by kind (full, incremental, resync) and outcome.",
            ["kind", "outcome"],
            registry=registry,
        )
        self.sync_duration = Histogram(
            "poller_sync_duration_seconds",
            "Duration of syncs that completed, by kind.",
            ["kind"],
            buckets=SYNC_BUCKETS,
            registry=registry,
        )
        self.last_success = Gauge(
            "poller_last_success_timestamp_seconds",
            "Unix time at which the last successful sync of each kind started (alert on staleness).",
            ["kind"],
            registry=registry,
        )
        self.jobs_fetched = Counter(
            "poller_jobs_fetched_total", "Job records fetched from Trio, by sync kind.", ["kind"], registry=registry
        )
        self.events_published = Counter(
            "poller_events_published_total",
            "Events acknowledged by Kafka, by source.",
            ["source"],
            registry=registry,
        )
        self.markers_published = Counter(
            "poller_markers_published_total",
            "SnapshotCompleted markers acknowledged (one per partition).",
            registry=registry,
        )
        self.suspicious_snapshots = Counter(
            "poller_suspicious_snapshots_total",
            "Full listings much smaller than the previous snapshot.",
            registry=registry,
        )
        self.invalid_records = Counter(
            "poller_invalid_records_total",
            "Listing records or bodies that failed validation (sync failed).",
            registry=registry,
        )
        self.dead_letters = Counter(
            "poller_dead_letters_total", "Bad bodies kept in jobs.dlq for diagnosis.", registry=registry
        )
        self.http_requests = Counter(
            "poller_http_requests_total",
            "Trio API calls by endpoint and status ('error' = no response).",
            ["endpoint", "status"],
            registry=registry,
        )
        self.http_duration = Histogram(
            "poller_http_request_duration_seconds",
            "Trio API call duration by endpoint.",
            ["endpoint"],
            buckets=HTTP_BUCKETS,
            registry=registry,
        )
        self.http_retries = Counter(
            "poller_http_retries_total",
            "Trio API retries by endpoint and reason.",
            ["endpoint", "reason"],
            registry=registry,
        )
        self.cursor = Gauge(
            "poller_cursor_timestamp_seconds", "The incremental sync cursor (Unix time).", registry=registry
        )
        self.webhook_healthy = Gauge(
            "poller_webhook_registration_healthy",
            "1 when our Job Update webhook registration exists and is active, else 0.",
            registry=registry,
        )
        self.webhook_checks = Counter(
            "poller_webhook_checks_total", "Webhook registration checks by result.", ["result"], registry=registry
        )
        self.webhook_repairs = Counter(
            "poller_webhook_repairs_total",
            "Registration repairs sent (reactivate, create) by outcome.",
            ["action", "outcome"],
            registry=registry,
        )
        self.leader = Gauge("poller_leader", "1 while this instance is the elected, active poller.", registry=registry)
        self.hints = Counter(
            "poller_hints_total",
            "Confirm-mode hints by outcome (published, not_found, invalid, rejected, retried).",
            ["outcome"],
            registry=registry,
        )
