"""The operator's pure pieces: reading /metrics pages and comparing the view with Trio."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from services.operator.drift import compare_with_listing, compare_with_truth
from services.operator.promtext import by_label, histogram_quantile, parse_samples, total

pytestmark = pytest.mark.unit


def _page() -> str:
    registry = CollectorRegistry()
    requests = Counter("ingress_requests_total", "r", ["outcome"], registry=registry)
    requests.labels("accepted").inc(7)
    requests.labels("not_found").inc(2)
    latency = Histogram("x_seconds", "l", buckets=(0.1, 1.0, 10.0), registry=registry)
    for value in [0.05] * 50 + [0.5] * 40 + [5.0] * 10:
        latency.observe(value)
    return generate_latest(registry).decode()


def test_totals_and_labels_are_read_from_a_metrics_page() -> None:
    samples = parse_samples(_page())
    assert total(samples, "ingress_requests_total") == 9
    assert total(samples, "ingress_requests_total", outcome="accepted") == 7
    assert total(samples, "no_such_metric") is None
    assert by_label(samples, "ingress_requests_total", "outcome") == {"accepted": 7, "not_found": 2}


def test_histogram_quantiles_interpolate_within_buckets_like_prometheus() -> None:
    samples = parse_samples(_page())
    assert histogram_quantile(samples, "x_seconds", 0.5) == pytest.approx(0.1)
    assert histogram_quantile(samples, "x_seconds", 0.7) == pytest.approx(0.1 + 0.9 * 0.5)
    assert histogram_quantile(samples, "x_seconds", 0.99) == pytest.approx(1.0 + 9.0 * 0.9)
    assert histogram_quantile(samples, "missing", 0.5) is None


OPEN = {"Number": 1, "JobStatus": "Open", "Title": "RN", "NumberOfCurrentOpenPositions": 2}


def test_listing_drift_names_missing_extra_and_mismatched_fields() -> None:
    view = {
        1: OPEN,
        2: {"Number": 2, "JobStatus": "Open"},  # no longer listed: extra
        3: {"Number": 3, "JobStatus": "Closed"},  # listed again but closed in the view: missing
        5: {**OPEN, "Number": 5, "NumberOfCurrentOpenPositions": 1},
    }
    listing = {1: OPEN, 3: {"Number": 3, "JobStatus": "Open"}, 4: {"Number": 4, "JobStatus": "OnHold"},
               5: {**OPEN, "Number": 5}}
    report = compare_with_listing(view, listing)
    assert report.missing == [3, 4]
    assert report.extra == [2]
    assert report.mismatched == {5: ["NumberOfCurrentOpenPositions"]}
    assert not report.agrees
    assert compare_with_listing(listing, listing).agrees


def test_truth_drift_accepts_jobs_closed_before_they_were_ever_seen() -> None:
    truth = {1: OPEN, 2: {"Number": 2, "JobStatus": "Closed"}}
    assert compare_with_truth({1: OPEN}, truth).agrees
    report = compare_with_truth({}, truth)
    assert report.missing == [1]


def test_histogram_quantiles_can_be_taken_for_one_label_value() -> None:
    registry = CollectorRegistry()
    fresh = Histogram("f_seconds", "f", ["source"], buckets=(1.0, 10.0, 100.0), registry=registry)
    for _ in range(10):
        fresh.labels("webhook").observe(0.5)
        fresh.labels("poll_full").observe(50.0)
    samples = parse_samples(generate_latest(registry).decode())
    assert histogram_quantile(samples, "f_seconds", 0.5, source="webhook") == pytest.approx(0.5)
    assert histogram_quantile(samples, "f_seconds", 0.5, source="poll_full") == pytest.approx(55.0)
