"""The ingress's settings, from ``JOBSYNC_INGRESS_*`` environment variables (table in README.md).

Kafka and logging have their own shared groups (``JOBSYNC_KAFKA_*``, ``JOBSYNC_LOG_*``).
List settings take a JSON array or a comma-separated string.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from services.ingress.validation import WebhookPolicy, decode_signing_secret, parse_networks

MIN_PATH_SECRET_CHARS = 32
# The characters a path secret may use: URL-safe without escaping, so Trio's stored URL is exact.
_PATH_SECRET_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")


def _split(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


class IngressSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="JOBSYNC_INGRESS_", extra="ignore")

    host: str = Field("0.0.0.0", description="Address to listen on.")
    port: int = Field(8080, ge=0, le=65535, description="Port to listen on.")
    base_path: str = Field(
        "/trio/webhooks/jobs", description="Path before the secret: the webhook URL is <base_path>/<secret>."
    )
    path_secrets: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Accepted URL secrets (at least one, each >= 32 URL-safe characters). Several at once "
        "allow rotation: add the new one, re-register the URL with Trio, then remove the old one.",
    )
    allowed_networks: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Source IPs/CIDR blocks allowed to post; empty allows any source."
    )
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Proxies (IPs/CIDR) whose X-Forwarded-For is believed; empty means the TCP peer is the source.",
    )
    signature_required: bool = Field(
        False, description="Require a Standard Webhooks HMAC-SHA256 signature (only with a signing gateway: "
        "Trio itself does not sign).",
    )
    signing_secrets: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list, description="Signing secrets (whsec_<base64>); any one verifying is enough."
    )
    signature_tolerance_seconds: int = Field(
        300, ge=1, description="Replay window: how far webhook-timestamp may be from now."
    )
    max_body_bytes: int = Field(262_144, ge=1024, description="Largest body accepted; larger gets 413.")
    dlq_body_prefix_bytes: int = Field(
        65_536, ge=0, description="How much of an oversized body the dead letter keeps."
    )
    confirm_mode: bool = Field(
        False, description="Treat webhooks as hints: publish to jobs.hints for the poller to confirm with "
        "GET /api/v3/Job/{number}, instead of to jobs.events.",
    )
    max_in_flight: int = Field(512, ge=1, description="Requests handled at once; more get 503 (bounds memory).")
    retry_after_seconds: int = Field(5, ge=1, description="Retry-After sent with a 503.")
    shutdown_timeout_seconds: float = Field(
        30.0, ge=0, description="On SIGTERM, how long in-flight requests may take to finish."
    )

    @field_validator("path_secrets", "allowed_networks", "trusted_proxies", "signing_secrets", mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _split(value)

    @field_validator("base_path")
    @classmethod
    def _base_path(cls, value: str) -> str:
        path = "/" + value.strip("/")
        if "{" in path or "}" in path:
            raise ValueError("must be a plain path without '{' or '}'")
        return path.rstrip("/") or ""

    @field_validator("path_secrets")
    @classmethod
    def _path_secrets(cls, secrets: list[SecretStr]) -> list[SecretStr]:
        if not secrets:
            raise ValueError(
                "at least one secret is required (generate one with: python -c "
                "'import secrets; print(secrets.token_urlsafe(32))')"
            )
        for index, secret in enumerate(secrets):
            value = secret.get_secret_value()
            # the messages name the position, never the value
            if len(value) < MIN_PATH_SECRET_CHARS:
                raise ValueError(f"secret #{index + 1} is shorter than {MIN_PATH_SECRET_CHARS} characters")
            if not set(value) <= _PATH_SECRET_ALPHABET:
                raise ValueError(f"secret #{index + 1} has characters other than A-Z a-z 0-9 - _ . ~")
        return secrets

    @field_validator("allowed_networks", "trusted_proxies")
    @classmethod
    def _networks(cls, values: list[str]) -> list[str]:
        parse_networks(values)
        return values

    @field_validator("signing_secrets")
    @classmethod
    def _signing_secrets(cls, secrets: list[SecretStr]) -> list[SecretStr]:
        for index, secret in enumerate(secrets):
            try:
                decode_signing_secret(secret.get_secret_value())
            except ValueError as exc:
                raise ValueError(f"signing secret #{index + 1}: {exc}") from None
        return secrets

    @model_validator(mode="after")
    def _signature_keys_present(self) -> IngressSettings:
        if self.signature_required and not self.signing_secrets:
            raise ValueError("signature_required is on but no signing_secrets are set")
        return self

    def policy(self) -> WebhookPolicy:
        """The validation layers, configured from these settings."""
        return WebhookPolicy(
            path_secrets=tuple(s.get_secret_value() for s in self.path_secrets),
            allowed_networks=parse_networks(self.allowed_networks),
            trusted_proxies=parse_networks(self.trusted_proxies),
            signing_keys=tuple(decode_signing_secret(s.get_secret_value()) for s in self.signing_secrets),
            signature_required=self.signature_required,
            signature_tolerance_seconds=self.signature_tolerance_seconds,
            max_body_bytes=self.max_body_bytes,
        )
