"""The job view in MongoDB (or FerretDB): reads, optimistic-concurrency writes, snapshot decisions.

Only what MongoDB >= 6 and FerretDB 1.24 both do: ordered bulk writes (FerretDB aborts an update
command at its first failing statement whatever ``ordered`` says, so we never rely on what follows a
failure), ``InsertOne`` for a new job (a duplicate key means another writer got there first) and
``ReplaceOne`` filtered on the revision we read (matching nothing means the same). When a bulk does not
confirm every statement, each document is read back: equal to what we meant to write means written,
anything else means a lost race, and the caller re-applies its events to the fresh document.

A document the server refuses (a per-statement write error that is neither a duplicate key nor one of
the server's transient conditions, or one the driver cannot even encode) is not retried: the write
reports it, the rest of the bulk is written, and the caller dead-letters the events behind it.
Everything else (the server unreachable, a failed command) raises, and the batch is retried.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import bson
from pymongo import ASCENDING, AsyncMongoClient, InsertOne, ReplaceOne
from pymongo.errors import BulkWriteError, DuplicateKeyError, InvalidDocument, WriteError

from services.common.errors import JobSyncError
from services.common.trio import LISTED_STATUSES
from services.projector import document as d
from services.projector.rules import JobFold
from services.projector.settings import DEFAULT_WRITE_CHUNK

# FerretDB and MongoDB both cap a command's size; keep $in lists well below.
CHUNK = 1_000
MAX_DOCUMENT_BYTES = 16 * 1024 * 1024  # maxBsonObjectSize of MongoDB and FerretDB


class WriteConflictError(JobSyncError):
    """Documents kept changing under us for every allowed attempt (a busy zombie projector?)."""


# Write errors that say the server could not take the write *now* (MongoDB's documented transient
# codes: network, shutdown, stepdown, time limits, write conflicts): the batch is retried, not dead-lettered.
TRANSIENT_WRITE_CODES = frozenset({6, 7, 50, 89, 91, 112, 134, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436,
                                   16500})
DUPLICATE_KEY = 11000


def refusal(code: int | None, message: str | None) -> str | None:
    """Why the server refused a document, or None when the write error is a lost race or transient."""
    if code == DUPLICATE_KEY or code in TRANSIENT_WRITE_CODES:
        return None
    return f"the view's server refused the document (code {code}): {message}"


@dataclass
class BulkOutcome:
    """What an ordered bulk of optimistic writes left to do."""

    unconfirmed: set[int] = field(default_factory=set)  # not what we wrote: re-read and re-apply
    refused: dict[int, str] = field(default_factory=dict)  # job -> why the server will never take it


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

    async def write_bulk(self, writes: Sequence[tuple[int | None, dict[str, Any]]]) -> BulkOutcome:
        """Write ``(revision read or None for a new job, new document)`` pairs in ordered bulks."""
        outcome = BulkOutcome()
        for start in range(0, len(writes), self.write_chunk):
            await self._write_chunk(writes[start : start + self.write_chunk], outcome)
        return outcome

    async def _write_chunk(self, chunk: Sequence[tuple[int | None, dict[str, Any]]], outcome: BulkOutcome) -> None:
        while chunk:
            inserts = sum(1 for base, _ in chunk if base is None)
            try:
                result = await self.jobs.bulk_write([_statement(base, doc) for base, doc in chunk], ordered=True)
            except (InvalidDocument, UnicodeEncodeError):
                # The driver cannot encode one of them (too large, a key BSON cannot hold): find which.
                reasons = [_unencodable(doc) for _, doc in chunk]  # each document encoded once more, not twice
                if not any(reasons):
                    raise
                for (_, doc), why in zip(chunk, reasons, strict=True):
                    if why:
                        outcome.refused[doc[d.ID]] = f"the document cannot be sent: {why}"
                chunk = [w for w, why in zip(chunk, reasons, strict=True) if not why]
                continue
            except BulkWriteError as exc:
                errors = exc.details.get("writeErrors") or []
                first = min(errors, key=lambda e: e["index"]) if errors else None
                why = refusal(first.get("code"), first.get("errmsg")) if first else None
                if first is None or (why is None and first.get("code") != DUPLICATE_KEY):
                    raise  # transient: the whole batch is retried
                if why is not None:
                    # Ordered: what came before it ran; what follows did not. Check the first part,
                    # then carry on after the refused statement.
                    index = first["index"]
                    outcome.refused[chunk[index][1][d.ID]] = why
                    outcome.unconfirmed |= await self._not_written(chunk[:index])
                    chunk = chunk[index + 1 :]
                    continue
                outcome.unconfirmed |= await self._not_written(chunk)  # a lost race (duplicate key)
                return
            if not (result.inserted_count == inserts and result.matched_count == len(chunk) - inserts):
                outcome.unconfirmed |= await self._not_written(chunk)
            return

    async def _not_written(self, chunk: Sequence[tuple[int | None, dict[str, Any]]]) -> set[int]:
        if not chunk:
            return set()
        stored = await self.load(doc[d.ID] for _, doc in chunk)
        return {doc[d.ID] for _, doc in chunk if stored.get(doc[d.ID]) != doc}

    async def write_one(self, base: int | None, doc: dict[str, Any]) -> bool | str:
        """One optimistic write: True when written, False when another writer changed the document
        first, or why the server refused it."""
        try:
            if base is None:
                await self.jobs.insert_one(doc)
                return True
            result = await self.jobs.replace_one({d.ID: doc[d.ID], d.REVISION: base}, doc)
            return result.matched_count == 1
        except DuplicateKeyError:
            return False
        except WriteError as exc:
            why = refusal(exc.code, str(exc))
            if why is None:
                raise
            return why
        except (InvalidDocument, UnicodeEncodeError) as exc:
            return f"the document cannot be sent: {exc}"

    async def converge(
        self,
        numbers: Iterable[int],
        plan: Callable[[int, dict[str, Any] | None], JobFold],
        *,
        attempts: int,
        bases: dict[int, dict[str, Any]] | None = None,
        on_conflict: Callable[[int], None] | None = None,
        on_write: Callable[[float], None] | None = None,
    ) -> tuple[dict[int, JobFold], dict[int, str]]:
        """Plan each job against its stored document and write the plans until every one holds.

        ``plan(number, stored_doc)`` must be pure (rules.fold_job / infer_closure): after a lost race it
        is simply run again on the fresh document. Returns the plans that hold, and the jobs whose
        document the server refused (their plan is dropped: the view keeps what it had) with the reason.
        """
        numbers = list(numbers)
        stored = bases if bases is not None else await self.load(numbers)
        plans = {n: plan(n, stored.get(n)) for n in numbers}
        writes = [(_revision(p.base), p.doc) for p in plans.values() if p.doc is not None]
        started = time.perf_counter()
        outcome = await self.write_bulk(writes) if writes else BulkOutcome()
        if on_write and writes:
            on_write(time.perf_counter() - started)
        refused = outcome.refused
        lost = outcome.unconfirmed
        for _ in range(attempts):
            if not lost:
                break
            fresh = await self.load(lost)
            still: set[int] = set()
            for number in sorted(lost):
                if on_conflict:
                    on_conflict(number)
                plans[number] = again = plan(number, fresh.get(number))
                if again.doc is None:
                    continue
                written = await self.write_one(_revision(again.base), again.doc)
                if isinstance(written, str):
                    refused[number] = written
                elif not written:
                    still.add(number)
            lost = still
        if lost:
            raise WriteConflictError(
                f"{len(lost)} job(s) changed under us {attempts} times in a row (e.g. {min(lost)}); "
                "is another projector writing the same jobs?"
            )
        for number in refused:
            plans.pop(number, None)
        return plans, refused

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


def _statement(base: int | None, doc: dict[str, Any]) -> InsertOne | ReplaceOne:
    return InsertOne(doc) if base is None else ReplaceOne({d.ID: doc[d.ID], d.REVISION: base}, doc)


def _unencodable(doc: dict[str, Any]) -> str | None:
    """Why the driver cannot send ``doc`` as BSON (or None): what BSON cannot hold, or more than the
    16 MiB a document may have on MongoDB and FerretDB alike."""
    try:
        size = len(bson.encode(doc))
    except (InvalidDocument, OverflowError, UnicodeEncodeError) as exc:
        return str(exc)
    return f"{size} bytes of BSON, above the {MAX_DOCUMENT_BYTES} a document may have" if size > MAX_DOCUMENT_BYTES \
        else None


def _revision(doc: dict[str, Any] | None) -> int | None:
    return None if doc is None else doc[d.REVISION]
