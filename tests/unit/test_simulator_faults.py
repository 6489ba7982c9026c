"""Fault settings: the CLI string, JSON, validation, schedules, and the seeded draws made from them."""

from __future__ import annotations

import random

import pytest

from services.simulator.errors import FaultConfigError
from services.simulator.faults import API_FAULTS, FaultConfig, FaultInjector, WebhookFaults

pytestmark = pytest.mark.unit


def test_the_cli_string_sets_probabilities_and_durations() -> None:
    config = FaultConfig.parse("rate_limit=0.1, server_error=0.05,slow=1,slow_seconds=3,partial_listing_share=0.5")
    assert (config.rate_limit, config.server_error, config.slow, config.slow_seconds) == (0.1, 0.05, 1.0, 3.0)
    assert config.partial_listing_share == 0.5
    assert config.timeout == 0.0


def test_an_empty_string_means_no_faults() -> None:
    assert FaultConfig.parse("") == FaultConfig()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("bogus=0.1", "unknown fault setting 'bogus'"),
        ("rate_limit", "needs a value"),
        ("rate_limit=often", "'often' is not a number"),
        ("rate_limit=1.5", r"rate_limit must be a number in 0\.\.1"),
        ("slow_seconds=-1", "slow_seconds must be a number"),
        ("next_api_faults=1", "unknown fault setting 'next_api_faults'"),
    ],
)
def test_a_bad_cli_string_is_refused_naming_the_setting(text: str, message: str) -> None:
    with pytest.raises(FaultConfigError, match=message):
        FaultConfig.parse(text)


def test_json_settings_round_trip_including_schedules() -> None:
    config = FaultConfig(drop_webhook=0.5, next_api_faults=["rate_limit", "none"], next_webhook_faults=["late_webhook"])
    assert FaultConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"next_api_faults": ["drop_webhook"]}, "next_api_faults: unknown fault 'drop_webhook'"),
        ({"next_webhook_faults": ["rate_limit"]}, "next_webhook_faults: unknown fault 'rate_limit'"),
        ({"next_api_faults": "rate_limit"}, "must be a list"),
        ({"rate_limit": True}, "must be a number"),
        ({"rate_limit": "0.1"}, "must be a number"),
        ({"nope": 1}, "unknown fault setting 'nope'"),
    ],
)
def test_bad_json_settings_are_refused_naming_the_setting(data: dict, message: str) -> None:
    with pytest.raises(FaultConfigError, match=message):
        FaultConfig.from_dict(data)


def test_update_changes_only_the_given_settings_and_all_or_nothing() -> None:
    config = FaultConfig(rate_limit=0.2)
    config.update({"slow": 0.5})
    assert (config.rate_limit, config.slow) == (0.2, 0.5)
    with pytest.raises(FaultConfigError):
        config.update({"timeout": 0.5, "slow": 7})
    assert (config.timeout, config.slow) == (0.0, 0.5)


def test_scheduled_api_faults_are_consumed_one_per_call_in_order() -> None:
    injector = FaultInjector(FaultConfig(next_api_faults=["rate_limit", "none", "server_error"]), random.Random(1))
    assert [injector.api_fault(full_listing=False) for _ in range(4)] == ["rate_limit", None, "server_error", None]


@pytest.mark.parametrize("name", API_FAULTS)
def test_probability_one_always_and_zero_never_injects(name: str) -> None:
    always = FaultInjector(FaultConfig(**{name: 1.0}), random.Random(1))
    never = FaultInjector(FaultConfig(), random.Random(1))
    assert {always.api_fault(full_listing=False) for _ in range(20)} == {name}
    assert {never.api_fault(full_listing=True) for _ in range(20)} == {None}


def test_a_partial_listing_is_only_drawn_for_a_full_listing() -> None:
    injector = FaultInjector(FaultConfig(partial_listing=1.0), random.Random(1))
    assert injector.api_fault(full_listing=False) is None
    assert injector.api_fault(full_listing=True) == "partial_listing"


def test_draws_are_reproducible_from_the_rng_seed() -> None:
    def draws(seed: int) -> list[str | None]:
        injector = FaultInjector(FaultConfig(rate_limit=0.3, server_error=0.3), random.Random(seed))
        return [injector.api_fault(full_listing=True) for _ in range(50)]

    assert draws(4) == draws(4)
    assert {"rate_limit", "server_error", None} == set(draws(4))


def test_scheduled_webhook_faults_map_to_what_happens_to_a_delivery() -> None:
    schedule = [
        "drop_webhook",
        "duplicate_webhook",
        "reorder_webhook",
        "late_webhook",
        "deactivate_registration",
        "none",
    ]
    injector = FaultInjector(FaultConfig(next_webhook_faults=list(schedule)), random.Random(1))
    assert [injector.webhook_faults() for _ in schedule] == [
        WebhookFaults(drop=True),
        WebhookFaults(duplicate=True),
        WebhookFaults(reorder=True),
        WebhookFaults(late=True),
        WebhookFaults(deactivate=True),
        WebhookFaults(),
    ]


def test_a_partial_listing_omits_the_configured_share_of_the_listed_jobs() -> None:
    injector = FaultInjector(FaultConfig(partial_listing_share=0.25), random.Random(1))
    numbers = list(range(100, 140))
    omitted = injector.omitted(numbers)
    assert len(omitted) == 10 and omitted <= set(numbers)
    assert len(injector.omitted([1])) == 1  # never an empty "partial" listing of a non-empty book
    assert injector.omitted([]) == set()
