"""The poller's settings (environment prefix ``JOBSYNC_POLLER_``); see README.md for the table."""

from __future__ import annotations

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.errors import ConfigurationError

TENANT_PLACEHOLDER = "{tenant}"


class PollerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="JOBSYNC_POLLER_", extra="ignore")

    # --- Trio API
    base_url: str = Field(
        "https://api.triovms.com/{tenant}/api/v3",
        description="Trio API base URL; '{tenant}' is replaced by JOBSYNC_POLLER_TENANT. "
        "UAT: https://api-uat.triovms.com/{tenant}/api/v3.",
    )
    tenant: str | None = Field(None, description="Trio tenant (the path segment before /api/v3), e.g. ahsa.")
    api_key: SecretStr | None = Field(None, description="Trio API key, sent as X-API-KEY. Never logged.")
    request_timeout_s: float = Field(120.0, gt=0, description="Read timeout of one API call (a full listing is big).")
    connect_timeout_s: float = Field(10.0, gt=0, description="Connect timeout of one API call.")
    max_attempts: int = Field(6, ge=1, description="Attempts per API call (first try included) before giving up.")
    backoff_base_s: float = Field(0.5, gt=0, description="First retry delay; doubles each attempt (full jitter).")
    backoff_max_s: float = Field(30.0, gt=0, description="Largest delay between two attempts.")
    sync_budget_s: float = Field(900.0, gt=0, description="Bounded total time of one sync, retries included.")

    # --- Syncs
    incremental_interval_s: float = Field(300.0, gt=0, description="Seconds between incremental syncs.")
    full_interval_s: float = Field(86_400.0, gt=0, description="Seconds between full syncs.")
    failed_full_retry_s: float = Field(
        900.0, gt=0, description="After a failed full sync, wait this long before trying the full sync again."
    )
    overlap_s: float = Field(
        120.0,
        gt=0,
        description="Incremental syncs ask for changes after (cursor - overlap): covers clock skew and changes "
        "committed while the previous sync ran. Must be > 0 (Trio's modifiedDate is strictly-after).",
    )
    checkpoint_name: str = Field("trio-jobs", description="Key of the sync checkpoint in the poller.state topic.")
    publish_window: int = Field(2_000, ge=1, description="Events in flight to Kafka at once during a sync.")
    suspicious_drop_share: float = Field(
        0.3,
        gt=0,
        le=1,
        description="A full listing smaller than the previous one by more than this share is marked suspicious.",
    )
    suspicious_min_drop: int = Field(
        10, ge=0, description="...and by at least this many jobs (so 3 -> 1 open jobs is not suspicious)."
    )
    dlq_max_records: int = Field(50, ge=0, description="Bad records of one sync kept in jobs.dlq for diagnosis.")
    dlq_max_bytes: int = Field(256_000, ge=1024, description="Largest body kept per DLQ record (the rest is cut).")
    shutdown_grace_s: float = Field(
        20.0, ge=0, description="On SIGTERM, how long a running sync may take to finish before it is abandoned."
    )

    # --- Confirm mode
    confirm_mode: bool = Field(False, description="Consume jobs.hints and publish GET /Job/{number} as poll_single.")
    confirm_group_id: str | None = Field(
        None, description="Consumer group of the hints consumer (default <prefix>.poller-confirm)."
    )

    # --- Webhook registration health
    webhook_check_interval_s: float = Field(600.0, gt=0, description="Seconds between GET /Webhooks checks.")
    webhook_url: SecretStr | None = Field(
        None, description="Our Job Update webhook URL (it holds the ingress path secret: never logged)."
    )
    webhook_name: str | None = Field(None, description="Our webhook registration's Name (matched when no URL is set).")
    webhook_auto_repair: bool = Field(
        False, description="Re-activate an inactive registration, or create a missing one (needs WEBHOOK_URL)."
    )

    # --- Election, ops, admin
    group_id: str | None = Field(None, description="Election consumer group (default <prefix>.poller).")
    session_timeout_ms: int = Field(6_000, ge=1_000, description="How fast a dead leader is replaced.")
    ops_host: str = Field("0.0.0.0", description="Bind address of /healthz, /readyz, /metrics and /admin.")
    ops_port: int = Field(8082, ge=0, le=65535, description="Port of the ops and admin HTTP server.")
    admin_token: SecretStr | None = Field(
        None, description="Bearer token for POST /admin/resync; admin endpoints answer 403 when unset."
    )

    @model_validator(mode="after")
    def _check(self) -> PollerSettings:
        if self.backoff_max_s < self.backoff_base_s:
            raise ValueError("backoff_max_s must be >= backoff_base_s")
        return self

    def api_base_url(self) -> str:
        """The tenant's base URL, or ConfigurationError naming the setting to fix."""
        url = self.base_url.rstrip("/")
        if TENANT_PLACEHOLDER in url:
            if not self.tenant:
                raise ConfigurationError(
                    "JOBSYNC_POLLER_BASE_URL contains '{tenant}' but JOBSYNC_POLLER_TENANT is not set"
                )
            url = url.replace(TENANT_PLACEHOLDER, self.tenant)
        if not url.startswith(("http://", "https://")):
            raise ConfigurationError(f"JOBSYNC_POLLER_BASE_URL must be an http(s) URL, got {url!r}")
        return url

    def require_api_key(self) -> SecretStr:
        if self.api_key is None or not self.api_key.get_secret_value():
            raise ConfigurationError("JOBSYNC_POLLER_API_KEY is not set: the poller needs the agency's Trio API key")
        return self.api_key
