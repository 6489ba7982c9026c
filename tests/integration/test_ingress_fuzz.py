"""Fuzzing the ingress from its OpenAPI description (schemathesis) against a live server and a real broker:
no answer is a 5xx other than the documented 503, and every answer matches the description."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import checks

from services.common.kafka import ensure_topics, standard_topics
from services.common.settings import KafkaSettings
from tests.infra import ServerHandle
from tests.ingress_support import PATH, SECRET, ingress_in_thread, ingress_settings

pytestmark = pytest.mark.integration

SPEC = Path(__file__).resolve().parents[2] / "services" / "ingress" / "openapi.yaml"
schema = schemathesis.openapi.from_path(SPEC)

CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
]


@pytest.fixture(scope="module")
def live_ingress(kafka: ServerHandle) -> Iterator[str]:
    kafka_settings = KafkaSettings(
        bootstrap_servers=kafka.address, topic_prefix=f"fuzz{uuid.uuid4().hex[:8]}", partitions=3
    )
    ensure_topics(kafka_settings, standard_topics(kafka_settings))
    with ingress_in_thread(ingress_settings(max_body_bytes=4096), kafka_settings) as url:
        yield url


@schema.exclude(path="/metrics").parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_generated_request_gets_an_undocumented_answer(case: schemathesis.Case, live_ingress: str) -> None:
    case.call_and_validate(base_url=live_ingress, checks=CHECKS)
    if "secret" in (case.path_parameters or {}):
        # the same request with the right secret reaches the content checks and Kafka
        case.path_parameters = {**case.path_parameters, "secret": SECRET}
        case.call_and_validate(base_url=live_ingress, checks=CHECKS)


header_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=60)
json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["Number", "JobStatus", "ModifiedDateUtc", "NumberOfCurrentOpenPositions", "x"]),
            inner,
            max_size=5,
        )
    ),
    max_leaves=12,
)
bodies = st.one_of(
    st.binary(max_size=6000),  # over the 4096-byte limit too
    json_like.map(lambda value: json.dumps(value).encode()),
)
content_types = st.one_of(
    st.sampled_from(["application/json", "application/json; charset=utf-8", "text/plain", "application/x+json"]),
    header_text,
)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=bodies, content_type=content_types, forwarded=st.none() | header_text)
def test_arbitrary_authentic_bodies_and_headers_get_a_documented_answer_never_a_5xx(
    live_ingress: str, body: bytes, content_type: str, forwarded: str | None
) -> None:
    headers = {"Content-Type": content_type}
    if forwarded is not None:
        headers["X-Forwarded-For"] = forwarded
    response = requests.post(f"{live_ingress}{PATH}", data=body, headers=headers, timeout=30)
    assert response.status_code in {200, 400, 413, 415, 422}, response.text
    reply = response.json()
    assert reply["event_id"]
    if response.status_code != 200:
        assert reply["dead_lettered"] is True  # authentic: nothing is lost
