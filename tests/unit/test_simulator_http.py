"""The simulated Trio API over HTTP on loopback: auth, listing rules, the positions trap, faults, controls."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiohttp
import pytest
import pytest_asyncio

from services.simulator import FaultConfig, Simulator
from tests.simulator_support import FakeClock, RunningSimulator, simulator, start_simulator

pytestmark = pytest.mark.unit
__all__ = ["simulator"]  # the fixture, imported for pytest


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def _get(http: aiohttp.ClientSession, running: RunningSimulator, path: str, **kw: object) -> tuple[int, object]:
    async with http.get(running.base_url + path, headers=running.headers, **kw) as response:  # type: ignore[arg-type]
        return response.status, await response.json()


# ------------------------------------------------------------------ authentication

API_PATHS = ["/Job", "/Job/200001", "/Webhooks", "/Webhooks/Events"]


@pytest.mark.parametrize("path", API_PATHS)
@pytest.mark.parametrize("headers", [{}, {"X-API-KEY": "wrong"}, {"X-API-KEY": ""}])
async def test_every_api_call_without_the_right_key_is_refused(
    simulator: RunningSimulator, http: aiohttp.ClientSession, path: str, headers: dict
) -> None:
    async with http.get(simulator.base_url + path, headers=headers) as response:
        assert response.status == 401
        assert "Message" in await response.json()


async def test_the_key_header_name_is_case_insensitive(
    simulator: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    async with http.get(simulator.base_url + "/Job", headers={"x-api-key": simulator.api_key}) as response:
        assert response.status == 200


@pytest.mark.parametrize(("method", "path"), [("GET", "/_sim/truth"), ("POST", "/_sim/step"), ("GET", "/_sim/faults")])
async def test_the_simulation_controls_need_the_key_too(
    simulator: RunningSimulator, http: aiohttp.ClientSession, method: str, path: str
) -> None:
    async with http.request(method, simulator.url + path) as response:
        assert response.status == 401


async def test_an_unknown_tenant_is_not_found(simulator: RunningSimulator, http: aiohttp.ClientSession) -> None:
    async with http.get(simulator.url + "/other/api/v3/Job", headers=simulator.headers) as response:
        assert response.status == 404


async def test_ops_endpoints_need_no_key(simulator: RunningSimulator, http: aiohttp.ClientSession) -> None:
    await _get(http, simulator, "/Job")
    async with http.get(simulator.url + "/readyz") as response:
        assert (response.status, (await response.json())["jobs"]) == (200, 50)
    async with http.get(simulator.url + "/metrics") as response:
        text = await response.text()
    assert 'simulator_api_requests_total{route="jobs",status="200"} 1.0' in text
    assert 'simulator_jobs{status="Open"}' in text


# ------------------------------------------------------------------ jobs


async def test_the_listing_is_a_bare_array_of_open_and_on_hold_jobs(
    simulator: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    sim = simulator.sim
    closed = sim.close(200003)["Number"]
    status, body = await _get(http, simulator, "/Job")
    assert status == 200 and isinstance(body, list)
    assert {job["Number"] for job in body} == {n for n, job in sim.truth().items() if n != closed}
    assert {job["JobStatus"] for job in body} <= {"Open", "OnHold"}
    assert body == sim.listing()


async def test_one_job_is_served_whatever_its_status(simulator: RunningSimulator, http: aiohttp.ClientSession) -> None:
    simulator.sim.close(200003, reason="Cancelled")
    status, job = await _get(http, simulator, "/Job/200003")
    assert status == 200
    assert job == simulator.sim.truth()[200003]
    assert (job["JobStatus"], job["JobStatusReason"]) == ("Closed", "Cancelled")


async def test_an_unknown_job_is_not_found_with_a_json_error(
    simulator: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    status, body = await _get(http, simulator, "/Job/999")
    assert status == 404
    assert "999" in body["Message"]


@pytest_asyncio.fixture
async def stamped() -> AsyncIterator[RunningSimulator]:
    """Three Open jobs stamped 1 ms apart around 2024-09-01T12:00:00.000Z, and nothing else recent."""
    clock = FakeClock(datetime(2024, 9, 1, 11, 59, 59, 999000, tzinfo=UTC))
    sim = Simulator(seed=1, jobs=0, clock=clock)
    for _ in range(3):
        sim.create_job()
        clock.advance(milliseconds=1)
    async with start_simulator(sim) as running:
        yield running


@pytest.mark.parametrize(
    ("since", "expected"),
    [
        ("2024-09-01T11:59:59.998Z", [200001, 200002, 200003]),
        ("2024-09-01T11:59:59.999Z", [200002, 200003]),  # equal is not after
        ("2024-09-01T11:59:59.9995Z", [200002, 200003]),
        ("2024-09-01T12:00:00Z", [200003]),
        ("2024-09-01T12:00:00.001Z", []),
        ("2024-09-01T14:00:00.000%2B02:00", [200003]),  # offsets are honoured (percent-encoded +)
        ("2024-09-01", [200001, 200002, 200003]),  # a plain date is midnight UTC
        ("2024-09-02", []),
    ],
)
async def test_modified_date_returns_jobs_modified_strictly_after_it(
    stamped: RunningSimulator, http: aiohttp.ClientSession, since: str, expected: list[int]
) -> None:
    url = f"{stamped.base_url}/Job?modifiedDate={since}"
    async with http.get(aiohttp.client.URL(url, encoded=True), headers=stamped.headers) as response:
        assert response.status == 200
        assert [job["Number"] for job in await response.json()] == expected


@pytest.mark.parametrize("since", ["yesterday", "2024-09-01T12:00:00+02:00", "2024-02-30"])
async def test_a_malformed_modified_date_is_a_400_with_a_json_error(
    stamped: RunningSimulator, http: aiohttp.ClientSession, since: str
) -> None:
    status, body = await _get(http, stamped, "/Job", params={"modifiedDate": since.replace("+", " ")})
    assert status == 400
    assert body["Field"] == "modifiedDate"
    assert "modifiedDate" in body["Message"]


async def test_modified_date_never_lists_closed_jobs(stamped: RunningSimulator, http: aiohttp.ClientSession) -> None:
    stamped.sim.close(200002)
    status, body = await _get(http, stamped, "/Job", params={"modifiedDate": "2024-09-01"})
    assert status == 200
    assert [job["Number"] for job in body] == [200001, 200003]


async def test_a_positions_change_shows_only_in_the_full_listing(
    stamped: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    sim = stamped.sim
    sim.register_webhook("http://127.0.0.1:9/hook")
    before = sim.job(200001)
    sim.set_positions(200001, 9)
    _, incremental = await _get(http, stamped, "/Job", params={"modifiedDate": before["ModifiedDateUtc"]})
    assert 200001 not in [job["Number"] for job in incremental]
    _, full = await _get(http, stamped, "/Job")
    (job,) = [job for job in full if job["Number"] == 200001]
    assert job["NumberOfCurrentOpenPositions"] == 9
    assert job["ModifiedDateUtc"] == before["ModifiedDateUtc"]
    assert sim.pending_webhooks == 0 and sim.webhook_log == []


# ------------------------------------------------------------------ API faults


async def _raw(http: aiohttp.ClientSession, running: RunningSimulator, path: str = "/Job") -> aiohttp.ClientResponse:
    async with http.get(running.base_url + path, headers=running.headers) as response:
        await response.read()
        return response


async def test_rate_limit_is_a_429_with_retry_after(simulator: RunningSimulator, http: aiohttp.ClientSession) -> None:
    simulator.sim.faults.retry_after_seconds = 7
    simulator.sim.faults.next_api_faults = ["rate_limit"]
    response = await _raw(http, simulator)
    assert (response.status, response.headers["Retry-After"]) == (429, "7")
    assert (await _raw(http, simulator)).status == 200  # one scheduled fault, one call
    assert simulator.sim.fault_log[-1]["fault"] == "rate_limit"


async def test_retry_after_is_in_whole_seconds_rounded_up(
    simulator: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    simulator.sim.faults.next_api_faults = ["rate_limit", "rate_limit"]
    simulator.sim.faults.retry_after_seconds = 0.2
    assert (await _raw(http, simulator)).headers["Retry-After"] == "1"
    simulator.sim.faults.retry_after_seconds = 0
    assert (await _raw(http, simulator)).headers["Retry-After"] == "0"


async def test_server_errors_are_500_or_503_with_retry_after(
    simulator: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    simulator.sim.faults.next_api_faults = ["server_error"] * 30
    responses = [await _raw(http, simulator, "/Job/200001") for _ in range(30)]
    assert {r.status for r in responses} == {500, 503}
    assert all("Retry-After" in r.headers for r in responses if r.status == 503)


@pytest.mark.parametrize("fault", ["truncated_json", "malformed_json"])
@pytest.mark.parametrize("path", ["/Job", "/Job/200001", "/Webhooks"])
async def test_broken_json_comes_with_200_and_a_json_content_type(
    simulator: RunningSimulator, http: aiohttp.ClientSession, fault: str, path: str
) -> None:
    simulator.sim.register_webhook("http://127.0.0.1:9/hook")
    simulator.sim.faults.next_api_faults = [fault]
    async with http.get(simulator.base_url + path, headers=simulator.headers) as response:
        assert response.status == 200
        assert response.content_type == "application/json"
        text = await response.text()
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)
    status, body = await _get(http, simulator, path)
    assert status == 200 and json.dumps(body)


async def test_a_slow_answer_is_still_the_right_answer(
    simulator: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    simulator.sim.faults.slow_seconds = 0.01
    simulator.sim.faults.next_api_faults = ["slow"]
    status, body = await _get(http, simulator, "/Job")
    assert (status, body) == (200, simulator.sim.listing())
    assert [entry["fault"] for entry in simulator.sim.fault_log] == ["slow"]


async def test_a_timeout_hangs_longer_than_the_client_waits(
    simulator: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    simulator.sim.faults.timeout_seconds = 600  # the app's shutdown releases it; the test never waits for it
    simulator.sim.faults.next_api_faults = ["timeout"]
    with pytest.raises(asyncio.TimeoutError):
        await http.get(simulator.base_url + "/Job", headers=simulator.headers, timeout=aiohttp.ClientTimeout(total=0.2))
    assert (await _raw(http, simulator)).status == 200


async def test_a_timeout_shorter_than_the_client_waits_ends_in_504(
    simulator: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    simulator.sim.faults.timeout_seconds = 0.01
    simulator.sim.faults.next_api_faults = ["timeout"]
    assert (await _raw(http, simulator)).status == 504


async def test_a_partial_listing_misses_a_share_of_the_open_jobs_once(
    simulator: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    sim = simulator.sim
    sim.faults.partial_listing_share = 0.2
    sim.faults.next_api_faults = ["partial_listing"]
    _, partial = await _get(http, simulator, "/Job")
    full = sim.listing()
    missing = {job["Number"] for job in full} - {job["Number"] for job in partial}
    assert len(missing) == 10
    assert [entry["fault"] for entry in sim.fault_log] == ["partial_listing"]
    assert missing == set(sim.fault_log[-1]["omitted"])
    assert all(sim.truth()[n]["JobStatus"] in ("Open", "OnHold") for n in missing)
    assert (await _get(http, simulator, "/Job"))[1] == full


async def test_a_partial_listing_is_never_drawn_for_an_incremental_listing(
    simulator: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    simulator.sim.faults.partial_listing = 1.0
    _, body = await _get(http, simulator, "/Job", params={"modifiedDate": "2000-01-01"})
    assert body == simulator.sim.listing()


async def test_probabilistic_faults_are_reproducible_from_the_seed(http: aiohttp.ClientSession) -> None:
    async def statuses() -> list[int]:
        sim = Simulator(seed=9, jobs=3, faults=FaultConfig(rate_limit=0.3, server_error=0.2))
        async with start_simulator(sim) as running:
            return [(await _raw(http, running, "/Job/200001")).status for _ in range(30)]

    first = await statuses()
    assert first == await statuses()
    assert {200, 429} <= set(first) and set(first) - {200, 429}


# ------------------------------------------------------------------ webhooks API


async def test_webhook_registrations_are_created_listed_and_updated(
    simulator: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    base, headers = simulator.base_url, simulator.headers
    _, events = await _get(http, simulator, "/Webhooks/Events")
    assert "Job Update" in events
    new = {"Name": "jobsync", "Url": "https://agency.example/hooks/abc", "Events": ["Job Update"], "IsActive": True}
    async with http.post(f"{base}/Webhooks", json=new, headers=headers) as response:
        assert response.status == 200
        created = await response.json()
    assert created == {"Id": 1, **new}
    async with http.post(f"{base}/Webhooks", json={"Id": 1, "IsActive": False}, headers=headers) as response:
        assert (await response.json())["IsActive"] is False
    assert (await _get(http, simulator, "/Webhooks"))[1] == [{**created, "IsActive": False}]


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"Name": "x"}, 400, "Url"),
        ({"Url": "ftp://x/y"}, 400, "Url"),
        ({"Url": "http://x/y", "Events": ["Job Deleted"]}, 400, "Events"),
        ({"Url": "http://x/y", "IsActive": "yes"}, 400, "IsActive"),
        ({"Id": 99, "IsActive": False}, 404, None),
        ([1, 2], 400, "$"),
    ],
)
async def test_bad_webhook_registrations_are_refused(
    simulator: RunningSimulator, http: aiohttp.ClientSession, body: object, status: int, field: str | None
) -> None:
    async with http.post(simulator.base_url + "/Webhooks", json=body, headers=simulator.headers) as response:
        assert response.status == status
        error = await response.json()
    if field:
        assert error["Field"] == field


async def test_a_body_that_is_not_json_is_a_400(simulator: RunningSimulator, http: aiohttp.ClientSession) -> None:
    async with http.post(simulator.base_url + "/Webhooks", data=b"{nope", headers=simulator.headers) as response:
        assert response.status == 400


# ------------------------------------------------------------------ /_sim/ controls


async def _sim_call(
    http: aiohttp.ClientSession, running: RunningSimulator, method: str, path: str, **kw: object
) -> tuple[int, object]:
    async with http.request(method, running.url + path, headers=running.headers, **kw) as response:  # type: ignore[arg-type]
        return response.status, await response.json()


async def test_truth_lists_every_job_closed_ones_included(
    simulator: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    simulator.sim.close(200001)
    status, body = await _sim_call(http, simulator, "GET", "/_sim/truth")
    assert status == 200
    assert {job["Number"]: job for job in body} == simulator.sim.truth()


async def test_step_runs_the_scenario(simulator: RunningSimulator, http: aiohttp.ClientSession) -> None:
    before = simulator.sim.truth()
    status, changes = await _sim_call(http, simulator, "POST", "/_sim/step?n=5")
    assert status == 200 and len(changes) == 5
    assert simulator.sim.truth() != before
    assert {c["kind"] for c in changes} <= {"created", "updated", "positions", "held", "closed", "reopened"}
    assert (await _sim_call(http, simulator, "POST", "/_sim/step?n=-1"))[0] == 400


async def test_faults_are_read_replaced_and_patched(simulator: RunningSimulator, http: aiohttp.ClientSession) -> None:
    status, body = await _sim_call(http, simulator, "PUT", "/_sim/faults", json={"rate_limit": 0.5, "slow": 0.1})
    assert status == 200 and (body["rate_limit"], body["slow"]) == (0.5, 0.1)
    status, body = await _sim_call(http, simulator, "PATCH", "/_sim/faults", json={"slow": 0.2})
    assert status == 200
    assert (body["rate_limit"], body["slow"]) == (0.5, 0.2)
    status, body = await _put_text(http, simulator, "drop_webhook=1")  # the CLI form replaces everything
    assert (body["rate_limit"], body["drop_webhook"]) == (0.0, 1.0)
    assert (await _sim_call(http, simulator, "GET", "/_sim/faults"))[1] == simulator.sim.faults.to_dict()
    status, body = await _sim_call(http, simulator, "PATCH", "/_sim/faults", json={"timeout": 3})
    assert status == 400 and "timeout" in body["Message"]
    assert simulator.sim.faults.timeout == 0.0


async def _put_text(http: aiohttp.ClientSession, running: RunningSimulator, text: str) -> tuple[int, object]:
    headers = {**running.headers, "Content-Type": "text/plain"}
    async with http.put(running.url + "/_sim/faults", data=text, headers=headers) as response:
        return response.status, await response.json()


async def test_job_controls_change_jobs_like_the_python_api(
    simulator: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    sim = simulator.sim
    before = sim.job(200001)
    status, job = await _sim_call(http, simulator, "POST", "/_sim/jobs/200001/positions", json={"positions": 0})
    assert (status, job["NumberOfCurrentOpenPositions"], job["ModifiedDateUtc"]) == (200, 0, before["ModifiedDateUtc"])
    status, job = await _sim_call(http, simulator, "PATCH", "/_sim/jobs/200001", json={"Title": "ICU nights"})
    assert (status, job["Title"]) == (200, "ICU nights") and job["ModifiedDateUtc"] > before["ModifiedDateUtc"]
    status, job = await _sim_call(http, simulator, "POST", "/_sim/jobs/200001/close", json={"reason": "Budget"})
    assert (job["JobStatus"], job["JobStatusReason"]) == ("Closed", "Budget")
    status, body = await _sim_call(http, simulator, "POST", "/_sim/jobs/200001/close")
    assert status == 409 and "it is Closed" in body["Message"]
    status, job = await _sim_call(http, simulator, "POST", "/_sim/jobs", json={"Title": "New", "Extra": [1]})
    assert status == 201 and sim.job(job["Number"])["Extra"] == [1]
    assert (await _sim_call(http, simulator, "POST", "/_sim/jobs/1/reopen"))[0] == 404


async def test_controls_and_refused_calls_never_consume_or_suffer_api_faults(
    simulator: RunningSimulator, http: aiohttp.ClientSession
) -> None:
    sim = simulator.sim
    sim.faults.next_api_faults = ["rate_limit"]
    async with http.get(simulator.base_url + "/Job", headers={"X-API-KEY": "wrong"}) as response:
        assert response.status == 401
    assert (await _sim_call(http, simulator, "GET", "/_sim/truth"))[0] == 200
    assert sim.faults.next_api_faults == ["rate_limit"]
    sim.faults.rate_limit = 1.0
    assert (await _sim_call(http, simulator, "GET", "/_sim/faults"))[0] == 200
    assert (await _raw(http, simulator)).status == 429
