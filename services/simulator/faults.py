"""Fault injection settings and the seeded decisions made from them (pure).

Each fault is a probability in 0..1, drawn from the fault RNG (seeded apart from the scenario RNG, so
turning faults on or off never changes the simulated jobs). Tests that need an exact fault on an exact
call use the schedules instead: ``next_api_faults`` is consumed one entry per API call, in order, and
``next_webhook_faults`` one entry per webhook delivery; ``"none"`` in a schedule means "no fault this time".
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from services.simulator.errors import FaultConfigError

# Faults of the Trio API, in the order their probabilities are drawn for a call.
API_FAULTS = ("timeout", "server_error", "rate_limit", "slow", "truncated_json", "malformed_json")
LISTING_FAULTS = ("partial_listing",)  # only a full listing (no modifiedDate) can be partial
WEBHOOK_FAULTS = ("deactivate_registration", "drop_webhook", "duplicate_webhook", "reorder_webhook", "late_webhook")
NO_FAULT = "none"

PROBABILITIES = API_FAULTS + LISTING_FAULTS + WEBHOOK_FAULTS
DURATIONS = ("retry_after_seconds", "slow_seconds", "timeout_seconds", "late_seconds")
SHARES = ("partial_listing_share",)
SCHEDULES = ("next_api_faults", "next_webhook_faults")


@dataclass
class FaultConfig:
    """What goes wrong, and how often. Mutable: tests and ``PUT /_sim/faults`` change it while running."""

    rate_limit: float = 0.0  # 429 with Retry-After
    retry_after_seconds: float = 1.0
    server_error: float = 0.0  # 500 or 503 (503 with Retry-After)
    slow: float = 0.0  # answer correctly, after slow_seconds
    slow_seconds: float = 2.0
    timeout: float = 0.0  # hang for timeout_seconds (longer than a sane client timeout), then 504
    timeout_seconds: float = 30.0
    truncated_json: float = 0.0  # 200 whose JSON body stops half way
    malformed_json: float = 0.0  # 200 whose body is not JSON at all
    partial_listing: float = 0.0  # a full listing that misses partial_listing_share of the listed jobs
    partial_listing_share: float = 0.1
    drop_webhook: float = 0.0  # the delivery never happens
    duplicate_webhook: float = 0.0  # delivered twice
    reorder_webhook: float = 0.0  # held back until the next delivery to the same URL has gone out
    late_webhook: float = 0.0  # delivered late_seconds later (or at the next flush)
    late_seconds: float = 5.0
    deactivate_registration: float = 0.0  # the registration turns itself inactive instead of delivering
    next_api_faults: list[str] = field(default_factory=list)
    next_webhook_faults: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        for name in PROBABILITIES + SHARES:
            _check_range(name, getattr(self, name), 0.0, 1.0)
        for name in DURATIONS:
            _check_range(name, getattr(self, name), 0.0, 24 * 3600.0)
        _check_schedule("next_api_faults", self.next_api_faults, API_FAULTS + LISTING_FAULTS)
        _check_schedule("next_webhook_faults", self.next_webhook_faults, WEBHOOK_FAULTS)

    @classmethod
    def parse(cls, text: str) -> FaultConfig:
        """Parse the CLI form ``"rate_limit=0.1,server_error=0.05,slow_seconds=3"`` (empty: no faults)."""
        values: dict[str, Any] = {}
        for item in (part.strip() for part in text.split(",")):
            if not item:
                continue
            name, sep, raw = item.partition("=")
            name = name.strip()
            if not sep:
                raise FaultConfigError(f"fault setting {item!r} needs a value: write {name}=<number>")
            _check_name(name, scalar_only=True)
            try:
                values[name] = float(raw)
            except ValueError:
                raise FaultConfigError(f"fault setting {name}: {raw.strip()!r} is not a number") from None
        return cls(**values)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FaultConfig:
        """Build from JSON (``PUT /_sim/faults``): settings not given take their defaults."""
        if not isinstance(data, Mapping):
            raise FaultConfigError(f"fault settings must be a JSON object, got {type(data).__name__}")
        values: dict[str, Any] = {}
        for name, value in data.items():
            _check_name(name, scalar_only=False)
            if name in SCHEDULES:
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise FaultConfigError(f"{name} must be a list of fault names, got {value!r}")
                values[name] = list(value)
            elif isinstance(value, bool) or not isinstance(value, int | float):
                raise FaultConfigError(f"fault setting {name} must be a number, got {value!r}")
            else:
                values[name] = float(value)
        return cls(**values)

    def update(self, data: Mapping[str, Any]) -> None:
        """Change the given settings only (``PATCH /_sim/faults``); all or nothing."""
        merged = FaultConfig.from_dict({**self.to_dict(), **data})
        for f in fields(self):
            setattr(self, f.name, getattr(merged, f.name))

    def to_dict(self) -> dict[str, Any]:
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), list) else v for f in fields(self)}


def _check_name(name: str, *, scalar_only: bool) -> None:
    known = PROBABILITIES + SHARES + DURATIONS + (() if scalar_only else SCHEDULES)
    if name not in known:
        raise FaultConfigError(f"unknown fault setting {name!r}; known: {', '.join(known)}")


def _check_range(name: str, value: object, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise FaultConfigError(f"fault setting {name} must be a number in {low:g}..{high:g}, got {value!r}")


def _check_schedule(name: str, schedule: Sequence[str], allowed: Sequence[str]) -> None:
    for entry in schedule:
        if entry != NO_FAULT and entry not in allowed:
            raise FaultConfigError(f"{name}: unknown fault {entry!r}; allowed: {', '.join((*allowed, NO_FAULT))}")


@dataclass(frozen=True, slots=True)
class WebhookFaults:
    """What happens to one delivery (one change to one registration)."""

    deactivate: bool = False
    drop: bool = False
    duplicate: bool = False
    reorder: bool = False
    late: bool = False


class FaultInjector:
    """Decides, from a FaultConfig and its own seeded RNG, which fault (if any) hits a call or delivery."""

    def __init__(self, config: FaultConfig, rng: random.Random) -> None:
        self.config = config
        self._rng = rng

    def api_fault(self, *, full_listing: bool) -> str | None:
        """The fault for one API call: the next scheduled one, else one drawn by probability, else None.

        A scheduled ``partial_listing`` is consumed by whatever call comes next; it only has an effect
        on a full listing.
        """
        config = self.config
        if config.next_api_faults:
            scheduled = config.next_api_faults.pop(0)
            return None if scheduled == NO_FAULT else scheduled
        for name in API_FAULTS:
            if self._hit(getattr(config, name)):
                return name
        if full_listing and self._hit(config.partial_listing):
            return "partial_listing"
        return None

    def webhook_faults(self) -> WebhookFaults:
        config = self.config
        if config.next_webhook_faults:
            scheduled = config.next_webhook_faults.pop(0)
            if scheduled == NO_FAULT:
                return WebhookFaults()
            return WebhookFaults(**{scheduled.removesuffix("_webhook").removesuffix("_registration"): True})
        if self._hit(config.deactivate_registration):
            return WebhookFaults(deactivate=True)
        if self._hit(config.drop_webhook):
            return WebhookFaults(drop=True)
        return WebhookFaults(
            duplicate=self._hit(config.duplicate_webhook),
            reorder=self._hit(config.reorder_webhook),
            late=self._hit(config.late_webhook),
        )

    def server_error_status(self) -> int:
        return 503 if self._rng.random() < 0.5 else 500

    def omitted(self, numbers: Sequence[int]) -> set[int]:
        """Which of the listed jobs a partial listing leaves out: ``partial_listing_share`` of them (≥ 1)."""
        if not numbers:
            return set()
        count = max(1, round(len(numbers) * self.config.partial_listing_share))
        return set(self._rng.sample(list(numbers), min(count, len(numbers))))

    def _hit(self, probability: float) -> bool:
        # Zero draws nothing, so a fault left off never shifts the RNG stream of the others.
        return probability > 0.0 and self._rng.random() < probability
