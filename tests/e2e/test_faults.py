"""Faults survived, nothing lost (issue 7): each test runs the whole stack against real servers with the
simulator churning, injects one fault — a stopped broker, a stopped MongoDB-wire server, a SIGKILLed
projector or poller, one of two projectors killed — and checks what must hold afterwards.

The broker and the MongoDB-wire server that get stopped are private to their test (the session's servers
may come from the environment and are shared). Sizes: JOBSYNC_E2E_FAULT_JOBS (200) for every test but the
poller kill, which uses JOBSYNC_E2E_POLLER_KILL_JOBS (400) and one event in flight at a time, so that
publishing a full listing takes seconds (about 7 ms an event) and the kill lands while it is under way.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import Consumer, TopicPartition

from services.common.codec import job_event_codec, job_state_codec
from services.common.kafka import base_config
from services.common.settings import KafkaSettings
from services.common.trio import parse_trio_datetime
from services.localinfra.servers import FerretServer, KafkaServer, free_port
from services.operator.stack import Stack
from tests.e2e.support import Driver, running_stack
from tests.infra import ServerHandle
from tests.projector_support import committed_offsets

pytestmark = pytest.mark.e2e

JOBS = int(os.environ.get("JOBSYNC_E2E_FAULT_JOBS", "200"))
POLLER_KILL_JOBS = int(os.environ.get("JOBSYNC_E2E_POLLER_KILL_JOBS", "400"))


# --- helpers ---------------------------------------------------------------------------------------


class Load:
    """Steady churn from a background thread while a fault happens: the scenario engine steps ``chunk``
    changes every ``pause`` seconds (its webhooks go out as the simulator delivers them). A Driver of its
    own: the test thread keeps using its own HTTP and MongoDB clients."""

    def __init__(self, stack: Stack, chunk: int = 3, pause: float = 0.25) -> None:
        self.driver = Driver(stack)
        self.chunk, self.pause = chunk, pause
        self.steps = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="load", daemon=True)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self.driver.step(self.chunk)
                self.steps += self.chunk
                self._stop.wait(self.pause)
        except BaseException as exc:  # reported by stop()
            self.error = exc

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(30)
        self.driver.close()
        if exc_info[0] is None:
            assert self.error is None, f"the load thread failed: {self.error!r}"
            assert self.steps > 0, "no load ran"


def readyz(driver: Driver, url: str) -> tuple[int, dict[str, Any]]:
    try:
        response = driver.http.get(f"{url}/readyz", timeout=3.0)
    except httpx.HTTPError:
        return 0, {}
    try:
        return response.status_code, response.json()
    except ValueError:
        return response.status_code, {}


def metric_sum(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels`` (Prometheus text format)."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#") or not (line.startswith(name + "{") or line.startswith(name + " ")):
            continue
        head, _, value = line.rpartition(" ")
        if all(f'{key}="{val}"' in head for key, val in labels.items()):
            total += float(value)
    return total


def read_topic(bootstrap: str, topic: str, timeout: float = 30.0) -> list[Any]:
    """Every message of ``topic`` from the beginning up to the end offsets at the time of the call."""
    consumer = Consumer({
        **base_config(KafkaSettings(bootstrap_servers=bootstrap)),
        "group.id": f"test-{uuid.uuid4().hex}", "enable.auto.commit": False, "auto.offset.reset": "earliest",
    })
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        remaining = {p for p, end in ends.items() if end > 0}
        found: list[Any] = []
        deadline = time.monotonic() + timeout
        while remaining and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            if msg.offset() < ends[msg.partition()]:
                found.append(msg)
            if msg.offset() >= ends[msg.partition()] - 1:
                remaining.discard(msg.partition())
        assert not remaining, f"could not read {topic} to its end within {timeout}s (partitions {remaining})"
        return found
    finally:
        consumer.close()


def assert_converged(driver: Driver, timeout: float = 60.0) -> None:
    """Quiet, one full sync (Trio changes open positions without a new version and without a webhook: only a
    full listing shows them), then the view equals the truth."""
    driver.flush_webhooks()
    progress = driver.resync()
    assert progress["outcome"] == "succeeded", progress
    report = driver.wait_converged(timeout=timeout)
    assert report.agrees, report.summary() + f" missing={report.missing[:10]} extra={report.extra[:10]} " \
        f"mismatched={dict(list(report.mismatched.items())[:10])}"
    assert report.compared >= JOBS


def wait_first_sync(driver: Driver, jobs: int, timeout: float = 90.0) -> None:
    driver.wait_until(lambda: len(driver.view()) >= jobs, timeout, "the first full sync reached the view")


@contextmanager
def driven(stack: Stack) -> Iterator[Driver]:
    driver = Driver(stack)
    try:
        yield driver
    finally:
        driver.close()


def logs_on_failure(stack: Stack) -> str:
    return "\n".join(f"--- {name}\n{process.tail(1500)}" for name, process in stack.processes.items())


# --- 1. the broker stopped and restarted -------------------------------------------------------------


def test_kafka_outage_every_acknowledged_webhook_reaches_the_view(
    mongo: ServerHandle, unique_name: str, tmp_path: Path
) -> None:
    broker = KafkaServer("kafka", tmp_path / "kafka", free_port(), controller_port=free_port(), heap="384m")
    broker.start()
    try:
        # No incremental syncs after the first full one: nothing but the webhooks can bring a change in, so
        # a webhook the ingress acknowledged and then lost would show.
        with running_stack(
            broker.bootstrap, mongo.address, unique_name, tmp_path / "logs", simulator_jobs=JOBS,
            incremental_interval_s=3600.0, extra_env={"JOBSYNC_KAFKA_DELIVERY_TIMEOUT_MS": "2000"},
        ) as stack, driven(stack) as driver:
            stack.start_all()
            wait_first_sync(driver, JOBS)
            some_job = next(iter(driver.truth().values()))
            with Load(stack):
                time.sleep(2.0)
                broker.stop()
                # The ingress refuses what it cannot make durable: 503 with Retry-After, to us and to Trio.
                response = driver.http.post(stack.config.webhook_url, json=some_job, timeout=30.0)
                assert response.status_code == 503, response.text
                assert response.headers.get("Retry-After")
                driver.wait_until(
                    lambda: any(entry["status"] == 503 for entry in driver.webhook_log()), 30,
                    "the simulator's webhooks were answered 503",
                )
                broker.start()
                delivered_before = sum(entry["outcome"] == "delivered" for entry in driver.webhook_log())
                driver.wait_until(
                    lambda: sum(e["outcome"] == "delivered" for e in driver.webhook_log()) > delivered_before + 5,
                    45, "webhooks were acknowledged again after the broker came back",
                )
            driver.flush_webhooks()
            log = driver.webhook_log()
            delivered = [entry for entry in log if entry["outcome"] == "delivered"]
            refused = [entry for entry in log if entry["status"] == 503]
            assert delivered and refused

            def lost() -> list[tuple[int, str, str | None]]:
                view = driver.view()
                missing = []
                for entry in delivered:
                    held = view.get(entry["number"])
                    held_modified = None if held is None else held.get("ModifiedDateUtc")
                    if held_modified is None or parse_trio_datetime(held_modified) < parse_trio_datetime(
                        entry["modified"]
                    ):
                        missing.append((entry["number"], entry["modified"], held_modified))
                return missing

            try:
                driver.wait_until(lambda: not lost(), 60, "every acknowledged webhook is in the view")
            except AssertionError:
                raise AssertionError(
                    f"acknowledged but not in the view: {lost()[:10]}\n{logs_on_failure(stack)}"
                ) from None
    finally:
        broker.stop()


# --- 2. the projector SIGKILLed mid-batch ------------------------------------------------------------


def test_projector_killed_mid_batch_converges_without_duplicate_effects(
    kafka: ServerHandle, mongo: ServerHandle, unique_name: str, tmp_path: Path
) -> None:
    jobs = max(JOBS, 600)  # a full sync's flood of events makes batches long enough to be caught mid-write
    with running_stack(
        kafka.address, mongo.address, unique_name, tmp_path / "logs", simulator_jobs=jobs,
    ) as stack, driven(stack) as driver:
        stack.start_all()
        wait_first_sync(driver, jobs)
        collection = driver.mongo[stack.config.mongo_database]["jobs"]
        projector = stack.processes["projector"]
        with Load(stack):
            headers = {"Authorization": f"Bearer {stack.config.admin_token}"}
            response = driver.http.post(f"{stack.config.poller_url}/admin/resync", headers=headers)
            assert response.status_code == 202, response.text
            # Mid-batch: documents written whose change the feed has not announced nor the offsets committed.
            # Checking takes a moment, so the batch seen in flight may be committed by the time of the kill:
            # then restart and try again.
            for _ in range(5):
                driver.wait_until(
                    lambda: written_past_commit(collection, kafka.address, unique_name) > 0, 60,
                    "the projector is between writing a batch and committing it", interval=0.02,
                )
                projector.kill()
                if written_past_commit(collection, kafka.address, unique_name) > 0:
                    break
                projector.start()
            assert written_past_commit(collection, kafka.address, unique_name) > 0, "never killed mid-batch"
            time.sleep(1.0)
            projector.start()
            time.sleep(3.0)
        assert_converged(driver)
        driver.wait_until(
            lambda: written_past_commit(collection, kafka.address, unique_name) == 0, 30,
            "every change was announced on the feed (the group committed past every written change)",
        )
        # No duplicate effect: a (job, revision) announced twice (the reprocessed batch) is the same record;
        # the latest record of every job is the view's job (bookkeeping-only writes, e.g. a full sync seeing
        # the same version again, bump the document's revision without announcing anything).
        codec = job_state_codec()
        records: dict[tuple[int, int], list[Any]] = defaultdict(list)
        latest: dict[int, Any] = {}
        for msg in read_topic(kafka.address, f"{unique_name}.jobs.state"):
            state = codec.decode(msg.value())
            records[(state.job_number, state.revision)].append(state)
            if state.job_number not in latest or state.revision >= latest[state.job_number].revision:
                latest[state.job_number] = state
        differing = {key: values for key, values in records.items() if any(v != values[0] for v in values)}
        assert not differing, f"different records for one (job, revision): {list(differing.items())[:3]}"
        documents = driver.view_documents()
        assert set(latest) == set(documents)
        for number, doc in documents.items():
            state = latest[number]
            assert (state.job_json, state.job_status) == (doc["job_json"], doc["status"]), number
            assert state.revision <= doc["revision"], number


def written_past_commit(collection: Any, bootstrap: str, prefix: str) -> int:
    """Documents whose last change comes from an event the projector's group has not committed: written,
    and not known to be on the change feed (the projector commits only after the feed acknowledged)."""
    settings = KafkaSettings(bootstrap_servers=bootstrap, topic_prefix=prefix, partitions=3)
    committed = committed_offsets(settings, f"{prefix}.projector")
    marks = [doc["last_change"] for doc in collection.find({}, {"last_change": 1}) if doc.get("last_change")]
    return sum(1 for m in marks if m["offset"] is not None and m["offset"] >= committed.get(m["partition"], -1))


# --- 3. the MongoDB-wire server stopped and restarted -------------------------------------------------


def test_mongo_outage_projector_pauses_resumes_and_converges(
    kafka: ServerHandle, unique_name: str, tmp_path: Path
) -> None:
    server = FerretServer("ferretdb", tmp_path / "ferretdb", free_port())
    server.start()
    try:
        with running_stack(
            kafka.address, server.uri, unique_name, tmp_path / "logs", simulator_jobs=JOBS,
            extra_env={"JOBSYNC_PROJECTOR_MONGO_TIMEOUT_MS": "1500", "JOBSYNC_PROJECTOR_BACKOFF_MAX_S": "2"},
        ) as stack, driven(stack) as driver:
            stack.start_all()
            wait_first_sync(driver, JOBS)
            projector_url = stack.config.projector_url
            assert readyz(driver, projector_url)[0] == 200
            with Load(stack):
                time.sleep(2.0)
                server.stop()
                driver.wait_until(lambda: readyz(driver, projector_url)[0] == 503, 45,
                                  "the projector reported itself not ready")
                failures = metric_sum(driver.metrics(projector_url), "projector_batch_failures_total", stage="view")
                assert failures >= 1
                assert stack.processes["projector"].running
                time.sleep(3.0)
                server.start()
                driver.wait_until(lambda: readyz(driver, projector_url)[0] == 200, 60,
                                  "the projector resumed after the server came back")
                time.sleep(2.0)
            try:
                assert_converged(driver)
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{logs_on_failure(stack)}") from None
    finally:
        server.stop()


# --- 4. the poller SIGKILLed mid full sync -----------------------------------------------------------


def test_poller_killed_mid_full_sync_leaves_no_marker_and_the_next_sync_completes(
    kafka: ServerHandle, mongo: ServerHandle, unique_name: str, tmp_path: Path
) -> None:
    jobs = POLLER_KILL_JOBS
    # One event in flight at a time: publishing the listing takes long enough to kill the poller mid-way.
    with running_stack(
        kafka.address, mongo.address, unique_name, tmp_path / "logs", simulator_jobs=jobs,
        incremental_interval_s=3600.0, extra_env={"JOBSYNC_POLLER_PUBLISH_WINDOW": "1"},
    ) as stack, driven(stack) as driver:
        stack.start_all()
        wait_first_sync(driver, jobs)
        poller = stack.processes["poller"]
        headers = {"Authorization": f"Bearer {stack.config.admin_token}"}
        with Load(stack):
            response = driver.http.post(f"{stack.config.poller_url}/admin/resync", headers=headers)
            assert response.status_code == 202, response.text
            status_url = stack.config.poller_url + response.json()["status_url"]
            seen: dict[str, Any] = {}

            def publishing() -> bool:
                seen.update(driver.http.get(status_url, headers=headers).json())
                return seen.get("phase") == "publishing" and seen.get("published", 0) > 0

            driver.wait_until(publishing, 60, "the full sync is publishing", interval=0.02)
            poller.kill()
            killed = dict(seen)
            assert killed["published"] < jobs, killed
            snapshot_id = killed["snapshot_id"]
            assert snapshot_id
            time.sleep(2.0)
            poller.start()
            progress = driver.resync()
            assert progress["outcome"] == "succeeded", progress
            assert progress["snapshot_id"] != snapshot_id
        events = [job_event_codec().decode(msg.value())
                  for msg in read_topic(kafka.address, f"{unique_name}.jobs.events")]
        markers = {event.snapshot_id for event in events if event.event_type == "SnapshotCompleted"}
        assert snapshot_id not in markers, "the killed sync's marker was published"
        assert progress["snapshot_id"] in markers
        snapshots = driver.mongo[stack.config.mongo_database]["snapshots"]
        assert snapshots.count_documents({"_id": {"$regex": f"^{snapshot_id}/"}}) == 0
        assert_converged(driver)
        inferred = [number for number, doc in driver.view_documents().items() if doc.get("closure_inferred")]
        assert not inferred, f"inferred closures: {inferred[:10]}"


# --- 5. two projectors in one group, one killed ---------------------------------------------------------


def test_second_projector_takes_over_the_partitions_of_a_killed_one(
    kafka: ServerHandle, mongo: ServerHandle, unique_name: str, tmp_path: Path
) -> None:
    with running_stack(
        kafka.address, mongo.address, unique_name, tmp_path / "logs", simulator_jobs=JOBS,
        extra_env={"JOBSYNC_PROJECTOR_SESSION_TIMEOUT_MS": "6000"},
    ) as stack, driven(stack) as driver:
        stack.start_all()
        second_port = free_port()
        stack.projector("projector-2", second_port).start()
        first_url, second_url = stack.config.projector_url, f"http://{stack.config.host}:{second_port}"

        def split() -> bool:
            first, second = readyz(driver, first_url)[1], readyz(driver, second_url)[1]
            a, b = set(first.get("partitions", [])), set(second.get("partitions", []))
            return bool(a) and bool(b) and not a & b and a | b == {0, 1, 2}

        driver.wait_until(split, 60, "the two projectors share the three partitions")
        wait_first_sync(driver, JOBS)
        with Load(stack):
            time.sleep(2.0)
            stack.processes["projector"].kill()
            driver.wait_until(lambda: readyz(driver, second_url)[1].get("partitions") == [0, 1, 2], 45,
                              "the surviving projector owns every partition")
            applied_before = metric_sum(driver.metrics(second_url), "projector_events_total")
            time.sleep(3.0)
        assert_converged(driver)
        assert metric_sum(driver.metrics(second_url), "projector_events_total") > applied_before
