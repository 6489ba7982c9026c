"""The projector's settings (environment prefix ``JOBSYNC_PROJECTOR_``); README.md has the table."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# FerretDB 1.24 holds one backend connection per statement of an update command until the whole command
# ends (its pools have 50 PostgreSQL / 100 SQLite connections): a bigger bulk deadlocks the server.
DEFAULT_WRITE_CHUNK = 40


class ProjectorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="JOBSYNC_PROJECTOR_", extra="ignore")

    group_id: str | None = Field(None, description="Consumer group (default <prefix>.projector).")
    group_instance_id: str | None = Field(
        None, description="Static group membership id: a restarted projector takes its partitions back at once."
    )
    session_timeout_ms: int = Field(10_000, ge=1_000, description="How fast a dead projector's partitions move.")
    max_poll_interval_ms: int = Field(
        300_000, ge=10_000, description="Longest pause between polls (MongoDB outage backoff included) before "
        "the group reassigns our partitions."
    )
    batch_size: int = Field(1_000, ge=1, description="Most events consumed, written and committed as one batch.")
    poll_timeout_s: float = Field(0.5, gt=0, description="How long one poll waits for the first event.")
    guard_share: float = Field(
        0.2, ge=0, le=1, description="Closure guard: an inferred closure of more than this share of a partition's "
        "open jobs..."
    )
    guard_floor: int = Field(10, ge=0, description="...and of more than this many jobs waits for an operator.")
    write_attempts: int = Field(
        5, ge=1, description="Re-reads after losing an optimistic-concurrency race before the batch is retried."
    )
    backoff_initial_s: float = Field(0.5, gt=0, description="First wait after MongoDB or Kafka failed a batch.")
    backoff_max_s: float = Field(30.0, gt=0, description="Longest wait between two attempts of a failed batch.")
    hint_inferred_closures: bool = Field(
        True, description="Publish each inferred closure to jobs.hints so a poller in confirm mode fetches the "
        "job and the view gets Trio's own closed version (reason, ModifiedDateUtc).",
    )
    write_chunk: int = Field(
        DEFAULT_WRITE_CHUNK, ge=1,
        description="Statements per bulk write command. FerretDB 1.24 holds a PostgreSQL connection per "
        "statement until the command ends: all writers' chunks together must stay below its pool "
        "(pool_max_conns: 50 by default, 400 in make infra-up). MongoDB takes 1000.",
    )
    mongo_timeout_ms: int = Field(
        5_000, ge=100, description="Server selection and connect timeout of MongoDB calls (socket reads wait at "
        "least 120 s: a big bulk on FerretDB is slow)."
    )
    lag_interval_s: float = Field(5.0, gt=0, description="Seconds between consumer-lag measurements.")
    view_counts_interval_s: float = Field(15.0, gt=0, description="Seconds between counts of the view by status.")
    ops_host: str = Field("0.0.0.0", description="Bind address of /healthz, /readyz, /metrics.")
    ops_port: int = Field(8083, ge=0, le=65535, description="Port of /healthz, /readyz, /metrics (0: none).")
    jobs_collection: str = Field("jobs", description="Collection of the job view.")
    snapshots_collection: str = Field("snapshots", description="Collection of full snapshots' closure decisions.")

    def consumer_group(self, topic_prefix: str) -> str:
        return self.group_id or (f"{topic_prefix}.projector" if topic_prefix else "projector")
