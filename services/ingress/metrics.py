"""The ingress's Prometheus metrics, registered once on an injected CollectorRegistry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.common.metrics import LATENCY_BUCKETS
from services.ingress.validation import Outcome


class IngressMetrics:
    """Requests by outcome, publish latency, in-flight requests and dead letters.

    Labels are closed sets (outcome names, destination topics, rejection kinds) so cardinality stays low.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "ingress_requests_total",
            "Webhook requests answered, by outcome (accepted, hinted, or why it was refused).",
            ["outcome"],
            registry=registry,
        )
        self.publish_latency = Histogram(
            "ingress_publish_latency_seconds",
            "Time from handing a record to the producer until the broker acknowledged it (acks=all).",
            ["destination"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.publish_failures = Counter(
            "ingress_publish_failures_total",
            "Records Kafka did not acknowledge (the request was answered 503), by destination and kind.",
            ["destination", "kind"],
            registry=registry,
        )
        self.in_flight = Gauge(
            "ingress_in_flight_requests",
            "Webhook requests being handled right now (capped by JOBSYNC_INGRESS_MAX_IN_FLIGHT).",
            registry=registry,
        )
        self.dead_letters = Counter(
            "ingress_dlq_total",
            "Authentic payloads that failed validation and were written to jobs.dlq, by reason.",
            ["reason"],
            registry=registry,
        )
        self.body_bytes = Histogram(
            "ingress_request_body_bytes",
            "Size of webhook bodies read (an oversized body counts as the bytes read before refusing it).",
            buckets=(256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304),
            registry=registry,
        )
        for outcome in Outcome:  # every label exists from the start, so rate() sees the first increment
            self.requests.labels(outcome=outcome.value)
