"""The view's server alone: what one optimistic write and one batch read cost as the collection grows.

Documents of the view's size (about 1.3 KB) are inserted up to each size; then 400 revision-filtered
``ReplaceOne`` statements (the projector's write) and 400 plain upserts by ``_id`` (the ceiling's) in
ordered bulks of the projector's chunk, and one ``find`` of 1,000 ``_id`` with ``$in`` (the projector's
batch read). On MongoDB all three use the ``_id`` index and stay flat; FerretDB 1.24 scans.

Server: ``MONGODB_URI`` (default: the local one of ``make infra-up``).
"""

from __future__ import annotations

import os
import time
import uuid

from pymongo import ReplaceOne

from services.projector.settings import DEFAULT_WRITE_CHUNK
from services.projector.view import mongo_client

FULL = (2_000, 10_000, 20_000)
QUICK = (1_000, 4_000)
STATEMENTS = 400


async def main(args) -> list[tuple[str, float, str, str]]:
    sizes = QUICK if getattr(args, "quick", False) else FULL
    client = mongo_client(os.environ.get("MONGODB_URI", "mongodb://127.0.0.1:27017/"), 600_000)
    database = f"benchview{uuid.uuid4().hex[:8]}"
    jobs = client[database]["jobs"]
    pad = "x" * 1_200
    rows: list[tuple[str, float, str, str]] = []
    try:
        have = 0
        for size in sizes:
            docs = [doc(n, pad, n) for n in range(have, size)]
            for i in range(0, len(docs), 1_000):
                await jobs.insert_many(docs[i : i + 1_000])
            have = size
            started = time.perf_counter()
            for i in range(0, STATEMENTS, DEFAULT_WRITE_CHUNK):
                await jobs.bulk_write([ReplaceOne({"_id": n, "revision": 1}, doc(n, pad, -n))
                                       for n in range(i, i + DEFAULT_WRITE_CHUNK)], ordered=True)
            occ_s = time.perf_counter() - started
            started = time.perf_counter()
            for i in range(0, STATEMENTS, DEFAULT_WRITE_CHUNK):
                await jobs.bulk_write([ReplaceOne({"_id": n}, doc(n, pad, n), upsert=True)
                                       for n in range(i, i + DEFAULT_WRITE_CHUNK)], ordered=True)
            upsert_s = time.perf_counter() - started
            started = time.perf_counter()
            found = await jobs.find({"_id": {"$in": list(range(1_000))}}).to_list()
            find_s = time.perf_counter() - started
            assert len(found) == min(1_000, size)
            note = f"collection of {size} documents"
            rows += [
                (f"revision-filtered replace @{size}", STATEMENTS / occ_s, "writes/s", note),
                (f"upsert by _id @{size}", STATEMENTS / upsert_s, "writes/s", note),
                (f"find 1000 _id with $in @{size}", find_s, "s", note),
            ]
    finally:
        await client.drop_database(database)
        await client.close()
    return rows


def doc(number: int, pad: str, value: int) -> dict:
    return {"_id": number, "revision": 1, "pad": pad, "n": value}
