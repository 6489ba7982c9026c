"""TrioClient against a scripted transport: retries, Retry-After, the time budget, auth errors, envelopes.

Waits go through an injected ``sleep`` that records them and a fake monotonic clock that it advances,
so no test sleeps or depends on timing.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from email.utils import format_datetime

import httpx
import pytest
import structlog
from pydantic import SecretStr

from services.common.metrics import CollectorRegistry, new_registry
from services.poller.backoff import backoff_delay, parse_retry_after
from services.poller.client import TrioClient
from services.poller.errors import MalformedResponseError, TrioAuthError, TrioRequestError, TrioUnavailableError
from services.poller.metrics import PollerMetrics

pytestmark = pytest.mark.unit

API_KEY = "s3cret-api-key-value"
JOB = {"Number": 7, "JobStatus": "Open", "ModifiedDateUtc": "2024-09-01T00:00:00Z"}


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


Reply = httpx.Response | Exception


def scripted(replies: list[Reply], seen: list[httpx.Request]) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        reply = replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply

    return httpx.MockTransport(handle)


def make_client(
    replies: list[Reply],
    seen: list[httpx.Request],
    clock: FakeTime,
    registry: CollectorRegistry | None = None,
    **kwargs,
) -> TrioClient:
    registry = registry if registry is not None else new_registry()
    kwargs.setdefault("max_attempts", 6)
    return TrioClient(
        "http://trio.test/ahsa/api/v3",
        SecretStr(API_KEY),
        transport=scripted(replies, seen),
        sleep=clock.sleep,
        monotonic=clock.monotonic,
        metrics=PollerMetrics(registry),
        **kwargs,
    )


def ok(body: object) -> httpx.Response:
    return httpx.Response(200, content=json.dumps(body).encode())


@pytest.fixture
def clock() -> FakeTime:
    return FakeTime()


async def test_a_listing_sends_the_api_key_header_and_returns_the_bare_array(clock: FakeTime) -> None:
    seen: list[httpx.Request] = []
    async with make_client([ok([JOB])], seen, clock) as client:
        assert await client.list_jobs() == [JOB]
    assert seen[0].headers["X-API-KEY"] == API_KEY
    assert seen[0].url.path == "/ahsa/api/v3/Job"
    assert "modifiedDate" not in seen[0].url.params


async def test_an_incremental_listing_passes_modified_date_with_microseconds(clock: FakeTime) -> None:
    seen: list[httpx.Request] = []
    async with make_client([ok([])], seen, clock) as client:
        await client.list_jobs(datetime(2024, 9, 1, 10, 0, 0, 250, tzinfo=UTC))
    assert seen[0].url.params["modifiedDate"] == "2024-09-01T10:00:00.000250Z"


@pytest.mark.parametrize("key", ["items", "data", "Items"])
async def test_a_paged_envelope_is_tolerated(clock: FakeTime, key: str) -> None:
    async with make_client([ok({key: [JOB], "page": 1})], [], clock) as client:
        assert await client.list_jobs() == [JOB]


async def test_429_with_retry_after_seconds_waits_exactly_that_long_then_succeeds(clock: FakeTime) -> None:
    replies: list[Reply] = [httpx.Response(429, headers={"Retry-After": "7"}), ok([JOB])]
    registry = new_registry()
    client = make_client(replies, [], clock, registry)
    assert await client.list_jobs() == [JOB]
    assert clock.sleeps == [7.0]
    labels = {"endpoint": "jobs", "reason": "rate_limited"}
    assert registry.get_sample_value("poller_http_retries_total", labels) == 1


async def test_retry_after_as_an_http_date_is_honoured() -> None:
    now = datetime(2024, 9, 1, 12, 0, 0, tzinfo=UTC)
    header = format_datetime(datetime(2024, 9, 1, 12, 0, 30, tzinfo=UTC), usegmt=True)
    assert parse_retry_after(header, now) == 30.0
    assert parse_retry_after(format_datetime(datetime(2024, 9, 1, 11, 0, tzinfo=UTC), usegmt=True), now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None
    assert parse_retry_after("-5", now) is None


async def test_5xx_connect_errors_and_timeouts_are_retried_with_growing_jittered_backoff(clock: FakeTime) -> None:
    replies: list[Reply] = [
        httpx.Response(500),
        httpx.ConnectError("refused"),
        httpx.ReadTimeout("slow"),
        httpx.Response(502),
        ok([JOB]),
    ]
    client = make_client(replies, [], clock, backoff_base=1.0, backoff_max=30.0)
    assert await client.list_jobs() == [JOB]
    assert len(clock.sleeps) == 4
    for attempt, wait in enumerate(clock.sleeps, start=1):
        assert 0 <= wait <= 2 ** (attempt - 1)


def test_backoff_is_capped_and_full_jitter() -> None:
    class Top:
        def uniform(self, low: float, high: float) -> float:
            return high

    assert [backoff_delay(n, 0.5, 4.0, Top()) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


async def test_giving_up_after_max_attempts_names_the_last_error(clock: FakeTime) -> None:
    client = make_client([httpx.Response(503)] * 3, [], clock, max_attempts=3)
    with pytest.raises(TrioUnavailableError, match=r"gave up after 3 attempts; last: HTTP 503"):
        await client.list_jobs()
    assert len(clock.sleeps) == 2


async def test_a_retry_after_beyond_the_time_budget_fails_now_instead_of_waiting(clock: FakeTime) -> None:
    seen: list[httpx.Request] = []
    client = make_client([httpx.Response(429, headers={"Retry-After": "3600"})], seen, clock)
    with pytest.raises(TrioUnavailableError, match="JOBSYNC_POLLER_SYNC_BUDGET_S"):
        await client.list_jobs(deadline=clock.now + 60)
    assert clock.sleeps == [] and len(seen) == 1


async def test_a_spent_budget_makes_no_further_request(clock: FakeTime) -> None:
    seen: list[httpx.Request] = []
    client = make_client([ok([])], seen, clock)
    with pytest.raises(TrioUnavailableError, match="budget"):
        await client.list_jobs(deadline=clock.now - 1)
    assert seen == []


@pytest.mark.parametrize("status", [401, 403])
async def test_a_refused_api_key_fails_at_once_naming_the_setting_without_the_key(clock: FakeTime, status: int) -> None:
    seen: list[httpx.Request] = []
    client = make_client([httpx.Response(status)], seen, clock)
    with pytest.raises(TrioAuthError) as caught:
        await client.list_jobs()
    assert "JOBSYNC_POLLER_API_KEY" in str(caught.value)
    assert API_KEY not in str(caught.value)
    assert len(seen) == 1 and clock.sleeps == []


async def test_other_4xx_are_not_retried(clock: FakeTime) -> None:
    seen: list[httpx.Request] = []
    client = make_client([httpx.Response(400, content=b'{"error":"bad modifiedDate"}')], seen, clock)
    with pytest.raises(TrioRequestError, match="HTTP 400") as caught:
        await client.list_jobs()
    assert caught.value.status == 400 and len(seen) == 1


@pytest.mark.parametrize("body", [b'[{"Number": 1},', b"[1,]", b"<html>oops</html>", b'{"message": "no array"}'])
async def test_a_malformed_body_is_not_retried_and_keeps_the_body(clock: FakeTime, body: bytes) -> None:
    seen: list[httpx.Request] = []
    client = make_client([httpx.Response(200, content=body)], seen, clock)
    with pytest.raises(MalformedResponseError) as caught:
        await client.list_jobs()
    assert caught.value.body == body and len(seen) == 1


async def test_get_job_returns_none_for_an_unknown_number(clock: FakeTime) -> None:
    seen: list[httpx.Request] = []
    client = make_client([httpx.Response(404), ok(JOB)], seen, clock)
    assert await client.get_job(99) is None
    assert await client.get_job(7) == JOB
    assert [r.url.path for r in seen] == ["/ahsa/api/v3/Job/99", "/ahsa/api/v3/Job/7"]


async def test_webhooks_are_listed_and_saved(clock: FakeTime) -> None:
    seen: list[httpx.Request] = []
    registration = {"Id": 1, "Name": "jobsync", "Url": "https://x/y", "Events": ["Job Update"], "IsActive": True}
    client = make_client([ok([registration]), ok(registration)], seen, clock)
    assert await client.list_webhooks() == [registration]
    assert await client.save_webhook(registration) == registration
    assert seen[1].method == "POST" and json.loads(seen[1].content) == registration


async def test_every_call_is_one_log_line_with_status_attempt_and_jobs_but_never_the_key(clock: FakeTime) -> None:
    replies: list[Reply] = [httpx.Response(503, headers={"Retry-After": "1"}), ok([JOB, JOB])]
    client = make_client(replies, [], clock)
    with structlog.testing.capture_logs() as logs:
        await client.list_jobs(datetime(2024, 9, 1, tzinfo=UTC))
    calls = [entry for entry in logs if entry["event"] == "trio_api_call"]
    assert [(c["status"], c["attempt"]) for c in calls] == [(503, 1), (200, 2)]
    assert calls[1]["jobs"] == 2 and calls[1]["method"] == "GET"
    assert calls[1]["path"].startswith("/Job?modifiedDate=2024-09-01T00")
    assert all("duration_ms" in c for c in calls)
    assert API_KEY not in repr(logs)


async def test_metrics_count_calls_by_status(clock: FakeTime) -> None:
    registry = new_registry()
    client = make_client([httpx.Response(500), httpx.ConnectError("x"), ok([])], [], clock, registry)
    await client.list_jobs()

    def calls(status: str) -> float | None:
        return registry.get_sample_value("poller_http_requests_total", {"endpoint": "jobs", "status": status})

    assert (calls("500"), calls("error"), calls("200")) == (1, 1, 1)
