"""The Simulator: one simulated Trio tenant — its jobs, scenario, faults and webhooks — behind a Python API.

This is the composition root of the pure parts (job book, scenario planner, fault injector, outbox) and
the one object the HTTP app, the CLI and tests drive. Everything here is synchronous and runs on the
event loop's thread, except ``flush_webhooks`` and the delivery task the app starts.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from services.common.trio import CLOSED, JOB_STATUS, JOB_STATUS_REASON, LISTED_STATUSES, ON_HOLD, OPEN, OPEN_POSITIONS
from services.simulator import jobgen, listing, scenario
from services.simulator.delivery import WebhookDispatcher
from services.simulator.errors import InvalidChangeError
from services.simulator.faults import FaultConfig, FaultInjector
from services.simulator.jobs import JobBook, JobRecord
from services.simulator.outbox import Delivery, Outbox
from services.simulator.registrations import JOB_UPDATE, Registration, Registrations
from services.simulator.scenario import Change

SEEDED_HISTORY = timedelta(days=30)  # seeded jobs were last modified within this window before start


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Simulator:
    """A simulated Trio tenant. See services/simulator/README.md for the behaviour it reproduces."""

    def __init__(
        self,
        *,
        seed: int = 0,
        jobs: int = 0,
        tenant: str = "ahsa",
        api_key: str = "dev-key",
        faults: FaultConfig | None = None,
        clock: Callable[[], datetime] | None = None,
        log_limit: int = 10_000,
        webhook_timeout_seconds: float = 5.0,
    ) -> None:
        if jobs < 0:
            raise ValueError(f"jobs must be >= 0, got {jobs}")
        if not api_key:
            raise ValueError("api_key must not be empty")
        self.seed = seed
        self.tenant = tenant
        self.api_key = api_key
        self._clock = clock or _utcnow
        # Two RNGs: the scenario's decides the jobs (the truth), the faults' decides what goes wrong.
        # Turning faults on or off therefore never changes the truth a seed produces.
        self._rng = random.Random(seed)
        self._injector = FaultInjector(faults if faults is not None else FaultConfig(), random.Random(f"faults:{seed}"))
        self._book = JobBook()
        self.registrations = Registrations()
        self._outbox = Outbox()
        self._dispatcher = WebhookDispatcher(
            self._outbox, self._record_delivery, timeout_seconds=webhook_timeout_seconds
        )
        self._log_limit = log_limit
        self.webhook_log: list[dict[str, Any]] = []
        self.fault_log: list[dict[str, Any]] = []
        self.stats: Counter[str] = Counter()  # plain counts; services/simulator/metrics.py exports them
        self._seed_jobs(jobs)

    # ----------------------------------------------------------------- faults

    @property
    def faults(self) -> FaultConfig:
        return self._injector.config

    @faults.setter
    def faults(self, config: FaultConfig) -> None:
        self._injector.config = config

    @property
    def injector(self) -> FaultInjector:
        return self._injector

    def record_fault(self, fault: str, **detail: Any) -> None:
        self.stats[f"fault:{fault}"] += 1
        self._append(self.fault_log, {"fault": fault, **detail})

    # ----------------------------------------------------------------- jobs

    @property
    def book(self) -> JobBook:
        return self._book

    def now(self) -> datetime:
        return self._clock()

    def _seed_jobs(self, count: int) -> None:
        start = self._clock()
        history_ms = int(SEEDED_HISTORY.total_seconds() * 1000)
        for _ in range(count):
            number = self._book.next_number()
            job = jobgen.new_job(self._rng, number, start, status=jobgen.seeded_status(self._rng))
            record = self._book.add(job, start - timedelta(milliseconds=self._rng.randrange(1, history_ms)))
            record.body()  # serialize now: start-up pays it once, not the first full listing

    def create_job(self, **fields: Any) -> dict[str, Any]:
        """Create a job (generated content, overridden by ``fields``); stamps it and fires a webhook."""
        if "ModifiedDateUtc" in fields:
            raise InvalidChangeError("ModifiedDateUtc cannot be set (the simulator stamps it)")
        number = fields.get("Number", self._book.next_number())
        job = jobgen.new_job(self._rng, number, self._clock(), status=fields.get(JOB_STATUS, OPEN))
        job.update(fields)
        record = self._book.add(job, self._clock())
        return self._changed(scenario.CREATED, record, fires=True)

    def update_job(self, number: int, **changes: Any) -> dict[str, Any]:
        """Change any fields (not Number or ModifiedDateUtc); stamps the job and fires a webhook."""
        if not changes:
            raise InvalidChangeError("update_job needs at least one field to change")
        record = self._book.modify(number, changes, self._clock())
        return self._changed(scenario.UPDATED, record, fires=True)

    def set_positions(self, number: int, n: int) -> dict[str, Any]:
        """Change NumberOfCurrentOpenPositions the way Trio does: no new ModifiedDateUtc, no webhook."""
        record = self._book.set_positions(number, n)
        return self._changed(scenario.POSITIONS, record, fires=False)

    def hold(self, number: int, reason: str | None = None) -> dict[str, Any]:
        """Open -> OnHold; stamps and fires a webhook."""
        self._require(number, {OPEN}, "hold")
        record = self._book.modify(number, {JOB_STATUS: ON_HOLD, JOB_STATUS_REASON: reason}, self._clock())
        return self._changed(scenario.HELD, record, fires=True)

    def close(self, number: int, reason: str = "Filled") -> dict[str, Any]:
        """Open/OnHold -> Closed with Trio's reason; stamps and fires a webhook."""
        self._require(number, LISTED_STATUSES, "close")
        record = self._book.modify(number, {JOB_STATUS: CLOSED, JOB_STATUS_REASON: reason}, self._clock())
        return self._changed(scenario.CLOSED_KIND, record, fires=True)

    def reopen(self, number: int) -> dict[str, Any]:
        """OnHold/Closed -> Open; stamps and fires a webhook."""
        self._require(number, {ON_HOLD, CLOSED}, "reopen")
        record = self._book.modify(number, {JOB_STATUS: OPEN, JOB_STATUS_REASON: None}, self._clock())
        return self._changed(scenario.REOPENED, record, fires=True)

    def _require(self, number: int, statuses: Iterable[str], action: str) -> None:
        status = self._book.get(number).status
        if status not in statuses:
            expected = " or ".join(sorted(statuses))
            raise InvalidChangeError(f"cannot {action} job {number}: it is {status}, not {expected}")

    def step(self, n: int = 1) -> list[Change]:
        """Make ``n`` seeded scenario changes; returns them in order."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        return [self._apply(scenario.plan(self._rng, self._book)) for _ in range(n)]

    def _apply(self, plan: scenario.Plan) -> Change:
        changes, number = plan.changes, plan.number
        if number is None:
            job = self.create_job()
        elif plan.kind == scenario.UPDATED:
            job = self.update_job(number, **changes)
        elif plan.kind == scenario.POSITIONS:
            job = self.set_positions(number, changes[OPEN_POSITIONS])
        elif plan.kind == scenario.HELD:
            job = self.hold(number, changes["reason"])
        elif plan.kind == scenario.CLOSED_KIND:
            job = self.close(number, changes["reason"])
        else:
            job = self.reopen(number)
        return Change(plan.kind, job["Number"], plan.kind != scenario.POSITIONS, job["ModifiedDateUtc"], job)

    def _changed(self, kind: str, record: JobRecord, *, fires: bool) -> dict[str, Any]:
        self.stats[f"change:{kind}"] += 1
        if fires:
            self._fire(record)
        # A copy: callers must not be able to edit the truth behind the simulator's back.
        return record.copy()

    def job(self, number: int) -> dict[str, Any]:
        """One job exactly as ``GET /Job/{number}`` returns it (a copy)."""
        return self._book.get(number).copy()

    def truth(self) -> dict[int, dict[str, Any]]:
        """Deep copies of EVERY job, closed ones included, keyed by Number."""
        return {record.number: record.copy() for record in self._book}

    def listing(self, since: datetime | None = None) -> list[dict[str, Any]]:
        """What ``GET /Job`` returns without faults (a copy): Open/OnHold jobs modified after ``since``."""
        return [record.copy() for record in listing.select(self._book, since)]

    # ----------------------------------------------------------------- webhooks

    def register_webhook(
        self, url: str, events: Iterable[str] = (JOB_UPDATE,), name: str = "jobsync", active: bool = True
    ) -> dict[str, Any]:
        return self.registrations.create(name=name, url=url, events=list(events), active=active).to_json()

    def _fire(self, record: JobRecord) -> None:
        body = record.body()
        for registration in self.registrations.subscribed(JOB_UPDATE):
            self._queue_delivery(registration, record, body)
        self._dispatcher.notify()

    def _queue_delivery(self, registration: Registration, record: JobRecord, body: bytes) -> None:
        faults = self._injector.webhook_faults()
        detail = {"url": registration.url, "number": record.number, "modified": record.job["ModifiedDateUtc"]}
        if faults.deactivate:
            registration.is_active = False
            self.record_fault("deactivate_registration", registration_id=registration.id, **detail)
            self._log_attempt(detail, error="registration deactivated", dropped=True)
            return
        if faults.drop:
            self.record_fault("drop_webhook", **detail)
            self._log_attempt(detail, error="dropped", dropped=True)
            return
        due = time.monotonic() + (self.faults.late_seconds if faults.late else 0.0)
        delivery = Delivery(
            registration.url,
            record.number,
            detail["modified"],
            body,
            due=due,
            late=faults.late,
            reordered=faults.reorder,
        )
        for name, hit in (("late_webhook", faults.late), ("reorder_webhook", faults.reorder)):
            if hit:
                self.record_fault(name, **detail)
        self._outbox.put(delivery, hold=faults.reorder)
        if faults.duplicate:
            self.record_fault("duplicate_webhook", **detail)
            self._outbox.put(
                Delivery(
                    registration.url,
                    record.number,
                    detail["modified"],
                    body,
                    due=due,
                    duplicated=True,
                    late=faults.late,
                ),
                hold=faults.reorder,
            )

    def _record_delivery(self, delivery: Delivery, status: int | None, error: str | None) -> None:
        self._log_attempt(
            {"url": delivery.url, "number": delivery.number, "modified": delivery.modified},
            status=status,
            error=error,
            duplicated=delivery.duplicated,
            late=delivery.late,
            reordered=delivery.reordered,
        )

    def _log_attempt(
        self,
        detail: dict[str, Any],
        *,
        status: int | None = None,
        error: str | None = None,
        dropped: bool = False,
        duplicated: bool = False,
        late: bool = False,
        reordered: bool = False,
    ) -> None:
        if dropped:
            outcome = "dropped"
        elif status is not None and 200 <= status < 300:
            outcome = "delivered"
        else:
            outcome = "failed"
        self.stats[f"webhook:{outcome}"] += 1
        self._append(
            self.webhook_log,
            {
                **detail,
                "status": status,
                "error": error,
                "outcome": outcome,
                "dropped": dropped,
                "duplicated": duplicated,
                "late": late,
                "reordered": reordered,
            },
        )

    @property
    def pending_webhooks(self) -> int:
        return len(self._outbox)

    async def flush_webhooks(self) -> int:
        """Deliver every pending webhook now (late and held-back ones too) and wait; returns how many."""
        return await self._dispatcher.flush()

    async def start_webhooks(self) -> None:
        """Start background delivery (the HTTP app does this while it runs)."""
        await self._dispatcher.start()

    async def stop_webhooks(self) -> None:
        await self._dispatcher.stop()

    def _append(self, log: list[dict[str, Any]], entry: dict[str, Any]) -> None:
        log.append(entry)
        if len(log) > 2 * self._log_limit:  # trim in bulk, so appending stays O(1) amortized
            del log[: len(log) - self._log_limit]
