"""The simulated jobs: Trio's fields, version stamps, the positions trap, truth as copies (Python API)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest

from services.common.trio import parse_trio_datetime
from services.simulator import Simulator
from services.simulator.errors import InvalidChangeError, UnknownJobError
from services.simulator.jobs import format_modified
from tests.simulator_support import FakeClock

pytestmark = pytest.mark.unit

STAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
KNOWN_FIELDS = {
    "Number",
    "Title",
    "JobStatus",
    "JobStatusReason",
    "StartDate",
    "ModifiedDateUtc",
    "NumberOfCurrentOpenPositions",
    "UnitDescription",
    "RelationshipManagerPhone",
    "RelationshipManagerEmail",
    "PlacementCoordinator",
    "PlacementCoordinatorPhone",
    "PlacementCoordinatorEmail",
}


def _stamp(job: dict) -> datetime:
    return parse_trio_datetime(job["ModifiedDateUtc"])


def test_seeded_jobs_carry_every_known_field_and_extra_nested_ones() -> None:
    sim = Simulator(seed=3, jobs=20)
    truth = sim.truth()
    assert len(truth) == 20
    for number, job in truth.items():
        assert job["Number"] == number
        assert KNOWN_FIELDS <= job.keys()
        assert job["JobStatus"] in ("Open", "OnHold")
        assert isinstance(job["Shift"], dict) and "Name" in job["Shift"]
        assert isinstance(job["RequiredCertifications"], list)
        assert {"FacilityName", "BillRate", "PayRate", "Profession", "Specialty"} <= job.keys()
        assert STAMP.match(job["ModifiedDateUtc"]), job["ModifiedDateUtc"]


def test_stamp_format_is_utc_with_milliseconds_and_z() -> None:
    assert format_modified(datetime(2024, 9, 1, 12, 34, 56, 123999, tzinfo=UTC)) == "2024-09-01T12:34:56.123Z"


def test_each_modification_stamps_strictly_later_even_when_the_clock_stands_still() -> None:
    clock = FakeClock()
    sim = Simulator(seed=1, jobs=1, clock=clock)
    number = next(iter(sim.truth()))
    stamps = [_stamp(sim.update_job(number, Title=f"v{i}")) for i in range(5)]
    assert stamps[0] == clock.now
    assert [later - earlier for earlier, later in pairwise(stamps)] == [timedelta(milliseconds=1)] * 4


def test_a_clock_that_goes_back_never_makes_a_stamp_go_back() -> None:
    clock = FakeClock()
    sim = Simulator(seed=1, jobs=1, clock=clock)
    number = next(iter(sim.truth()))
    first = _stamp(sim.update_job(number, Title="a"))
    clock.advance(hours=-1)
    assert _stamp(sim.update_job(number, Title="b")) > first


def test_changing_open_positions_keeps_the_stamp_and_changes_the_served_job() -> None:
    sim = Simulator(seed=1, jobs=1, clock=FakeClock())
    number, before = next(iter(sim.truth().items()))
    after = sim.set_positions(number, before["NumberOfCurrentOpenPositions"] + 3)
    assert after["ModifiedDateUtc"] == before["ModifiedDateUtc"]
    assert sim.job(number)["NumberOfCurrentOpenPositions"] == before["NumberOfCurrentOpenPositions"] + 3
    assert sim.listing()[0]["NumberOfCurrentOpenPositions"] == before["NumberOfCurrentOpenPositions"] + 3


def test_changing_open_positions_queues_no_webhook_but_an_update_does() -> None:
    sim = Simulator(seed=1, jobs=1)
    sim.register_webhook("http://127.0.0.1:9/hook")
    number = next(iter(sim.truth()))
    sim.set_positions(number, 0)
    assert sim.pending_webhooks == 0
    sim.update_job(number, Title="changed")
    assert sim.pending_webhooks == 1


def test_hold_close_and_reopen_move_the_status_and_set_the_reason() -> None:
    sim = Simulator(seed=1, jobs=0)
    number = sim.create_job(JobStatus="Open")["Number"]
    assert sim.hold(number, "Facility Request")["JobStatus"] == "OnHold"
    closed = sim.close(number, reason="Cancelled")
    assert (closed["JobStatus"], closed["JobStatusReason"]) == ("Closed", "Cancelled")
    reopened = sim.reopen(number)
    assert (reopened["JobStatus"], reopened["JobStatusReason"]) == ("Open", None)


@pytest.mark.parametrize(
    ("action", "status"), [("hold", "OnHold"), ("close", "Closed"), ("reopen", "Open"), ("hold", "Closed")]
)
def test_a_transition_from_the_wrong_status_is_refused_naming_both(action: str, status: str) -> None:
    sim = Simulator(seed=1, jobs=0)
    number = sim.create_job(JobStatus=status)["Number"]
    with pytest.raises(InvalidChangeError, match=rf"cannot {action} job {number}: it is {status}"):
        getattr(sim, action)(number)


@pytest.mark.parametrize("field", ["Number", "ModifiedDateUtc"])
def test_the_simulator_owns_number_and_modified_date(field: str) -> None:
    sim = Simulator(seed=1, jobs=1)
    number = next(iter(sim.truth()))
    with pytest.raises(InvalidChangeError, match=field):
        sim.update_job(number, **{field: "x"})


def test_unknown_numbers_are_reported_by_number() -> None:
    sim = Simulator(seed=1, jobs=1)
    with pytest.raises(UnknownJobError, match="no job with Number 42"):
        sim.update_job(42, Title="x")
    with pytest.raises(UnknownJobError):
        sim.set_positions(42, 1)


def test_creating_a_job_with_a_taken_number_is_refused() -> None:
    sim = Simulator(seed=1, jobs=1)
    number = next(iter(sim.truth()))
    with pytest.raises(InvalidChangeError, match=f"Number {number} already exists"):
        sim.create_job(Number=number)


def test_creating_a_job_with_a_stamp_is_refused() -> None:
    with pytest.raises(InvalidChangeError, match="ModifiedDateUtc"):
        Simulator().create_job(ModifiedDateUtc="2024-09-01T00:00:00.000Z")


def test_created_jobs_keep_unknown_fields_given_by_the_caller() -> None:
    sim = Simulator(seed=1, jobs=0)
    job = sim.create_job(Title="Night RN", CustomField={"deep": [1, 2, {"x": None}]})
    assert sim.job(job["Number"])["CustomField"] == {"deep": [1, 2, {"x": None}]}
    assert sim.job(job["Number"])["Title"] == "Night RN"


def test_truth_includes_closed_jobs_that_the_listing_leaves_out() -> None:
    sim = Simulator(seed=1, jobs=3)
    closed = next(iter(sim.truth()))
    sim.close(closed)
    assert sim.truth()[closed]["JobStatus"] == "Closed"
    assert closed not in {job["Number"] for job in sim.listing()}
    assert len(sim.listing()) == 2


def test_truth_and_returned_jobs_are_copies_the_caller_cannot_corrupt() -> None:
    sim = Simulator(seed=1, jobs=1)
    number = next(iter(sim.truth()))
    sim.truth()[number]["Shift"]["Name"] = "tampered"
    sim.update_job(number, Title="x")["Title"] = "tampered"
    assert sim.job(number)["Shift"]["Name"] != "tampered"
    assert sim.job(number)["Title"] == "x"


def test_invalid_statuses_and_positions_are_refused() -> None:
    sim = Simulator(seed=1, jobs=1)
    number = next(iter(sim.truth()))
    with pytest.raises(InvalidChangeError, match="JobStatus"):
        sim.update_job(number, JobStatus="Deleted")
    with pytest.raises(InvalidChangeError, match="NumberOfCurrentOpenPositions"):
        sim.set_positions(number, -1)
