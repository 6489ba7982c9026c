"""Typed settings from the environment.

Shared groups have their own prefix (``JOBSYNC_KAFKA_``, ``JOBSYNC_LOG_``, ``JOBSYNC_MONGODB_``);
each service adds one of its own (``JOBSYNC_INGRESS_``, ``JOBSYNC_POLLER_``, ``JOBSYNC_PROJECTOR_``).
Secrets are ``SecretStr`` so they never print.
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.errors import ConfigurationError


class KafkaSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="JOBSYNC_KAFKA_", extra="ignore")

    bootstrap_servers: str = Field("127.0.0.1:19092", description="Kafka bootstrap servers (host:port,...).")
    topic_prefix: str = Field("trio", description="Prefix of every topic name: <prefix>.jobs.events, ...")
    partitions: int = Field(6, ge=1, description="Partitions of jobs.events / jobs.state when we create them.")
    replication_factor: int = Field(1, ge=1, description="Replication factor of topics we create.")
    create_topics: bool = Field(True, description="Create missing topics at start.")
    delivery_timeout_ms: int = Field(10_000, ge=1000, description="How long a produce may wait for acks.")
    queue_max_messages: int = Field(10_000, ge=1, description="Local producer queue bound (back-pressure).")
    extra_config: dict[str, str] = Field(
        default_factory=dict, description="Extra librdkafka settings as JSON, e.g. security settings."
    )

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}.{name}" if self.topic_prefix else name

    @property
    def events_topic(self) -> str:
        return self.topic("jobs.events")

    @property
    def state_topic(self) -> str:
        return self.topic("jobs.state")

    @property
    def dlq_topic(self) -> str:
        return self.topic("jobs.dlq")

    @property
    def hints_topic(self) -> str:
        return self.topic("jobs.hints")

    @property
    def poller_state_topic(self) -> str:
        return self.topic("poller.state")


class MongoSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="JOBSYNC_MONGODB_", extra="ignore")

    uri: str = Field("mongodb://127.0.0.1:27017/", description="MongoDB (or FerretDB) connection URI.")
    database: str = Field("trio_jobsync", description="Database of the job view.")


class LogSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="JOBSYNC_LOG_", extra="ignore")

    format: Literal["json", "console"] = Field("json", description="json for machines, console for people.")
    level: str = Field("INFO", description="Log level.")


S = TypeVar("S", bound=BaseSettings)


def load(settings_cls: type[S], **overrides: Any) -> S:
    """Build settings once, turning pydantic's error into one that names the environment variables."""
    try:
        return settings_cls(**overrides)
    except ValidationError as exc:
        prefix = settings_cls.model_config.get("env_prefix", "")
        problems = "; ".join(
            f"{prefix}{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigurationError(f"invalid configuration: {problems}") from exc
