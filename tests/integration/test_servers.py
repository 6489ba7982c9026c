"""The foundation against real servers: produce to and consume from a real Kafka broker with the
project's producer, and write and read through a real MongoDB-wire server with AsyncMongoClient."""

from __future__ import annotations

import asyncio

import pytest
from pymongo import AsyncMongoClient

from services.common.codec import job_event_codec
from services.common.events import Source, job_observed
from services.common.kafka import AsyncProducer, ensure_topics, murmur2_partition, standard_topics
from services.common.settings import KafkaSettings, MongoSettings
from tests.helpers import consume

pytestmark = pytest.mark.integration


async def test_events_produced_with_acks_arrive_keyed_and_decodable(
    kafka_settings: KafkaSettings, producer: AsyncProducer
) -> None:
    codec = job_event_codec()
    events = [job_observed({"Number": n, "JobStatus": "Open", "X": n}, Source.WEBHOOK) for n in range(1, 21)]
    delivered = [
        await producer.send(kafka_settings.events_topic, codec.encode(e), e.key) for e in events
    ]
    assert all(d.offset >= 0 for d in delivered)
    messages = consume(kafka_settings, kafka_settings.events_topic, expected=20)
    assert len(messages) == 20
    by_key = {m.key(): m for m in messages}
    for event in events:
        msg = by_key[event.key]
        assert codec.decode(msg.value()) == event
        # The Java-compatible partitioner: the same key always lands where a Java client would put it.
        assert msg.partition() == murmur2_partition(event.key, 3)


def test_ensure_topics_is_idempotent(kafka_settings: KafkaSettings) -> None:
    assert ensure_topics(kafka_settings, standard_topics(kafka_settings)) == []


async def test_mongo_wire_server_upserts_and_reads_back(mongo_settings: MongoSettings) -> None:
    client: AsyncMongoClient = AsyncMongoClient(mongo_settings.uri, serverSelectionTimeoutMS=5000)
    try:
        jobs = client[mongo_settings.database]["jobs"]
        await jobs.create_index("number", unique=True)
        await jobs.update_one({"number": 1}, {"$set": {"status": "Open"}}, upsert=True)
        await jobs.update_one({"number": 1}, {"$set": {"status": "Closed"}}, upsert=True)
        docs = await jobs.find({}, {"_id": 0}).to_list()
        assert docs == [{"number": 1, "status": "Closed"}]
    finally:
        await client.close()


async def test_mongo_wire_server_takes_concurrent_bulks_of_the_projectors_size(mongo_settings: MongoSettings) -> None:
    """FerretDB 1.24 holds a backend connection per statement of an update command until the command ends;
    with its default pool of 50, two writers' bulks of 40 waited on each other for good. The local server's
    pool is sized for ten such writers (services/localinfra/servers.py, FERRETDB_POOL)."""
    from pymongo import ReplaceOne

    from services.projector.settings import DEFAULT_WRITE_CHUNK

    writers, rounds = 4, 3

    async def write(client: AsyncMongoClient, writer: int) -> int:
        jobs = client[mongo_settings.database]["jobs"]
        done = 0
        for r in range(rounds):
            ops = [ReplaceOne({"_id": writer * 10_000 + i}, {"_id": writer * 10_000 + i, "round": r}, upsert=True)
                   for i in range(DEFAULT_WRITE_CHUNK)]
            done += (await jobs.bulk_write(ops, ordered=True)).upserted_count
        return done

    clients = [AsyncMongoClient(mongo_settings.uri, serverSelectionTimeoutMS=5000, socketTimeoutMS=60_000)
               for _ in range(writers)]
    try:
        done = await asyncio.wait_for(asyncio.gather(*(write(c, w) for w, c in enumerate(clients))), timeout=90)
        assert done == [DEFAULT_WRITE_CHUNK] * writers
        assert await clients[0][mongo_settings.database]["jobs"].count_documents({"round": rounds - 1}) == (
            writers * DEFAULT_WRITE_CHUNK)
    finally:
        for client in clients:
            await client.close()
