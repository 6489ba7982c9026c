"""The central property: after a seeded scenario with faults on — dropped, duplicated, reordered and late
webhooks; 429s, 5xx and timeouts from the API; a full listing that misses jobs — once the system is quiet and
one full sync has run, the view equals the simulator's truth for every job, field by field, closed jobs and
NumberOfCurrentOpenPositions included.

Seeds and sizes: JOBSYNC_E2E_SEEDS (default "1,2"), JOBSYNC_E2E_JOBS (300), JOBSYNC_E2E_STEPS (300).
``make soak`` runs larger ones by hand.
"""

from __future__ import annotations

import os

import pytest

from tests.e2e.support import Driver, env_ints, running_stack
from tests.infra import ServerHandle

pytestmark = pytest.mark.e2e

CHAOS = (
    "drop_webhook=0.1,duplicate_webhook=0.1,reorder_webhook=0.1,late_webhook=0.1,late_seconds=2,"
    "rate_limit=0.1,server_error=0.1,timeout=0.03,partial_listing=0.3,partial_listing_share=0.05"
)


@pytest.mark.parametrize("seed", env_ints("JOBSYNC_E2E_SEEDS", "1,2"))
def test_view_converges_to_truth_after_chaos(
    seed: int, kafka: ServerHandle, mongo: ServerHandle, unique_name: str, tmp_path
) -> None:
    jobs = int(os.environ.get("JOBSYNC_E2E_JOBS", "300"))
    steps = int(os.environ.get("JOBSYNC_E2E_STEPS", "300"))
    with running_stack(
        kafka.address, mongo.address, unique_name, tmp_path / "logs",
        simulator_jobs=jobs, simulator_seed=seed, simulator_faults=CHAOS,
        extra_env={"JOBSYNC_POLLER_REQUEST_TIMEOUT_S": "2", "JOBSYNC_POLLER_BACKOFF_BASE_S": "0.1",
                   "JOBSYNC_POLLER_BACKOFF_MAX_S": "1"},
    ) as stack:
        stack.start_all()
        driver = Driver(stack)
        try:
            driver.wait_until(lambda: len(driver.view()) >= jobs * 0.9, 90, "the first full sync reached the view")
            driver.drive(steps)
            # Quiet: no more faults, every pending (late, held-back) webhook delivered, one full sync.
            driver.set_faults("")
            driver.flush_webhooks()
            progress = driver.resync()
            assert progress["outcome"] == "succeeded", progress
            report = driver.wait_converged(timeout=90)
            assert report.agrees, report.summary() + f" missing={report.missing[:10]} extra={report.extra[:10]} " \
                f"mismatched={dict(list(report.mismatched.items())[:10])}"
            assert report.compared >= jobs
            # Faults really happened: the scenario was not a quiet one.
            outcomes = {entry["outcome"] for entry in driver.webhook_log()}
            assert "dropped" in outcomes
        finally:
            driver.close()
