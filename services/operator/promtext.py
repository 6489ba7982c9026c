"""Read numbers out of the services' /metrics pages (Prometheus text format), as pure functions."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


def parse_samples(text: str) -> list[Sample]:
    samples = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.append(Sample(sample.name, dict(sample.labels), sample.value))
    return samples


def total(samples: Iterable[Sample], name: str, **labels: str) -> float | None:
    """Sum of the samples named ``name`` whose labels include ``labels``; None when there is none."""
    values = [s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
    return sum(values) if values else None


def by_label(samples: Iterable[Sample], name: str, label: str) -> dict[str, float]:
    found: dict[str, float] = {}
    for s in samples:
        if s.name == name and label in s.labels:
            found[s.labels[label]] = found.get(s.labels[label], 0.0) + s.value
    return found


def histogram_quantile(samples: Iterable[Sample], name: str, q: float, **labels: str) -> float | None:
    """Prometheus-style quantile estimate from a histogram's cumulative ``_bucket`` samples, summed over the
    series whose labels include ``labels``."""
    buckets: dict[float, float] = {}
    for s in samples:
        if s.name == f"{name}_bucket" and "le" in s.labels and all(s.labels.get(k) == v for k, v in labels.items()):
            le = math.inf if s.labels["le"] in ("+Inf", "inf") else float(s.labels["le"])
            buckets[le] = buckets.get(le, 0.0) + s.value
    if not buckets:
        return None
    bounds = sorted(buckets)
    count = buckets[bounds[-1]]
    if count == 0:
        return None
    rank = q * count
    previous_bound, previous_count = 0.0, 0.0
    for bound in bounds:
        if buckets[bound] >= rank:
            if math.isinf(bound):
                return previous_bound
            width = buckets[bound] - previous_count
            fraction = (rank - previous_count) / width if width else 0.0
            return previous_bound + (bound - previous_bound) * fraction
        previous_bound, previous_count = bound, buckets[bound]
    return previous_bound
