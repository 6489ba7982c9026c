"""Judging our ``Job Update`` webhook registration from ``GET /Webhooks``, as pure functions.

The registration URL holds the ingress path secret, so it is compared here and never logged: log lines
name a registration by its ``Id`` and ``Name`` only.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

JOB_UPDATE = "Job Update"


class Health(StrEnum):
    HEALTHY = "healthy"  # exists, active, subscribed to Job Update
    INACTIVE = "inactive"  # exists but IsActive is false
    MISSING_EVENT = "missing_event"  # exists, active, but not subscribed to Job Update
    MISSING = "missing"  # no registration matches our URL / name
    UNCONFIGURED = "unconfigured"  # neither a URL nor a name to match by


@dataclass(frozen=True, slots=True)
class Assessment:
    health: Health
    registration: dict[str, Any] | None = None

    @property
    def healthy(self) -> bool:
        return self.health is Health.HEALTHY

    @property
    def registration_id(self) -> Any:
        return None if self.registration is None else self.registration.get("Id")


def _field(item: dict[str, Any], name: str) -> Any:
    """Trio uses PascalCase; accept any case, as JSON from other tools sometimes differs."""
    if name in item:
        return item[name]
    lowered = name.lower()
    for key, value in item.items():
        if isinstance(key, str) and key.lower() == lowered:
            return value
    return None


def _same_url(a: Any, b: str) -> bool:
    if not isinstance(a, str):
        return False
    return hmac.compare_digest(a.rstrip("/").encode(), b.rstrip("/").encode())


def _events(item: dict[str, Any]) -> list[str]:
    events = _field(item, "Events") or []
    names: list[str] = []
    for event in events if isinstance(events, list) else []:
        if isinstance(event, str):
            names.append(event)
        elif isinstance(event, dict) and isinstance(_field(event, "Name"), str):
            names.append(_field(event, "Name"))
    return names


def assess(webhooks: Any, *, url: str | None, name: str | None) -> Assessment:
    """Find our registration (by URL if configured, else by Name) and say whether it is healthy.

    Several matches: the best one counts (a healthy duplicate beats an inactive one).
    """
    if not url and not name:
        return Assessment(Health.UNCONFIGURED)
    items = [w for w in webhooks if isinstance(w, dict)] if isinstance(webhooks, list) else []
    if url:
        matches = [w for w in items if _same_url(_field(w, "Url"), url)]
    else:
        matches = [w for w in items if _field(w, "Name") == name]
    if not matches:
        return Assessment(Health.MISSING)
    ranked = sorted(matches, key=lambda w: (_field(w, "IsActive") is True, JOB_UPDATE in _events(w)), reverse=True)
    best = ranked[0]
    if _field(best, "IsActive") is not True:
        return Assessment(Health.INACTIVE, best)
    if JOB_UPDATE not in _events(best):
        return Assessment(Health.MISSING_EVENT, best)
    return Assessment(Health.HEALTHY, best)


def repair_request(assessment: Assessment, *, url: str | None, name: str | None) -> dict[str, Any] | None:
    """The ``POST /Webhooks`` body that makes the registration healthy, or None if nothing should be sent.

    Inactive or missing the event: the same registration (its ``Id``) re-sent active with Job Update added.
    Missing: a new registration, which needs our URL (a name alone cannot create one).
    """
    if assessment.health in (Health.HEALTHY, Health.UNCONFIGURED):
        return None
    if assessment.health is Health.MISSING:
        if not url:
            return None
        return {"Name": name or "jobsync", "Url": url, "Events": [JOB_UPDATE], "IsActive": True}
    current = assessment.registration or {}
    events = _events(current)
    if JOB_UPDATE not in events:
        events.append(JOB_UPDATE)
    return {
        "Id": _field(current, "Id"),
        "Name": _field(current, "Name") or name or "jobsync",
        "Url": _field(current, "Url") or url,
        "Events": events,
        "IsActive": True,
    }
