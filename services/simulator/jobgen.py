"""Realistic, seeded job content: the known Trio fields plus extra ones Trio may send (pure).

The extra fields (facility, shift as a nested object, certifications as an array, rates, profession,
specialty) are the simulator's invention: Trio's full field list is not public. They exist so that
"unknown fields survive" is exercised end to end.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from services.common.trio import CLOSED, ON_HOLD, OPEN

FACILITIES = (
    ("Mercy General Hospital", "Sacramento", "CA"),
    ("St. Luke's Medical Center", "Boise", "ID"),
    ("Baptist Health", "Little Rock", "AR"),
    ("Lakeside Regional", "Orlando", "FL"),
    ("Northwestern Memorial", "Chicago", "IL"),
    ("Riverside Community Hospital", "Riverside", "CA"),
    ("Summit Health", "Bend", "OR"),
    ("Valley Children's", "Madera", "CA"),
    ("Hôpital Sainte-Anne", "Burlington", "VT"),
    ("Good Samaritan", "Phoenix", "AZ"),
)
ROLES = (
    ("RN", "ICU", "Intensive Care Unit"),
    ("RN", "Med/Surg", "Medical Surgical 4 West"),
    ("RN", "ER", "Emergency Department"),
    ("RN", "L&D", "Labor and Delivery"),
    ("RN", "OR", "Operating Room"),
    ("RN", "Tele", "Telemetry"),
    ("LPN", "LTC", "Long Term Care"),
    ("Allied", "Radiology Tech", "Imaging"),
    ("Allied", "Respiratory Therapist", "Respiratory Care"),
    ("Allied", "Surgical Tech", "Surgical Services"),
)
SHIFTS = (
    {"Name": "Days", "StartTime": "07:00", "EndTime": "19:30", "HoursPerWeek": 36},
    {"Name": "Nights", "StartTime": "19:00", "EndTime": "07:30", "HoursPerWeek": 36},
    {"Name": "Evenings", "StartTime": "15:00", "EndTime": "23:30", "HoursPerWeek": 40},
    {"Name": "Days", "StartTime": "08:00", "EndTime": "16:30", "HoursPerWeek": 40},
)
CERTIFICATIONS = ("BLS", "ACLS", "PALS", "NRP", "TNCC", "CCRN", "ARRT")
PEOPLE = (
    ("Dana Whitfield", "dana.whitfield"),
    ("Marcus Oyelaran", "marcus.oyelaran"),
    ("Priya Raman", "priya.raman"),
    ("José Alvarez", "jose.alvarez"),
    ("Kim Nguyen", "kim.nguyen"),
    ("Sarah O'Connell", "sarah.oconnell"),
)
CLOSE_REASONS = ("Filled", "Cancelled", "Filled by another agency", "Budget", "Expired")
HOLD_REASONS = ("Pending Budget Approval", "Credentialing Review", "Facility Request")
T = TypeVar("T")
OPEN_WEIGHT = 0.85  # share of seeded jobs that are Open (the rest OnHold)


# The helpers below draw from rng.random() directly: randint/choice/sample cost several calls each, and
# seeding 100,000 jobs is dominated by them.


def _phone(rng: random.Random) -> str:
    digits = int(rng.random() * 10**10)
    return f"({201 + digits % 789}) {200 + digits // 1000 % 800}-{digits // 10**6 % 10000:04d}"


def _pick(rng: random.Random, options: Sequence[T]) -> T:
    return options[int(rng.random() * len(options))]


def _between(rng: random.Random, low: int, high: int) -> int:
    return low + int(rng.random() * (high - low + 1))


def _certifications(rng: random.Random) -> list[str]:
    count = _between(rng, 1, 3)
    start = int(rng.random() * len(CERTIFICATIONS))
    return sorted({CERTIFICATIONS[(start + i * 3) % len(CERTIFICATIONS)] for i in range(count)})


def new_job(rng: random.Random, number: int, now: datetime, *, status: str = OPEN) -> dict[str, Any]:
    """A new job's fields; ModifiedDateUtc is left for the job book to stamp."""
    facility, city, state = _pick(rng, FACILITIES)
    profession, specialty, unit = _pick(rng, ROLES)
    _manager, manager_mail = _pick(rng, PEOPLE)
    coordinator, coordinator_mail = _pick(rng, PEOPLE)
    start = (now + timedelta(days=_between(rng, 7, 60))).date()
    bill = round(68.0 + rng.random() * 77.0, 2)
    return {
        "Number": number,
        "Title": f"{profession} {specialty} - {city}, {state}",
        "JobStatus": status,
        "JobStatusReason": _pick(rng, HOLD_REASONS) if status == ON_HOLD else None,
        "StartDate": f"{start.isoformat()}T00:00:00",
        "ModifiedDateUtc": None,  # stamped by the job book; here so the field keeps its place
        "NumberOfCurrentOpenPositions": _between(rng, 1, 4),
        "UnitDescription": unit,
        "RelationshipManagerPhone": _phone(rng),
        "RelationshipManagerEmail": f"{manager_mail}@facility.example",
        "PlacementCoordinator": coordinator,
        "PlacementCoordinatorPhone": _phone(rng),
        "PlacementCoordinatorEmail": f"{coordinator_mail}@facility.example",
        "FacilityName": facility,
        "FacilityCity": city,
        "FacilityState": state,
        "Profession": profession,
        "Specialty": specialty,
        "Shift": dict(_pick(rng, SHIFTS)),
        "DurationWeeks": _pick(rng, (8, 13, 13, 13, 26)),
        "BillRate": bill,
        "PayRate": round(bill * (0.62 + rng.random() * 0.13), 2),
        "RequiredCertifications": _certifications(rng),
    }


def seeded_status(rng: random.Random) -> str:
    return OPEN if rng.random() < OPEN_WEIGHT else ON_HOLD


def random_update(rng: random.Random, job: dict[str, Any]) -> dict[str, Any]:
    """An ordinary edit a facility makes to a job (never its status, Number or positions)."""
    kind = rng.randrange(5)
    if kind == 0:
        bill = round(job.get("BillRate", 90.0) * rng.uniform(0.95, 1.1), 2)
        return {"BillRate": bill, "PayRate": round(bill * rng.uniform(0.62, 0.75), 2)}
    if kind == 1:
        return {"Shift": dict(rng.choice(SHIFTS))}
    if kind == 2:
        coordinator, mail = rng.choice(PEOPLE)
        return {
            "PlacementCoordinator": coordinator,
            "PlacementCoordinatorEmail": f"{mail}@facility.example",
            "PlacementCoordinatorPhone": _phone(rng),
        }
    if kind == 3:
        start = datetime.fromisoformat(job.get("StartDate", "2025-01-06T00:00:00"))
        return {"StartDate": (start + timedelta(days=rng.choice((-7, 7, 14)))).isoformat()}
    return {"RequiredCertifications": sorted(rng.sample(CERTIFICATIONS, rng.randint(1, 3)))}


def close_reason(rng: random.Random) -> str:
    return rng.choice(CLOSE_REASONS)


__all__ = ["CLOSED", "close_reason", "new_job", "random_update", "seeded_status"]
