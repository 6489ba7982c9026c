"""Jobs the view's server cannot take as they are, against the real MongoDB-wire server.

Valid JSON that a server cannot store verbatim (NUL, lone surrogates, arrays in arrays) is made storable
in the query copy and kept whole in ``job_json``. A document the server still refuses (a number beyond
double range, which FerretDB refuses and Python reads as infinity; on MongoDB, a validator stands in) is
dead-lettered with the server's reason, and its partition keeps moving.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from pymongo import AsyncMongoClient

from services.common.dlq import parse_dlq_headers
from tests.helpers import consume
from tests.projector_support import Running, feed, numbers_on, observed, projector_settings, publish, view_docs

pytestmark = pytest.mark.integration


async def test_valid_json_no_server_stores_verbatim_is_kept_in_the_view(kafka_settings, mongo_settings, producer):
    number = numbers_on(0, 3, 1)[0]
    event = observed(number, "Open", modified=1, at=10, Notes="a\x00b", **{"Key\x00": 1}, Grid=[[1, 2], [3, [4]]])
    event = replace(event, job_json=event.job_json[:-1] + ',"Half":"x\\ud800y"}')  # a lone surrogate escape
    await publish(producer, kafka_settings, [event])
    async with Running(projector_settings(), kafka_settings, mongo_settings) as running:
        await running.drain()
        assert running.sample("projector_events_total", outcome="dlq") == 0
    doc = (await view_docs(mongo_settings))[number]
    assert doc["job_json"] == event.job_json and json.loads(doc["job_json"])["Grid"] == [[1, 2], [3, [4]]]
    assert (doc["job"]["Notes"], doc["job"]["Half"], doc["job"]["Key\u2400"], doc["job"]["Grid"]) == (
        "a\u2400b", "x\ufffdy", 1, ["[1,2]", "[3,[4]]"])
    [record] = feed(kafka_settings, 1)
    assert record.job_number == number and record.job_json == event.job_json


async def test_a_document_the_server_refuses_is_dead_lettered_and_its_partition_moves_on(
    kafka_settings, mongo_settings, producer
):
    before, refused, after = numbers_on(2, 3, 3)
    bad = observed(refused, "Open", modified=1, at=10)
    bad = replace(bad, job_json=bad.job_json[:-1] + ',"Score":1e999}')  # valid JSON; Python reads inf
    fixed = observed(refused, "Open", modified=2, at=20)
    await publish(producer, kafka_settings, [observed(before, "Open", modified=1, at=10), bad,
                                             observed(after, "Open", modified=1, at=10)])
    async with Running(projector_settings(), kafka_settings, mongo_settings) as running:
        if not await is_ferretdb(mongo_settings.uri):  # MongoDB stores infinity: a validator refuses it instead
            await refuse_scores_over(mongo_settings, 100)
        await running.drain()
        assert running.sample("projector_events_total", outcome="dlq") == 1
        assert running.sample("projector_documents_refused_total", by="event") == 1
        assert running.sample("projector_ready") == 1
        assert set(await view_docs(mongo_settings)) == {before, after}, "the batch went on around the refused job"

        await publish(producer, kafka_settings, [fixed])
        await running.drain()
    view = await view_docs(mongo_settings)
    assert set(view) == {before, refused, after}
    assert view[refused]["job_json"] == fixed.job_json, "the job's next version went in"

    [letter] = consume(kafka_settings, kafka_settings.dlq_topic, 1)
    meta = parse_dlq_headers(letter.headers())
    assert meta.origin == "projector" and meta.original_partition == 2 and meta.original_offset == 1
    assert f"job {refused}" in meta.reason and "refused the document" in meta.reason, meta.reason
    assert letter.key() == str(refused).encode()


async def is_ferretdb(uri: str) -> bool:
    client: AsyncMongoClient = AsyncMongoClient(uri)
    try:
        return "ferretdbVersion" in await client.admin.command("buildInfo")
    finally:
        await client.close()


async def refuse_scores_over(mongo_settings, limit: int) -> None:
    client: AsyncMongoClient = AsyncMongoClient(mongo_settings.uri)
    try:
        await client[mongo_settings.database].command(
            "collMod", "jobs", validator={"job.Score": {"$not": {"$gt": limit}}})
    finally:
        await client.close()
