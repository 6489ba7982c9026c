"""Pure parts of webhook health, confirm-mode hints and listing validation."""

from __future__ import annotations

import pytest

from services.common.errors import InvalidJobError
from services.common.events import Source
from services.poller.confirm import hint_number
from services.poller.listing import to_events
from services.poller.registration import Health, assess, repair_request

pytestmark = pytest.mark.unit

URL = "https://agency.example/trio-webhooks/jobs/long-secret"


def reg(id_: int, *, url: str = URL, name: str = "jobsync", active: bool = True, events=("Job Update",)) -> dict:
    return {"Id": id_, "Name": name, "Url": url, "Events": list(events), "IsActive": active}


def test_an_active_job_update_registration_at_our_url_is_healthy() -> None:
    found = assess([reg(1, url="https://other/x"), reg(2)], url=URL, name=None)
    assert found.health is Health.HEALTHY and found.registration_id == 2


def test_matching_by_url_ignores_a_trailing_slash() -> None:
    assert assess([reg(3, url=URL + "/")], url=URL, name=None).healthy


def test_an_inactive_registration_is_reported_and_reactivated_with_its_id() -> None:
    found = assess([reg(4, active=False)], url=URL, name=None)
    assert found.health is Health.INACTIVE
    assert repair_request(found, url=URL, name=None) == {
        "Id": 4,
        "Name": "jobsync",
        "Url": URL,
        "Events": ["Job Update"],
        "IsActive": True,
    }


def test_a_registration_without_job_update_gets_it_added_keeping_its_other_events() -> None:
    found = assess([reg(5, events=["Submission Update"])], url=URL, name=None)
    assert found.health is Health.MISSING_EVENT
    body = repair_request(found, url=URL, name=None)
    assert body is not None and body["Events"] == ["Submission Update", "Job Update"] and body["Id"] == 5


def test_a_missing_registration_is_created_only_when_we_know_our_url() -> None:
    assert assess([], url=URL, name="jobsync").health is Health.MISSING
    assert repair_request(assess([], url=URL, name="jobsync"), url=URL, name="jobsync") == {
        "Name": "jobsync",
        "Url": URL,
        "Events": ["Job Update"],
        "IsActive": True,
    }
    by_name = assess([], url=None, name="jobsync")
    assert by_name.health is Health.MISSING and repair_request(by_name, url=None, name="jobsync") is None


def test_matching_by_name_when_no_url_is_configured_and_a_healthy_duplicate_wins() -> None:
    found = assess([reg(6, active=False), reg(7)], url=None, name="jobsync")
    assert found.healthy and found.registration_id == 7


def test_without_url_or_name_nothing_can_be_judged() -> None:
    assert assess([reg(1)], url=None, name=None).health is Health.UNCONFIGURED


@pytest.mark.parametrize(
    ("key", "value", "number"),
    [(b"42", b"{}", 42), (None, b'{"Number": 43}', 43), (b"garbage", b'{"Number": 44, "x": 1}', 44)],
)
def test_a_hint_names_its_job_by_key_or_else_by_body(key: bytes | None, value: bytes, number: int) -> None:
    assert hint_number(key, value) == number


@pytest.mark.parametrize(("key", "value"), [(None, b"not json"), (None, b'{"Number": "7"}'), (b"", None)])
def test_a_hint_naming_no_job_is_invalid(key: bytes | None, value: bytes | None) -> None:
    with pytest.raises(InvalidJobError):
        hint_number(key, value)


def test_listing_validation_keeps_good_records_and_names_bad_ones_by_index_and_field() -> None:
    records = [
        {"Number": 1, "JobStatus": "Open", "Extra": {"kept": True}},
        {"JobStatus": "Open"},
        "not an object",
        {"Number": 4, "JobStatus": "OnHold"},
    ]
    validated = to_events(records, Source.POLL_FULL, sync_id="s", snapshot_id="snap")
    assert [e.job_number for e in validated.events] == [1, 4]
    assert all(e.snapshot_id == "snap" and e.sync_id == "s" for e in validated.events)
    assert validated.events[0].job["Extra"] == {"kept": True}
    assert [(b.index, b.field) for b in validated.bad] == [(1, "Number"), (2, "$")]
    assert validated.bad[0].reason.startswith("record #1 of the listing: Number:")
