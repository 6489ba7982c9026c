"""The job view in MongoDB (or FerretDB): reads, optimistic-concurrency writes, snapshot decisions.

Only what MongoDB >= 6 and FerretDB 1.24 both do: ordered bulk writes (FerretDB aborts an update
command at its first failing statement whatever ``ordered`` says, so we never rely on what follows a
failure), ``InsertOne`` for a new job (a duplicate key means another writer got there first) and
``ReplaceOne`` filtered on the revision we read (matching nothing means the same). When a bulk does not
confirm every statement, each document is read back: equal to what we meant to write means written,
anything else means a lost race, and the caller re-applies its events to the fresh document.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, AsyncMongoClient, InsertOne, ReplaceOne
from pymongo.errors import BulkWriteError, DuplicateKeyError

from services.common.errors import JobSyncError
from services.common.trio import LISTED_STATUSES
from services.projector import document as d
from services.projector.rules import JobFold
from services.projector.settings import DEFAULT_WRITE_CHUNK

# FerretDB and MongoDB both cap a command's size; keep $in lists well below.
CHUNK = 1_000


class WriteConflictError(JobSyncError):
    """Documents kept changing under us for every allowed attempt (a busy zombie projector?)."""


class ViewWriteError(JobSyncError):
    """The server refused a document for a reason other than a lost race; names the job."""


def mongo_client(uri: str, timeout_ms: int) -> AsyncMongoClient:
    """A client that connects lazily; times are returned as aware UTC datetimes."""
    return AsyncMongoClient(
        uri, tz_aware=True, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms,
        socketTimeoutMS=max(timeout_ms, 120_000), retryWrites=False,
    )


@dataclass
class SnapshotRecord:
    snapshot_id: str
    partition: int
    status: str  # pending (guarded), applied, nothing
    started_at: datetime
    candidates: list[int]
    open_jobs: int
    reason: str
    marker_event_id: str
    closed: int = 0


class View:
    def __init__(
        self, client: AsyncMongoClient, database: str, jobs: str = "jobs", snapshots: str = "snapshots",
        *, write_chunk: int = DEFAULT_WRITE_CHUNK,
    ):
        self.client = client
        self.write_chunk = write_chunk
        self.db = client[database]
        self.jobs = self.db[jobs]
        self.snapshots = self.db[snapshots]

    async def ensure_indexes(self) -> None:
        # _id is the job Number: unique by definition, one document per job.
        await self.jobs.create_index([(d.STATUS, ASCENDING)], name="status")
        await self.jobs.create_index([(d.MODIFIED_AT, ASCENDING)], name="modified_at")
        await self.jobs.create_index([(d.PARTITION, ASCENDING), (d.STATUS, ASCENDING)], name="partition_status")
        await self.snapshots.create_index([("status", ASCENDING)], name="status")

    async def ping(self) -> bool:
        await self.db.command("ping")
        return True

    async def load(self, numbers: Iterable[int]) -> dict[int, dict[str, Any]]:
        wanted = list(numbers)
        found: dict[int, dict[str, Any]] = {}
        for start in range(0, len(wanted), CHUNK):
            async for doc in self.jobs.find({d.ID: {"$in": wanted[start : start + CHUNK]}}):
                found[doc[d.ID]] = doc
        return found

    # ---- writes

    async def write_bulk(self, writes: Sequence[tuple[int | None, dict[str, Any]]]) -> set[int]:
        """Write ``(revision read or None for a new job, new document)`` pairs in ordered bulks.

        Returns the job numbers whose document is not what we wrote (a lost race or a statement the
        server never ran): the caller re-reads and re-applies those.
        """
        unconfirmed: set[int] = set()
        for start in range(0, len(writes), self.write_chunk):
            chunk = writes[start : start + self.write_chunk]
            ops = [InsertOne(doc) if base is None else ReplaceOne({d.ID: doc[d.ID], d.REVISION: base}, doc)
                   for base, doc in chunk]
            inserts = sum(1 for base, _ in chunk if base is None)
            try:
                result = await self.jobs.bulk_write(ops, ordered=True)
                confirmed = result.inserted_count == inserts and result.matched_count == len(chunk) - inserts
            except BulkWriteError as exc:
                refused = [e for e in exc.details.get("writeErrors", []) if e.get("code") != 11000]
                if refused:
                    first = refused[0]
                    number = chunk[first["index"]][1][d.ID]
                    raise ViewWriteError(f"job {number}: the server refused the document: {first.get('errmsg')}") \
                        from exc
                confirmed = False
            if not confirmed:
                unconfirmed |= await self._not_written(chunk)
        return unconfirmed

    async def _not_written(self, chunk: Sequence[tuple[int | None, dict[str, Any]]]) -> set[int]:
        stored = await self.load(doc[d.ID] for _, doc in chunk)
        return {doc[d.ID] for _, doc in chunk if stored.get(doc[d.ID]) != doc}

    async def write_one(self, base: int | None, doc: dict[str, Any]) -> bool:
        """One optimistic write; False when another writer changed the document first."""
        if base is None:
            try:
                await self.jobs.insert_one(doc)
                return True
            except DuplicateKeyError:
                return False
        result = await self.jobs.replace_one({d.ID: doc[d.ID], d.REVISION: base}, doc)
        return result.matched_count == 1

    async def converge(
        self,
        numbers: Iterable[int],
        plan: Callable[[int, dict[str, Any] | None], JobFold],
        *,
        attempts: int,
        bases: dict[int, dict[str, Any]] | None = None,
        on_conflict: Callable[[int], None] | None = None,
        on_write: Callable[[float], None] | None = None,
    ) -> dict[int, JobFold]:
        """Plan each job against its stored document and write the plans until every one holds.

        ``plan(number, stored_doc)`` must be pure (rules.fold_job / infer_closure): after a lost race it
        is simply run again on the fresh document.
        """
        numbers = list(numbers)
        stored = bases if bases is not None else await self.load(numbers)
        plans = {n: plan(n, stored.get(n)) for n in numbers}
        writes = [(_revision(p.base), p.doc) for p in plans.values() if p.doc is not None]
        started = time.perf_counter()
        lost = await self.write_bulk(writes) if writes else set()
        if on_write and writes:
            on_write(time.perf_counter() - started)
        for _ in range(attempts):
            if not lost:
                return plans
            fresh = await self.load(lost)
            still: set[int] = set()
            for number in sorted(lost):
                if on_conflict:
                    on_conflict(number)
                plans[number] = again = plan(number, fresh.get(number))
                if again.doc is not None and not await self.write_one(_revision(again.base), again.doc):
                    still.add(number)
            lost = still
        if lost:
            raise WriteConflictError(
                f"{len(lost)} job(s) changed under us {attempts} times in a row (e.g. {min(lost)}); "
                "is another projector writing the same jobs?"
            )
        return plans

    async def mark_announced(self, changes: Sequence[tuple[int, str]]) -> None:
        """The change feed acknowledged these operator-made changes (job, event id), unless a newer change
        replaced them. The consumer's own changes need no such write: its committed offsets say it."""
        for start in range(0, len(changes), CHUNK):
            chunk = changes[start : start + CHUNK]
            await self.jobs.update_many(
                {"$or": [{d.ID: n, f"{d.LAST_CHANGE}.event_id": e} for n, e in chunk]},
                {"$set": {f"{d.LAST_CHANGE}.announced": True}},
            )

    async def operator_changes_unannounced(self) -> list[dict[str, Any]]:
        """Documents whose last change an operator command wrote but did not see acknowledged."""
        return [doc async for doc in self.jobs.find({f"{d.LAST_CHANGE}.announced": False})]

    async def changed_by(self, partition: int, event_id: str) -> list[dict[str, Any]]:
        """Documents of ``partition`` whose last change the event ``event_id`` made (a marker's closures)."""
        return [doc async for doc in self.jobs.find({d.PARTITION: partition, f"{d.LAST_CHANGE}.event_id": event_id})]

    # ---- closure inference

    async def closure_candidates(self, partition: int, snapshot_id: str, started_us: int) -> list[dict[str, Any]]:
        query = {
            d.PARTITION: partition,
            d.STATUS: {"$in": sorted(LISTED_STATUSES)},
            d.LAST_SEEN_US: {"$lt": started_us},
        }
        return [doc async for doc in self.jobs.find(query) if doc.get(d.LAST_SNAPSHOT_ID) != snapshot_id]

    async def count_open(self, partition: int) -> int:
        return await self.jobs.count_documents({d.PARTITION: partition, d.STATUS: {"$in": sorted(LISTED_STATUSES)}})

    async def count_by_status(self) -> dict[str, int]:
        cursor = await self.jobs.aggregate([{"$group": {"_id": f"${d.STATUS}", "n": {"$sum": 1}}}])
        return {row["_id"]: row["n"] async for row in cursor if row["_id"] is not None}

    async def record_snapshot(self, record: SnapshotRecord) -> bool:
        """Keep the decision taken on a marker; the first decision stands (a replayed marker changes nothing).

        Returns True when this call recorded it.
        """
        now = datetime.now(UTC)
        result = await self.snapshots.update_one(
            {"_id": f"{record.snapshot_id}/{record.partition}"},
            {"$setOnInsert": {
                "snapshot_id": record.snapshot_id, "partition": record.partition, "status": record.status,
                "started_at": record.started_at, "started_us": d.to_us(record.started_at),
                "candidates": record.candidates, "candidate_count": len(record.candidates),
                "open_jobs": record.open_jobs, "reason": record.reason, "marker_event_id": record.marker_event_id,
                "closed": record.closed, "recorded_at": now,
                "applied_at": now if record.status == "applied" else None,
            }},
            upsert=True,
        )
        return result.upserted_id is not None

    async def snapshot_records(self, snapshot_id: str | None = None, status: str | None = None) -> list[dict]:
        query: dict[str, Any] = {}
        if snapshot_id is not None:
            query["snapshot_id"] = snapshot_id
        if status is not None:
            query["status"] = status
        return [doc async for doc in self.snapshots.find(query).sort([("recorded_at", ASCENDING)])]

    async def mark_snapshot_applied(self, record_id: str, closed: int) -> None:
        await self.snapshots.update_one(
            {"_id": record_id, "status": "pending"},
            {"$set": {"status": "applied", "closed": closed, "applied_at": datetime.now(UTC)}},
        )


def _revision(doc: dict[str, Any] | None) -> int | None:
    return None if doc is None else doc[d.REVISION]
