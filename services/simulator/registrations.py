"""Webhook registrations, as Trio's ``/Webhooks`` API manages them (pure).

Documented fields: ``Name``, ``Url``, ``Events``, ``IsActive``; a POST without ``Id`` creates, with ``Id``
updates. The event names list is the simulator's: Trio documents ``Job Update`` and mentions
``Submission Update``; only ``Job Update`` is ever delivered here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from services.simulator.errors import InvalidRequestError, UnknownRegistrationError

JOB_UPDATE = "Job Update"
EVENTS = (JOB_UPDATE, "Submission Update")


@dataclass
class Registration:
    id: int
    name: str
    url: str
    events: list[str]
    is_active: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "Id": self.id,
            "Name": self.name,
            "Url": self.url,
            "Events": list(self.events),
            "IsActive": self.is_active,
        }


class Registrations:
    def __init__(self) -> None:
        self._items: dict[int, Registration] = {}
        self._next_id = 1

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def get(self, registration_id: int) -> Registration:
        try:
            return self._items[registration_id]
        except KeyError:
            raise UnknownRegistrationError(registration_id) from None

    def create(self, *, name: str, url: str, events: list[str], active: bool) -> Registration:
        _check_url(url)
        _check_events(events)
        registration = Registration(self._next_id, name, url, list(events), active)
        self._items[registration.id] = registration
        self._next_id += 1
        return registration

    def save(self, body: Any) -> Registration:
        """Create or update from a ``POST /Webhooks`` body; raises InvalidRequestError naming the field."""
        if not isinstance(body, dict):
            raise InvalidRequestError("$", "the body must be a JSON object")
        registration_id = body.get("Id")
        if registration_id is not None:
            if isinstance(registration_id, bool) or not isinstance(registration_id, int):
                raise InvalidRequestError("Id", f"must be an integer, got {registration_id!r}")
            existing = self.get(registration_id)
            values = {**existing.to_json(), **body}
        else:
            values = {"Name": "", "Events": [JOB_UPDATE], "IsActive": True, **body}
            if "Url" not in body:
                raise InvalidRequestError("Url", "is required")
        name, url, events, active = values["Name"], values["Url"], values["Events"], values["IsActive"]
        if not isinstance(name, str):
            raise InvalidRequestError("Name", f"must be a string, got {name!r}")
        if not isinstance(active, bool):
            raise InvalidRequestError("IsActive", f"must be true or false, got {active!r}")
        if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
            raise InvalidRequestError("Events", f"must be a list of event names, got {events!r}")
        if registration_id is None:
            return self.create(name=name, url=url, events=events, active=active)
        _check_url(url)
        _check_events(events)
        existing.name, existing.url, existing.events, existing.is_active = name, url, list(events), active
        return existing

    def subscribed(self, event: str) -> list[Registration]:
        """The active registrations that receive ``event``."""
        return [r for r in self._items.values() if r.is_active and event in r.events]


def _check_url(url: object) -> None:
    if not isinstance(url, str):
        raise InvalidRequestError("Url", f"must be a string, got {url!r}")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidRequestError("Url", f"must be an absolute http(s) URL, got {url!r}")


def _check_events(events: list[str]) -> None:
    unknown = [e for e in events if e not in EVENTS]
    if unknown:
        raise InvalidRequestError("Events", f"unknown event(s) {unknown}; known: {list(EVENTS)}")
