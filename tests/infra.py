"""Where the tests' real servers come from, in this order:

1. the environment: ``KAFKA_BOOTSTRAP_SERVERS`` / ``MONGODB_URI`` (e.g. servers from ``make infra-up``);
2. testcontainers, when a Docker engine answers;
3. local processes (Kafka KRaft from Maven jars, FerretDB), started here on free ports and stopped at the end.

Only (3) can be stopped and restarted by a test (fault tests); ``restartable`` says so.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from services.localinfra.servers import FerretServer, KafkaServer, LocalServer, free_port


@dataclass
class ServerHandle:
    address: str
    local: LocalServer | None = None

    @property
    def restartable(self) -> bool:
        return self.local is not None

    def stop(self, *, kill: bool = False) -> None:
        assert self.local is not None, "only a server started by the fixture can be stopped"
        self.local.stop(kill=kill)

    def start(self) -> None:
        assert self.local is not None, "only a server started by the fixture can be started"
        self.local.start()


def docker_answers() -> bool:
    if os.environ.get("JOBSYNC_TESTS_NO_DOCKER"):
        return False
    try:
        import docker

        client = docker.from_env(timeout=3)
        return bool(client.ping())
    except Exception:
        return False


@contextlib.contextmanager
def kafka_server() -> Iterator[ServerHandle]:
    if address := os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield ServerHandle(address)
    elif docker_answers():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer().with_kraft() as container:
            yield ServerHandle(container.get_bootstrap_server())
    else:
        with tempfile.TemporaryDirectory(prefix="jobsync-kafka-") as tmp:
            server = KafkaServer("kafka", Path(tmp), free_port(), controller_port=free_port(), heap="384m")
            server.start()
            try:
                yield ServerHandle(server.bootstrap, server)
            finally:
                server.stop()


@contextlib.contextmanager
def mongo_server() -> Iterator[ServerHandle]:
    if address := os.environ.get("MONGODB_URI"):
        yield ServerHandle(address)
    elif docker_answers():
        from testcontainers.mongodb import MongoDbContainer

        with MongoDbContainer("mongo:7") as container:
            yield ServerHandle(container.get_connection_url())
    else:
        with tempfile.TemporaryDirectory(prefix="jobsync-ferretdb-") as tmp:
            server = FerretServer("ferretdb", Path(tmp), free_port())
            server.start()
            try:
                yield ServerHandle(server.uri, server)
            finally:
                server.stop()
