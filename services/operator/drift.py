"""Compare the projected view with a fresh full listing (or with a simulator's truth), as pure functions.

A full listing holds only Open and OnHold jobs, so:
- missing: listed by Trio, but absent from the view or not open there;
- extra: open in the view, but not listed by Trio (a closure the view has not caught);
- mismatched: present on both sides with different values, by field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from services.common.trio import LISTED_STATUSES

# Fields that differ in representation only (timestamps whose text may vary) are compared verbatim:
# the view keeps Trio's job losslessly, so any difference is a real drift.


@dataclass
class DriftReport:
    missing: list[int] = field(default_factory=list)
    extra: list[int] = field(default_factory=list)
    mismatched: dict[int, list[str]] = field(default_factory=dict)
    compared: int = 0

    @property
    def agrees(self) -> bool:
        return not (self.missing or self.extra or self.mismatched)

    def summary(self) -> str:
        return (
            f"compared {self.compared} jobs: {len(self.missing)} missing, {len(self.extra)} extra, "
            f"{len(self.mismatched)} mismatched"
        )


def diff_fields(left: Mapping[str, Any], right: Mapping[str, Any]) -> list[str]:
    """Names of the top-level fields whose values differ (a field absent on one side differs)."""
    return sorted(name for name in set(left) | set(right) if left.get(name, _ABSENT) != right.get(name, _ABSENT))


_ABSENT = object()


def compare_with_listing(
    view: Mapping[int, Mapping[str, Any]], listing: Mapping[int, Mapping[str, Any]]
) -> DriftReport:
    """``view``: Number -> the Trio job as the view holds it; ``listing``: Number -> job from GET /Job."""
    report = DriftReport()
    for number, job in listing.items():
        report.compared += 1
        held = view.get(number)
        if held is None or held.get("JobStatus") not in LISTED_STATUSES:
            report.missing.append(number)
            continue
        fields = diff_fields(held, job)
        if fields:
            report.mismatched[number] = fields
    for number, held in view.items():
        if number not in listing and held.get("JobStatus") in LISTED_STATUSES:
            report.extra.append(number)
    report.missing.sort()
    report.extra.sort()
    return report


def compare_with_truth(view: Mapping[int, Mapping[str, Any]], truth: Mapping[int, Mapping[str, Any]]) -> DriftReport:
    """Every job of the truth (closed ones included) against the view, field by field.

    A job the view holds as closed only by inference (Trio never said Closed in an observation) agrees
    with a truth of Closed in status; its other fields are compared as held.
    """
    report = DriftReport()
    for number, job in truth.items():
        report.compared += 1
        held = view.get(number)
        if held is None:
            # A job closed before it was ever observed never reaches the view: that is correct.
            if job.get("JobStatus") in LISTED_STATUSES:
                report.missing.append(number)
            continue
        fields = diff_fields(held, job)
        if fields:
            report.mismatched[number] = fields
    for number in view:
        if number not in truth:
            report.extra.append(number)
    report.missing.sort()
    report.extra.sort()
    return report
