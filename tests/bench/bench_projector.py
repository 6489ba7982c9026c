"""Projector throughput: events/s applied into the MongoDB-wire server, next to a raw bulk upsert.

A stream of N events over N/5 jobs, in five waves as a day of Trio traffic brings them: a full sync
(every job opened), two rounds of updates (new versions; a quarter of the jobs closed), a late copy of
the second version (stale) and a redelivery of the first (duplicate). Each wave is shuffled (seeded), so
every write after the first wave replaces an existing document. It is published to a fresh topic set,
then one in-process projector consumes it to the end: decode, fold, optimistic-concurrency bulk writes,
change-feed publish (acks=all), offset commits.

The ceiling: the projector's resulting documents written again as plain ``ReplaceOne`` upserts by
``_id`` in ordered bulks of the same size, into a scratch collection with the same indexes on the same
server, in the same run: no reads, no revision check, no feed, no Kafka; expressed as events/s of the same
stream. With ``--quick``, every document the projector wrote, in its order, is replayed that way too (the
per-write ceiling); at full size that replay (60,000 upserts at FerretDB's 20,000-document rate of about
27/s: its updates scan the collection) would take longer than the whole run. A plain ``insert_many`` of the final documents is shown too.

Servers: ``KAFKA_BOOTSTRAP_SERVERS`` / ``MONGODB_URI`` (default: the local ones of ``make infra-up``).
"""

from __future__ import annotations

import os
import random
import time
import uuid
from typing import Any

from pymongo import ReplaceOne

from services.common.kafka import AsyncProducer, ensure_topics, standard_topics
from services.common.logs import configure_logging
from services.common.settings import KafkaSettings, MongoSettings
from services.projector.settings import DEFAULT_WRITE_CHUNK
from services.projector.view import View, mongo_client
from tests.projector_support import Running, observed, projector_settings, publish

FULL = 100_000
QUICK = 10_000
SEED = 20261204


def stream(events: int, seed: int = SEED) -> list:
    jobs = range(1, events // 5 + 1)
    waves: list[list] = [
        [observed(n, "Open", modified=1, positions=1, at=10) for n in jobs],
        [observed(n, "Open", modified=2, positions=1, at=20, Title=f"Updated {n}") for n in jobs],
        [observed(n, "Closed" if n % 4 == 0 else "OnHold", modified=3, positions=0, at=40) for n in jobs],
        [observed(n, "Open", modified=2, positions=3, at=30) for n in jobs],  # older than wave 3: stale
    ]
    waves.append(list(waves[0]))  # the full sync's events again: redeliveries
    rng = random.Random(seed)
    out = []
    for wave in waves:
        rng.shuffle(wave)
        out += wave
    return out


class WriteLog:
    """Records every document the projector's view writes, in order (the ceiling replays them)."""

    def __init__(self, view: View) -> None:
        self.docs: list[dict[str, Any]] = []
        bulk, one = view.write_bulk, view.write_one

        async def write_bulk(writes):
            self.docs.extend(doc for _, doc in writes)
            return await bulk(writes)

        async def write_one(base, doc):
            self.docs.append(doc)
            return await one(base, doc)

        view.write_bulk, view.write_one = write_bulk, write_one  # type: ignore[method-assign]


async def main(args) -> list[tuple[str, float, str, str]]:
    configure_logging("console", "WARNING")
    size = QUICK if getattr(args, "quick", False) else FULL
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    kafka = KafkaSettings(bootstrap_servers=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092"),
                          topic_prefix=prefix, partitions=3)
    mongo = MongoSettings(uri=os.environ.get("MONGODB_URI", "mongodb://127.0.0.1:27017/"), database=prefix)
    ensure_topics(kafka, standard_topics(kafka))
    events = stream(size)

    producer = AsyncProducer(kafka, **{"linger.ms": 20})
    await producer.start()
    started = time.perf_counter()
    for i in range(0, len(events), 5_000):
        await publish(producer, kafka, events[i : i + 5_000])
    publish_s = time.perf_counter() - started
    await producer.stop()

    client = mongo_client(mongo.uri, 600_000)
    try:
        async with Running(projector_settings(batch_size=1_000, poll_timeout_s=0.5), kafka, mongo) as running:
            writes = WriteLog(running.projector.view)
            started = time.perf_counter()
            await running.drain(timeout=4 * 3_600)
            projector_s = time.perf_counter() - started
            feed_records = sum(running.sample("projector_feed_records_total", kind=k)
                               for k in ("opened", "updated", "closed", "reopened"))
            conflicts = running.sample("projector_write_conflicts_total")

        # The ceiling: the same documents as plain upserts by _id.
        final = [doc async for doc in client[mongo.database]["jobs"].find({})]
        upsert_s = await upsert_all(client, mongo.database, "raw_upsert", final)
        replay_s = await upsert_all(client, mongo.database, "raw_replay", writes.docs) if size <= QUICK else None
        inserts = client[mongo.database]["raw_insert"]
        started = time.perf_counter()
        for i in range(0, len(final), 1_000):
            await inserts.insert_many(final[i : i + 1_000], ordered=True)
        insert_s = time.perf_counter() - started
        await client.drop_database(mongo.database)
    finally:
        await client.close()

    note = f"{size} events, {size // 5} jobs, 3 partitions"
    written = len(writes.docs)
    rows = [
        ("publish to jobs.events", size / publish_s, "events/s", note),
        ("projector end to end", size / projector_s, "events/s",
         f"{note}; {projector_s:.1f}s; {written} document writes ({written / projector_s:.1f}/s); "
         f"{int(feed_records)} feed records; {int(conflicts)} write conflicts"),
        ("raw bulk upsert of the final view (ceiling)", size / upsert_s, "events/s",
         f"{len(final)} ReplaceOne upserts in bulks of {DEFAULT_WRITE_CHUNK}: {upsert_s:.1f}s, "
         f"{len(final) / upsert_s:.1f} docs/s; projector at {upsert_s / projector_s:.0%} of it"),
    ]
    if replay_s is not None:
        rows.append(("raw bulk upsert of every write (per-write ceiling)", size / replay_s, "events/s",
                     f"{written} ReplaceOne upserts in the projector's order: {replay_s:.1f}s, "
                     f"{written / replay_s:.1f} docs/s; projector at {replay_s / projector_s:.0%} of it"))
    rows.append(("raw bulk insert of the final view", size / insert_s, "events/s",
                 f"{len(final)} documents as insert_many of 1000: {insert_s:.1f}s, {len(final) / insert_s:.0f} docs/s"))
    return rows


async def upsert_all(client, database: str, collection: str, docs: list[dict[str, Any]]) -> float:
    """Seconds to write ``docs`` as plain upserts by _id into a new collection with the view's indexes."""
    scratch = View(client, database, jobs=collection, snapshots=f"{collection}_snapshots")
    await scratch.ensure_indexes()
    started = time.perf_counter()
    for i in range(0, len(docs), DEFAULT_WRITE_CHUNK):  # bigger update commands deadlock FerretDB 1.24
        chunk = docs[i : i + DEFAULT_WRITE_CHUNK]
        await scratch.jobs.bulk_write([ReplaceOne({"_id": d["_id"]}, d, upsert=True) for d in chunk], ordered=True)
    return time.perf_counter() - started
