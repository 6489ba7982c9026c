"""Webhook validation as pure functions of the request's data (no aiohttp, no Kafka).

Trio does not sign its webhooks, so authenticity is built from what the receiver controls, in layers:

1. a long random secret in the registered URL, compared in constant time against every configured
   secret (several at once, so one can be rotated without downtime) -> ``unknown_secret``;
2. an optional source IP/CIDR allow list; ``X-Forwarded-For`` is honoured only when the TCP peer is a
   configured trusted proxy -> ``forbidden_address``;
3. an optional HMAC-SHA256 signature in the Standard Webhooks form (``webhook-id``,
   ``webhook-timestamp``, ``webhook-signature``), for deployments with a signing gateway in front,
   with a replay window and several keys -> ``bad_signature``.

What passes those layers is *authentic*. The content checks after them (media type, size, JSON, job
fields) produce rejections that the service dead-letters, so nothing authentic is lost.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from services.common.errors import InvalidJobError
from services.common.trio import JOB_STATUS, NUMBER, OPEN_POSITIONS, JobFacts, job_facts

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Avro ``long`` carries Number and NumberOfCurrentOpenPositions; a wider integer cannot be encoded.
_LONG_MIN, _LONG_MAX = -(2**63), 2**63 - 1
_MAX_REASON_CHARS = 500
SIGNATURE_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
JSON_MEDIA_TYPES = frozenset({"application/json", "text/json"})


class Outcome(StrEnum):
    """How a webhook request ended; the ``outcome`` label of ``ingress_requests_total``."""

    ACCEPTED = "accepted"  # JobObserved acknowledged on jobs.events
    HINTED = "hinted"  # confirm mode: the webhook acknowledged on jobs.hints
    UNKNOWN_SECRET = "unknown_secret"
    FORBIDDEN_ADDRESS = "forbidden_address"
    BAD_SIGNATURE = "bad_signature"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    TOO_LARGE = "too_large"
    NOT_JSON = "not_json"
    INVALID_JOB = "invalid_job"
    UNSUPPORTED_EVENT = "unsupported_event"
    OVERLOADED = "overloaded"  # the in-flight cap was reached
    UNAVAILABLE = "unavailable"  # Kafka did not acknowledge


# Refusals of a request that passed authentication: its payload is dead-lettered.
AUTHENTIC_REJECTIONS = frozenset(
    {
        Outcome.UNSUPPORTED_MEDIA_TYPE,
        Outcome.TOO_LARGE,
        Outcome.NOT_JSON,
        Outcome.INVALID_JOB,
        Outcome.UNSUPPORTED_EVENT,
    }
)


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a request was refused: the outcome, a message a person can act on, the offending field if any."""

    outcome: Outcome
    reason: str
    field: str | None = None

    @property
    def authentic(self) -> bool:
        """True when the request passed authentication, so its payload must be dead-lettered."""
        return self.outcome in AUTHENTIC_REJECTIONS


@dataclass(frozen=True, slots=True)
class ParsedJob:
    """A body that is a Trio job: the parsed object, the facts we route by, and the text verbatim."""

    job: dict[str, Any]
    facts: JobFacts
    text: str


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_REASON_CHARS else text[: _MAX_REASON_CHARS - 3] + "..."


# --- layer 1: the secret in the path ---------------------------------------------------------------


def secret_matches(candidate: str, secrets: Sequence[str]) -> bool:
    """Constant-time comparison against every configured secret (no early exit, so timing says nothing)."""
    given = candidate.encode("utf-8", "surrogatepass")
    matched = False
    for secret in secrets:
        matched |= hmac.compare_digest(given, secret.encode())
    return matched


def redact_path(path: str, secret: str) -> str:
    """The request path with the secret replaced, for logs."""
    return path.replace(secret, "<redacted>") if secret else path


# --- layer 2: the source address --------------------------------------------------------------------


def parse_networks(values: Iterable[str]) -> tuple[IPNetwork, ...]:
    """Parse addresses or CIDR blocks; raises ValueError naming the bad entry."""
    networks = []
    for raw in values:
        text = raw.strip()
        if not text:
            continue
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError as exc:
            raise ValueError(f"{text!r} is not an IP address or CIDR block") from exc
    return tuple(networks)


def parse_address(text: str | None) -> IPAddress | None:
    """An IP address from a socket peer or a forwarded-for entry (port and brackets tolerated)."""
    if not text:
        return None
    value = text.strip()
    if value.startswith("["):  # [v6]:port
        value = value[1 : value.find("]")] if "]" in value else value[1:]
    elif value.count(":") == 1:  # v4:port
        value = value.split(":", 1)[0]
    value = value.split("%", 1)[0]  # zone index of a link-local v6 address
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # a dual-stack socket reports v4 peers as ::ffff:a.b.c.d
    return address


def _within(address: IPAddress, networks: Sequence[IPNetwork]) -> bool:
    return any(address.version == net.version and address in net for net in networks)


def client_address(
    peer: str | None, forwarded_for: str | None, trusted_proxies: Sequence[IPNetwork]
) -> IPAddress | None:
    """The address the request came from, trusting ``X-Forwarded-For`` only as far as trusted proxies go.

    Walk the forwarded chain from the right (the entry our proxy added) and return the first hop that
    is not a trusted proxy. A peer that is not a trusted proxy is the client, whatever it claims.
    None means the source cannot be told (an unparseable hop), which no allow list admits.
    """
    address = parse_address(peer)
    if address is None or not _within(address, trusted_proxies) or not forwarded_for:
        return address
    hops = [hop for hop in (part.strip() for part in forwarded_for.split(",")) if hop]
    for hop in reversed(hops):
        hop_address = parse_address(hop)
        if hop_address is None:
            return None
        if not _within(hop_address, trusted_proxies):
            return hop_address
        address = hop_address
    return address


def address_allowed(address: IPAddress | None, allowed: Sequence[IPNetwork]) -> bool:
    """An empty allow list admits every source; otherwise the source must be inside one block."""
    if not allowed:
        return True
    return address is not None and _within(address, allowed)


# --- layer 3: Standard Webhooks signature ------------------------------------------------------------


def decode_signing_secret(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret (``whsec_`` + base64); raises ValueError if malformed."""
    body = secret.strip()
    body = body.removeprefix("whsec_")
    try:
        key = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("a signing secret must be base64, optionally prefixed with 'whsec_'") from exc
    if len(key) < 16:
        raise ValueError(f"a signing secret must decode to at least 16 bytes, this one has {len(key)}")
    return key


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``v1,<base64>`` signature a Standard Webhooks sender puts in ``webhook-signature``."""
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


class SignatureCheck:
    """Verifies a body's signature as it streams in, so an oversized body can still be authenticated.

    Built by ``begin_signature_check`` once the headers passed; feed the body with ``update``; then
    ``finish`` returns None when any presented ``v1`` signature matches any key.
    """

    def __init__(self, keys: Sequence[bytes], msg_id: str, timestamp: int, presented: Sequence[bytes]) -> None:
        prefix = f"{msg_id}.{timestamp}.".encode()
        self._macs = [hmac.new(key, prefix, hashlib.sha256) for key in keys]
        self._presented = presented

    def update(self, chunk: bytes) -> None:
        for mac in self._macs:
            mac.update(chunk)

    def finish(self) -> Rejection | None:
        matched = False
        for mac in self._macs:
            digest = mac.digest()
            for candidate in self._presented:
                matched |= hmac.compare_digest(digest, candidate)
        if matched:
            return None
        return Rejection(Outcome.BAD_SIGNATURE, "webhook-signature matches none of the configured signing keys")


def begin_signature_check(
    headers: Mapping[str, str], keys: Sequence[bytes], now: float, tolerance_seconds: int
) -> SignatureCheck | Rejection:
    """Check the signature headers and the replay window; the body is verified by the returned check."""
    values = {name: (headers.get(name) or "").strip() for name in SIGNATURE_HEADERS}
    missing = [name for name, value in values.items() if not value]
    if missing:
        return Rejection(Outcome.BAD_SIGNATURE, f"missing header {', '.join(missing)}", missing[0])
    try:
        timestamp = int(values["webhook-timestamp"])
    except ValueError:
        return Rejection(Outcome.BAD_SIGNATURE, "webhook-timestamp must be integer Unix seconds", "webhook-timestamp")
    if abs(now - timestamp) > tolerance_seconds:
        return Rejection(
            Outcome.BAD_SIGNATURE,
            f"webhook-timestamp is {int(now - timestamp)}s from now, outside the replay window of "
            f"{tolerance_seconds}s (check the sender's clock)",
            "webhook-timestamp",
        )
    presented = []
    for entry in values["webhook-signature"].split():
        version, _, encoded = entry.partition(",")
        if version != "v1":
            continue
        try:
            presented.append(base64.b64decode(encoded, validate=True))
        except (binascii.Error, ValueError):
            continue
    if not presented:
        return Rejection(
            Outcome.BAD_SIGNATURE, "webhook-signature has no 'v1,<base64>' signature", "webhook-signature"
        )
    return SignatureCheck(keys, values["webhook-id"], timestamp, presented)


# --- content checks (after authentication; failures are dead-lettered) ---------------------------------


def check_content_type(value: str | None) -> Rejection | None:
    """JSON media types only (``application/json``, ``text/json``, ``*/*+json``), in UTF-8."""
    if not value:
        return Rejection(Outcome.UNSUPPORTED_MEDIA_TYPE, "no Content-Type: send application/json", "Content-Type")
    media_type, *params = (part.strip() for part in value.split(";"))
    media_type = media_type.lower()
    if media_type not in JSON_MEDIA_TYPES and not media_type.endswith("+json"):
        return Rejection(
            Outcome.UNSUPPORTED_MEDIA_TYPE,
            _clip(f"Content-Type {media_type!r} is not JSON: send application/json"),
            "Content-Type",
        )
    for param in params:
        name, _, raw = param.partition("=")
        charset = raw.strip().strip('"').lower()
        if name.strip().lower() == "charset" and charset not in ("utf-8", "utf8"):
            reason = _clip(f"charset {charset!r} is not supported: send UTF-8")
            return Rejection(Outcome.UNSUPPORTED_MEDIA_TYPE, reason, "Content-Type")
    return None


def too_large(limit: int, size: int, complete: bool, kept: int) -> Rejection:
    """The rejection of an oversized body; says how much of it the dead letter keeps."""
    seen = f"{size} bytes" if complete else f"more than {limit} bytes"
    return Rejection(
        Outcome.TOO_LARGE,
        f"body of {seen} exceeds the limit of {limit} bytes; the dead letter keeps only its first {kept} bytes",
    )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_job(body: bytes) -> ParsedJob | Rejection:
    """Decode a ``Job Update`` body: strict UTF-8 JSON, an object with the fields we route and order by."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Rejection(Outcome.NOT_JSON, f"body is not UTF-8 (byte {exc.start} is invalid)")
    text = text.removeprefix("\ufeff")  # a byte-order mark is transport noise, not content
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        return Rejection(Outcome.NOT_JSON, f"body is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")
    except ValueError as exc:
        return Rejection(Outcome.NOT_JSON, f"body is not JSON: {exc}")
    except RecursionError:
        return Rejection(Outcome.NOT_JSON, "body is not acceptable JSON: nested too deeply")
    if isinstance(value, dict) and NUMBER not in value and JOB_STATUS not in value:
        return Rejection(
            Outcome.UNSUPPORTED_EVENT,
            "not a Job Update payload (it has neither Number nor JobStatus): this endpoint handles only "
            "Trio's 'Job Update' webhook event; register other events at another endpoint",
        )
    try:
        facts = job_facts(value)
    except InvalidJobError as exc:
        return Rejection(Outcome.INVALID_JOB, _clip(f"not a Trio job: {exc}"), exc.field)
    for name, number in ((NUMBER, facts.number), (OPEN_POSITIONS, facts.open_positions)):
        if number is not None and not _LONG_MIN <= number <= _LONG_MAX:
            return Rejection(Outcome.INVALID_JOB, f"not a Trio job: {name}: out of the 64-bit integer range", name)
    return ParsedJob(job=value, facts=facts, text=text)


# --- the policy: the layers configured once ---------------------------------------------------------------


@dataclass(frozen=True)
class WebhookPolicy:
    """What the validation layers are configured with (plain values: secrets already unwrapped)."""

    path_secrets: tuple[str, ...] = field(repr=False)
    allowed_networks: tuple[IPNetwork, ...] = ()
    trusted_proxies: tuple[IPNetwork, ...] = ()
    signing_keys: tuple[bytes, ...] = field(default=(), repr=False)
    signature_required: bool = False
    signature_tolerance_seconds: int = 300
    max_body_bytes: int = 262_144

    def check_secret(self, candidate: str) -> Rejection | None:
        if secret_matches(candidate, self.path_secrets):
            return None
        return Rejection(Outcome.UNKNOWN_SECRET, "no webhook is registered at this path")

    def check_source(self, peer: str | None, forwarded_for: str | None) -> tuple[IPAddress | None, Rejection | None]:
        address = client_address(peer, forwarded_for, self.trusted_proxies)
        if address_allowed(address, self.allowed_networks):
            return address, None
        return address, Rejection(Outcome.FORBIDDEN_ADDRESS, f"source address {address or 'unknown'} is not allowed")

    def begin_signature(self, headers: Mapping[str, str], now: float) -> SignatureCheck | Rejection | None:
        """None when signatures are not required; else a check to feed the body to, or a rejection."""
        if not self.signature_required:
            return None
        return begin_signature_check(headers, self.signing_keys, now, self.signature_tolerance_seconds)
