"""The ingress's validation layers as pure functions: secrets, source addresses, signatures, content."""

from __future__ import annotations

import base64
import ipaddress
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from services.common.errors import ConfigurationError
from services.common.settings import load
from services.ingress.settings import IngressSettings
from services.ingress.validation import (
    Outcome,
    ParsedJob,
    Rejection,
    SignatureCheck,
    WebhookPolicy,
    begin_signature_check,
    check_content_type,
    client_address,
    decode_signing_secret,
    parse_job,
    parse_networks,
    secret_matches,
    sign,
    too_large,
)

pytestmark = pytest.mark.unit

SECRETS = ("first-" + "x" * 40, "second-" + "y" * 40)
KEY_A = b"A" * 32
KEY_B = b"B" * 32
NOW = 1_725_000_000.0


# --- the path secret -----------------------------------------------------------------------------


@pytest.mark.parametrize("candidate", SECRETS)
def test_any_configured_secret_is_accepted_so_rotation_needs_no_downtime(candidate: str) -> None:
    assert secret_matches(candidate, SECRETS)


@pytest.mark.parametrize("candidate", ["", "first-", SECRETS[0][:-1], SECRETS[0] + "x", SECRETS[0].upper(), "é\udcff"])
def test_anything_but_an_exact_secret_is_refused(candidate: str) -> None:
    assert not secret_matches(candidate, SECRETS)


def test_the_unknown_secret_rejection_does_not_echo_the_candidate() -> None:
    policy = WebhookPolicy(path_secrets=SECRETS)
    rejection = policy.check_secret("guessed-secret-value")
    assert rejection is not None and rejection.outcome is Outcome.UNKNOWN_SECRET
    assert "guessed" not in rejection.reason


def test_secrets_never_appear_in_the_policy_or_settings_repr() -> None:
    settings = IngressSettings(path_secrets=list(SECRETS), signing_secrets=[base64.b64encode(KEY_A).decode()])
    text = repr(settings) + str(settings) + repr(settings.policy())
    for secret in (*SECRETS, base64.b64encode(KEY_A).decode()):
        assert secret not in text


# --- the source address --------------------------------------------------------------------------

PROXIES = parse_networks(["10.0.0.0/8", "192.168.1.1"])


def ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


def test_forwarded_for_is_ignored_when_the_peer_is_not_a_trusted_proxy() -> None:
    assert client_address("203.0.113.9", "198.51.100.1", PROXIES) == ip("203.0.113.9")


def test_forwarded_for_names_the_client_behind_a_trusted_proxy() -> None:
    assert client_address("10.1.2.3", "198.51.100.1", PROXIES) == ip("198.51.100.1")


def test_a_spoofed_leftmost_hop_is_not_believed() -> None:
    # The client wrote "1.1.1.1" itself; our proxy appended the address it really saw.
    assert client_address("10.1.2.3", "1.1.1.1, 198.51.100.1", PROXIES) == ip("198.51.100.1")


def test_a_chain_of_trusted_proxies_is_walked_from_the_right() -> None:
    assert client_address("10.1.2.3", "198.51.100.1, 192.168.1.1, 10.9.9.9", PROXIES) == ip("198.51.100.1")


def test_an_unparseable_hop_makes_the_source_unknown() -> None:
    assert client_address("10.1.2.3", "198.51.100.1, garbage", PROXIES) is None


def test_ipv4_mapped_peers_and_ports_are_normalised() -> None:
    assert client_address("::ffff:203.0.113.9", None, PROXIES) == ip("203.0.113.9")
    assert client_address("10.0.0.1", "198.51.100.1:5555", PROXIES) == ip("198.51.100.1")
    assert client_address("10.0.0.1", "[2001:db8::1]:443", PROXIES) == ip("2001:db8::1")


def test_the_allow_list_admits_only_its_blocks_and_an_empty_list_admits_all() -> None:
    open_policy = WebhookPolicy(path_secrets=SECRETS)
    assert open_policy.check_source("203.0.113.9", None)[1] is None
    closed = WebhookPolicy(path_secrets=SECRETS, allowed_networks=parse_networks(["198.51.100.0/24", "2001:db8::/32"]))
    assert closed.check_source("198.51.100.77", None)[1] is None
    assert closed.check_source("2001:db8::5", None)[1] is None
    refused = closed.check_source("203.0.113.9", None)[1]
    assert refused is not None and refused.outcome is Outcome.FORBIDDEN_ADDRESS
    assert "203.0.113.9" in refused.reason
    unknown = WebhookPolicy(path_secrets=SECRETS, allowed_networks=closed.allowed_networks, trusted_proxies=PROXIES)
    assert unknown.check_source("10.0.0.1", "nonsense")[1] is not None


def test_bad_network_settings_name_the_entry() -> None:
    with pytest.raises(ValueError, match=r"'10\.0\.0\.300'"):
        parse_networks(["10.0.0.0/8", "10.0.0.300"])


# --- Standard Webhooks signatures ------------------------------------------------------------------


def signed_headers(body: bytes, key: bytes = KEY_A, timestamp: int = int(NOW), msg_id: str = "msg_1") -> dict:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(key, msg_id, timestamp, body),
    }


def verify(headers: dict, body: bytes, keys=(KEY_A, KEY_B), chunks: int = 1) -> Rejection | None:
    check = begin_signature_check(headers, keys, NOW, 300)
    if isinstance(check, Rejection):
        return check
    assert isinstance(check, SignatureCheck)
    step = max(1, len(body) // chunks)
    for start in range(0, len(body), step):
        check.update(body[start : start + step])
    return check.finish()


def test_a_body_signed_with_any_configured_key_verifies_whole_or_streamed() -> None:
    body = b'{"Number": 1, "JobStatus": "Open"}'
    assert verify(signed_headers(body, KEY_A), body) is None
    assert verify(signed_headers(body, KEY_B), body, chunks=7) is None


def test_one_valid_signature_among_several_presented_is_enough() -> None:
    body = b"{}"
    headers = signed_headers(body, KEY_B)
    headers["webhook-signature"] = "v1,AAAA v2,whatever " + headers["webhook-signature"]
    assert verify(headers, body) is None


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda h, b: (h, b + b" "), None),  # tampered body
        (lambda h, b: (signed_headers(b, b"C" * 32), b), None),  # unknown key
        (lambda h, b: ({**h, "webhook-id": "msg_2"}, b), None),  # id not what was signed
        (lambda h, b: (signed_headers(b, timestamp=int(NOW) - 301), b), "webhook-timestamp"),  # replayed
        (lambda h, b: (signed_headers(b, timestamp=int(NOW) + 301), b), "webhook-timestamp"),  # from the future
        (lambda h, b: ({**h, "webhook-timestamp": "yesterday"}, b), "webhook-timestamp"),
        (lambda h, b: ({k: v for k, v in h.items() if k != "webhook-signature"}, b), "webhook-signature"),
        (lambda h, b: ({**h, "webhook-signature": "v2,abc"}, b), "webhook-signature"),
    ],
)
def test_signatures_that_do_not_verify_are_refused(change, named: str | None) -> None:
    body = b'{"Number": 1}'
    headers, sent = change(signed_headers(body), body)
    rejection = verify(headers, sent)
    assert rejection is not None and rejection.outcome is Outcome.BAD_SIGNATURE
    if named is not None:
        assert rejection.field == named


def test_signing_secrets_are_base64_with_an_optional_prefix() -> None:
    encoded = base64.b64encode(KEY_A).decode()
    assert decode_signing_secret(encoded) == KEY_A
    assert decode_signing_secret("whsec_" + encoded) == KEY_A
    with pytest.raises(ValueError, match="base64"):
        decode_signing_secret("not base64 at all!")
    with pytest.raises(ValueError, match="16 bytes"):
        decode_signing_secret(base64.b64encode(b"short").decode())


def test_signatures_are_not_checked_unless_required() -> None:
    assert WebhookPolicy(path_secrets=SECRETS).begin_signature({}, NOW) is None
    required = WebhookPolicy(path_secrets=SECRETS, signing_keys=(KEY_A,), signature_required=True)
    assert isinstance(required.begin_signature({}, NOW), Rejection)


# --- content -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "application/json",
        "Application/JSON; charset=utf-8",
        "text/json",
        "application/vnd.trio+json",
        'application/json; charset="UTF-8"',
    ],
)
def test_json_media_types_are_accepted(value: str) -> None:
    assert check_content_type(value) is None


@pytest.mark.parametrize(
    "value", [None, "", "text/plain", "application/x-www-form-urlencoded", "application/json; charset=utf-16"]
)
def test_other_media_types_are_refused_naming_the_header(value: str | None) -> None:
    rejection = check_content_type(value)
    assert rejection is not None and rejection.outcome is Outcome.UNSUPPORTED_MEDIA_TYPE
    assert rejection.field == "Content-Type"


def test_a_job_body_is_parsed_and_its_text_kept_verbatim() -> None:
    text = '{ "Number": 42,  "JobStatus": "Open", "ModifiedDateUtc": "2024-09-01T10:00:00Z", "Unknown": [1.50] }'
    parsed = parse_job(("\ufeff" + text).encode())
    assert isinstance(parsed, ParsedJob)
    assert parsed.text == text
    assert parsed.facts.number == 42 and parsed.job["Unknown"] == [1.5]


@pytest.mark.parametrize(
    ("body", "outcome", "field"),
    [
        (b"\xff\xfe{}", Outcome.NOT_JSON, None),
        (b"{", Outcome.NOT_JSON, None),
        (b"", Outcome.NOT_JSON, None),
        (b'{"Number": NaN, "JobStatus": "Open"}', Outcome.NOT_JSON, None),
        (b"[" * 100_000 + b"]" * 100_000, Outcome.NOT_JSON, None),
        (b"[1, 2]", Outcome.INVALID_JOB, "$"),
        (b'"Open"', Outcome.INVALID_JOB, "$"),
        (b'{"Number": "12", "JobStatus": "Open"}', Outcome.INVALID_JOB, "Number"),
        (b'{"Number": 12.5, "JobStatus": "Open"}', Outcome.INVALID_JOB, "Number"),
        (b'{"Number": true, "JobStatus": "Open"}', Outcome.INVALID_JOB, "Number"),
        (b'{"Number": 12}', Outcome.INVALID_JOB, "JobStatus"),
        (
            b'{"Number": 12, "JobStatus": "Open", "ModifiedDateUtc": "last week"}',
            Outcome.INVALID_JOB,
            "ModifiedDateUtc",
        ),
        (
            b'{"Number": 12, "JobStatus": "Open", "NumberOfCurrentOpenPositions": "2"}',
            Outcome.INVALID_JOB,
            "NumberOfCurrentOpenPositions",
        ),
        (b'{"Number": 9223372036854775808, "JobStatus": "Open"}', Outcome.INVALID_JOB, "Number"),
        (b'{"SubmissionId": 7, "CandidateName": "x", "Status": "Submitted"}', Outcome.UNSUPPORTED_EVENT, None),
        (b"{}", Outcome.UNSUPPORTED_EVENT, None),
    ],
)
def test_bodies_that_are_not_jobs_are_refused_naming_what_is_wrong(
    body: bytes, outcome: Outcome, field: str | None
) -> None:
    rejection = parse_job(body)
    assert isinstance(rejection, Rejection)
    assert rejection.outcome is outcome
    assert rejection.field == field
    assert rejection.authentic  # content refusals are dead-lettered
    if field:
        assert field in rejection.reason


def test_a_huge_bad_timestamp_is_not_echoed_in_full() -> None:
    body = json.dumps({"Number": 1, "JobStatus": "Open", "ModifiedDateUtc": "x" * 100_000}).encode()
    rejection = parse_job(body)
    assert isinstance(rejection, Rejection) and len(rejection.reason) <= 500


def test_the_too_large_reason_says_how_much_the_dead_letter_keeps() -> None:
    assert "more than 1024 bytes" in too_large(1024, 4096, False, 512).reason
    assert "first 512 bytes" in too_large(1024, 4096, True, 512).reason
    assert "4096 bytes" in too_large(1024, 4096, True, 512).reason


@given(st.binary(max_size=512))
def test_any_bytes_give_a_job_or_a_named_refusal_never_an_exception(body: bytes) -> None:
    assert isinstance(parse_job(body), ParsedJob | Rejection)


field_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=30),
    st.sampled_from(["Open", "Closed", "2024-09-01", "2024-09-01T10:00:00Z"]),
    st.lists(st.integers(), max_size=3),
)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(
        st.sampled_from(["Number", "JobStatus", "ModifiedDateUtc", "NumberOfCurrentOpenPositions", "X"]), field_values
    )
)
def test_any_json_object_gives_a_job_or_a_named_refusal(value: dict) -> None:
    result = parse_job(json.dumps(value).encode())
    if isinstance(result, ParsedJob):
        assert isinstance(result.facts.number, int) and result.facts.status
    else:
        assert result.outcome in (Outcome.INVALID_JOB, Outcome.UNSUPPORTED_EVENT)


# --- settings ----------------------------------------------------------------------------------------------


def test_settings_take_lists_as_json_or_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBSYNC_INGRESS_PATH_SECRETS", f"{SECRETS[0]}, {SECRETS[1]}")
    monkeypatch.setenv("JOBSYNC_INGRESS_ALLOWED_NETWORKS", '["198.51.100.0/24", "2001:db8::/32"]')
    settings = load(IngressSettings)
    assert [s.get_secret_value() for s in settings.path_secrets] == list(SECRETS)
    assert len(settings.policy().allowed_networks) == 2


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "JOBSYNC_INGRESS_PATH_SECRETS: .*at least one secret"),
        ({"JOBSYNC_INGRESS_PATH_SECRETS": "too-short-secret"}, "secret #1 is shorter"),
        ({"JOBSYNC_INGRESS_PATH_SECRETS": "x" * 40 + "/?"}, "secret #1 has characters"),
        (
            {"JOBSYNC_INGRESS_PATH_SECRETS": "x" * 40, "JOBSYNC_INGRESS_SIGNATURE_REQUIRED": "true"},
            "no signing_secrets",
        ),
        (
            {"JOBSYNC_INGRESS_PATH_SECRETS": "x" * 40, "JOBSYNC_INGRESS_SIGNING_SECRETS": "whsec_%%%"},
            "signing secret #1",
        ),
        (
            {"JOBSYNC_INGRESS_PATH_SECRETS": "x" * 40, "JOBSYNC_INGRESS_TRUSTED_PROXIES": "proxy.local"},
            "TRUSTED_PROXIES",
        ),
    ],
)
def test_bad_settings_fail_at_start_naming_the_variable_but_never_the_secret(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    for name in ("JOBSYNC_INGRESS_PATH_SECRETS", "JOBSYNC_INGRESS_SIGNING_SECRETS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError, match=message) as caught:
        load(IngressSettings)
    for value in env.values():
        if len(value) >= 16:
            assert value not in str(caught.value)


def test_a_secret_str_secret_round_trips_into_the_policy() -> None:
    settings = IngressSettings(path_secrets=[SecretStr(SECRETS[0])])
    assert settings.policy().path_secrets == (SECRETS[0],)
