"""Projector throughput: events/s applied into the MongoDB-wire server, next to a raw bulk upsert.

A stream of N events (N/5 jobs, 5 observations each: versions out of order, a redelivery, positions
changes) is published to a fresh topic set, then one in-process projector consumes it to the end:
decode, fold, optimistic-concurrency bulk writes, change-feed publish (acks=all), clearing of the feed
marks, offset commits. The ceiling is the projector's resulting documents written again as plain
``ReplaceOne`` upserts in ordered bulks of 1,000 (and, for reference, as plain inserts) into scratch
collections of the same server in the same run, expressed as events/s of the same stream.

Servers: ``KAFKA_BOOTSTRAP_SERVERS`` / ``MONGODB_URI`` (default: the local ones of ``make infra-up``).
"""

from __future__ import annotations

import os
import time
import uuid

from pymongo import ReplaceOne

from services.common.kafka import AsyncProducer, ensure_topics, standard_topics
from services.common.settings import KafkaSettings, MongoSettings
from services.projector.settings import DEFAULT_WRITE_CHUNK
from services.projector.view import mongo_client
from tests.projector_support import Running, observed, projector_settings, publish

FULL = 100_000
QUICK = 10_000


def stream(events: int) -> list:
    out = []
    for n in range(1, events // 5 + 1):
        v1 = observed(n, "Open", modified=1, positions=1, at=10)
        v2 = observed(n, "Open", modified=2, positions=1, at=20, Title=f"Updated {n}")
        v2b = observed(n, "Open", modified=2, positions=3, at=30)
        v3 = observed(n, "Closed" if n % 4 == 0 else "OnHold", modified=3, positions=0, at=40)
        out += [v1, v2, v3, v2b, v1]  # v2b arrives after v3 (stale), v1 is a redelivery
    return out


async def main(args) -> list[tuple[str, float, str, str]]:
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
            started = time.perf_counter()
            await running.drain(timeout=3_600)
            projector_s = time.perf_counter() - started
            feed_records = sum(running.sample("projector_feed_records_total", kind=k)
                               for k in ("opened", "updated", "closed", "reopened"))
            conflicts = running.sample("projector_write_conflicts_total")

        # The ceilings: the projector's final documents written again into a scratch collection of the
        # same server, as plain ReplaceOne upserts and as plain inserts: no reads, no feed, no Kafka.
        view = [doc async for doc in client[mongo.database]["jobs"].find({})]
        upserts = client[mongo.database]["raw_upsert"]
        started = time.perf_counter()
        for i in range(0, len(view), DEFAULT_WRITE_CHUNK):  # bigger update commands deadlock FerretDB 1.24
            chunk = view[i : i + DEFAULT_WRITE_CHUNK]
            await upserts.bulk_write([ReplaceOne({"_id": d["_id"]}, d, upsert=True) for d in chunk], ordered=True)
        upsert_s = time.perf_counter() - started
        inserts = client[mongo.database]["raw_insert"]
        started = time.perf_counter()
        for i in range(0, len(view), 1_000):
            await inserts.insert_many(view[i : i + 1_000], ordered=True)
        insert_s = time.perf_counter() - started
        await client.drop_database(mongo.database)
    finally:
        await client.close()

    note = f"{size} events, {size // 5} jobs, 3 partitions"
    return [
        ("publish to jobs.events", size / publish_s, "events/s", note),
        ("projector end to end", size / projector_s, "events/s",
         f"{note}; {projector_s:.1f}s; {int(feed_records)} feed records; {int(conflicts)} write conflicts"),
        ("raw bulk upsert of the view (ceiling)", size / upsert_s, "events/s",
         f"{len(view)} final documents as ReplaceOne upserts in bulks of {DEFAULT_WRITE_CHUNK}: {upsert_s:.1f}s, "
         f"{len(view) / upsert_s:.0f} docs/s"),
        ("raw bulk insert of the view", size / insert_s, "events/s",
         f"{len(view)} final documents as insert_many of 1000: {insert_s:.1f}s, {len(view) / insert_s:.0f} docs/s"),
    ]
