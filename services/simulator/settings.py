"""Simulator settings: ``JOBSYNC_SIMULATOR_*`` environment variables, overridden by CLI options."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class SimulatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="JOBSYNC_SIMULATOR_", extra="ignore")

    host: str = Field("127.0.0.1", description="Address to listen on.")
    port: int = Field(8070, ge=0, le=65535, description="Port to listen on (0: any free port).")
    api_key: SecretStr = Field(SecretStr("dev-key"), description="The X-API-KEY clients must send.")
    tenant: str = Field("ahsa", min_length=1, description="Tenant segment of the API path.")
    jobs: int = Field(1000, ge=0, description="Open/OnHold jobs seeded at start.")
    rate: float = Field(0.0, ge=0.0, description="Scenario changes per second (0: only on request).")
    seed: int = Field(0, description="Seed of the scenario (the jobs) and of the fault draws.")
    faults: str = Field("", description='Fault settings, e.g. "rate_limit=0.1,server_error=0.05".')
    webhook_url: str | None = Field(None, description="Register a Job Update webhook to this URL at start.")
    webhook_timeout_seconds: float = Field(5.0, gt=0.0, description="Per-delivery timeout of webhook POSTs.")
