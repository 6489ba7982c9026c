"""Shared fixtures. Real servers are session-scoped; every test gets its own topics and database."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from services.common.kafka import AsyncProducer, ensure_topics, standard_topics
from services.common.settings import KafkaSettings, MongoSettings
from tests.infra import ServerHandle, kafka_server, mongo_server


@pytest.fixture(scope="session")
def kafka() -> Iterator[ServerHandle]:
    with kafka_server() as handle:
        yield handle


@pytest.fixture(scope="session")
def mongo() -> Iterator[ServerHandle]:
    with mongo_server() as handle:
        yield handle


@pytest.fixture
def unique_name() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def kafka_settings(kafka: ServerHandle, unique_name: str) -> KafkaSettings:
    """Settings with a topic prefix of this test's own; the standard topics exist (3 partitions)."""
    settings = KafkaSettings(bootstrap_servers=kafka.address, topic_prefix=unique_name, partitions=3)
    ensure_topics(settings, standard_topics(settings))
    return settings


@pytest.fixture
def mongo_settings(mongo: ServerHandle, unique_name: str) -> MongoSettings:
    return MongoSettings(uri=mongo.address, database=unique_name)


@pytest_asyncio.fixture
async def producer(kafka_settings: KafkaSettings) -> AsyncIterator[AsyncProducer]:
    prod = AsyncProducer(kafka_settings)
    await prod.start()
    yield prod
    await prod.stop()
