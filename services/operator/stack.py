"""The whole system as child processes on one machine: the simulator (or a real Trio tenant), the ingress,
the poller(s) and the projector(s), wired to one Kafka and one MongoDB-wire server.

``make run`` and the e2e tests both use this, so what the tests prove is what a newcomer runs.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path

from services.localinfra.servers import free_port
from services.operator.processes import ManagedProcess


@dataclass
class StackConfig:
    kafka_bootstrap: str
    mongo_uri: str
    log_dir: Path
    mongo_database: str = "trio_jobsync"
    topic_prefix: str = "trio"
    partitions: int = 6
    # Upstream: the embedded simulator unless trio_base_url is given (a real tenant, with its API key).
    trio_base_url: str | None = None
    trio_api_key: str = "dev-key"
    simulator_jobs: int = 2000
    simulator_rate: float = 5.0
    simulator_seed: int = 1
    simulator_faults: str = ""
    # Poller cadence; a real deployment keeps the defaults of the poller's settings.
    incremental_interval_s: float = 60.0
    full_interval_s: float = 3600.0
    confirm_inferred_closures: bool = True
    # Ports: 0 picks a free one.
    simulator_port: int = 0
    ingress_port: int = 0
    poller_port: int = 0
    projector_port: int = 0
    host: str = "127.0.0.1"
    path_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    admin_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    log_format: str = "json"
    extra_env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("simulator_port", "ingress_port", "poller_port", "projector_port"):
            if getattr(self, name) == 0:
                setattr(self, name, free_port())

    @property
    def uses_simulator(self) -> bool:
        return self.trio_base_url is None

    @property
    def simulator_url(self) -> str:
        return f"http://{self.host}:{self.simulator_port}"

    @property
    def base_url(self) -> str:
        return self.trio_base_url or f"{self.simulator_url}/ahsa/api/v3"

    @property
    def webhook_url(self) -> str:
        return f"http://{self.host}:{self.ingress_port}/trio/webhooks/jobs/{self.path_secret}"

    @property
    def ingress_url(self) -> str:
        return f"http://{self.host}:{self.ingress_port}"

    @property
    def poller_url(self) -> str:
        return f"http://{self.host}:{self.poller_port}"

    @property
    def projector_url(self) -> str:
        return f"http://{self.host}:{self.projector_port}"

    def common_env(self) -> dict[str, str]:
        return {
            "JOBSYNC_KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap,
            "JOBSYNC_KAFKA_TOPIC_PREFIX": self.topic_prefix,
            "JOBSYNC_KAFKA_PARTITIONS": str(self.partitions),
            "JOBSYNC_MONGODB_URI": self.mongo_uri,
            "JOBSYNC_MONGODB_DATABASE": self.mongo_database,
            "JOBSYNC_LOG_FORMAT": self.log_format,
            **self.extra_env,
        }


class Stack:
    """Builds and holds the managed processes of one StackConfig."""

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.processes: dict[str, ManagedProcess] = {}

    def _process(self, name: str, args: list[str], env: dict[str, str], ready_url: str | None) -> ManagedProcess:
        process = ManagedProcess(
            name, args, {**self.config.common_env(), **env}, self.config.log_dir / f"{name}.log", ready_url
        )
        self.processes[name] = process
        return process

    def simulator(self) -> ManagedProcess:
        c = self.config
        process = self._process(
            "simulator",
            ["-m", "services.simulator", "--host", c.host, "--port", str(c.simulator_port), "--api-key",
             c.trio_api_key, "--jobs", str(c.simulator_jobs), "--rate", str(c.simulator_rate), "--seed",
             str(c.simulator_seed), "--faults", c.simulator_faults, "--webhook-url", c.webhook_url],
            {},
            f"{c.simulator_url}/_sim/faults",
        )
        process.ready_headers = {"X-API-KEY": c.trio_api_key}
        return process

    def ingress(self) -> ManagedProcess:
        c = self.config
        return self._process(
            "ingress",
            ["-m", "services.ingress"],
            {
                "JOBSYNC_INGRESS_HOST": c.host,
                "JOBSYNC_INGRESS_PORT": str(c.ingress_port),
                "JOBSYNC_INGRESS_PATH_SECRETS": c.path_secret,
            },
            f"{c.ingress_url}/healthz",
        )

    def poller(self, name: str = "poller", port: int | None = None) -> ManagedProcess:
        c = self.config
        port = port or c.poller_port
        return self._process(
            name,
            ["-m", "services.poller"],
            {
                "JOBSYNC_POLLER_BASE_URL": c.base_url,
                "JOBSYNC_POLLER_API_KEY": c.trio_api_key,
                "JOBSYNC_POLLER_OPS_HOST": c.host,
                "JOBSYNC_POLLER_OPS_PORT": str(port),
                "JOBSYNC_POLLER_ADMIN_TOKEN": c.admin_token,
                "JOBSYNC_POLLER_INCREMENTAL_INTERVAL_S": str(c.incremental_interval_s),
                "JOBSYNC_POLLER_FULL_INTERVAL_S": str(c.full_interval_s),
                "JOBSYNC_POLLER_CONFIRM_MODE": "true" if c.confirm_inferred_closures else "false",
                "JOBSYNC_POLLER_WEBHOOK_URL": c.webhook_url,
            },
            f"http://{c.host}:{port}/healthz",
        )

    def projector(self, name: str = "projector", port: int | None = None) -> ManagedProcess:
        c = self.config
        port = port or c.projector_port
        return self._process(
            name,
            ["-m", "services.projector"],
            {
                "JOBSYNC_PROJECTOR_OPS_HOST": c.host,
                "JOBSYNC_PROJECTOR_OPS_PORT": str(port),
                "JOBSYNC_PROJECTOR_HINT_INFERRED_CLOSURES": "true" if c.confirm_inferred_closures else "false",
            },
            f"http://{c.host}:{port}/healthz",
        )

    def start_all(self) -> None:
        """Start in dependency order: the ingress before the simulator that posts to it."""
        self.ingress().start()
        self.projector().start()
        if self.config.uses_simulator:
            self.simulator().start()
        self.poller().start()

    def stop_all(self) -> None:
        for process in reversed(list(self.processes.values())):
            process.stop()
