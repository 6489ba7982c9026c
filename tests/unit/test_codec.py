"""The event codec: schemas parse, realistic jobs round-trip losslessly, garbage fails clearly,
and every committed schema version stays readable by the newest one."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

import fastavro
import fastavro.utils
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.common.codec import AvroCodec, job_event_codec, job_state_codec, schema_versions
from services.common.errors import DecodeError
from services.common.events import (
    ChangeKind,
    JobState,
    Source,
    job_observed,
    snapshot_completed,
)

pytestmark = pytest.mark.unit

REALISTIC_JOB = {
    "Number": 1234567,
    "Title": "RN - Med/Surg Nights",
    "JobStatus": "Open",
    "JobStatusReason": None,
    "StartDate": "2025-01-06T00:00:00",
    "ModifiedDateUtc": "2024-12-01T14:03:11.1234567",
    "NumberOfCurrentOpenPositions": 3,
    "UnitDescription": "4 West",
    "RelationshipManagerPhone": "+1 555 0100",
    "RelationshipManagerEmail": "rm@example.org",
    "PlacementCoordinator": "Ana Ruiz",
    "PlacementCoordinatorPhone": None,
    "PlacementCoordinatorEmail": "pc@example.org",
    "Facility": {"Name": "St. Example", "City": "Tulsa", "Geo": [36.15, -95.99]},
    "Shift": "7p-7a",
    "BillRate": 98.5,
    "Profession": "RN",
    "Specialty": "Med/Surg",
    "Ünïcode": "naïve ✓",
}


@pytest.mark.parametrize("name", ["job_event", "job_state"])
def test_every_committed_schema_version_parses(name: str) -> None:
    for _, raw in schema_versions(name):
        fastavro.parse_schema(raw)


def test_job_observation_round_trips_with_unknown_fields_intact() -> None:
    codec = job_event_codec()
    event = job_observed(REALISTIC_JOB, Source.POLL_FULL, sync_id="s", snapshot_id="snap")
    decoded = codec.decode(codec.encode(event))
    assert decoded == event
    assert decoded.job == REALISTIC_JOB
    assert decoded.modified_at == datetime(2024, 12, 1, 14, 3, 11, 123456, tzinfo=UTC)


def test_webhook_raw_text_is_kept_verbatim() -> None:
    raw = '{"Number": 7, "JobStatus": "Closed",  "Extra": 1.10}'
    event = job_observed(json.loads(raw), Source.WEBHOOK, raw_json=raw)
    assert job_event_codec().decode(job_event_codec().encode(event)).job_json == raw


def test_snapshot_marker_round_trips() -> None:
    codec = job_event_codec()
    marker = snapshot_completed("snap-1", datetime(2024, 1, 1, tzinfo=UTC), 42, suspicious=True, expected_count=90)
    assert codec.decode(codec.encode(marker)) == marker


def test_state_record_round_trips() -> None:
    codec = job_state_codec()
    now = datetime.now(UTC)
    state = JobState(
        job_number=1, change_kind=ChangeKind.CLOSED, source="poll_full", event_id="e", job_status="Closed",
        revision=3, first_seen_at=now, observed_at=now, job_json="{}", changed_fields=["JobStatus"],
    )
    assert codec.decode(codec.encode(state)) == state


def test_header_names_the_schema_version() -> None:
    codec = job_event_codec()
    data = codec.encode(job_observed(REALISTIC_JOB, Source.WEBHOOK))
    assert data[:2] == b"\xc3\x01"
    assert codec.version_of(data) == codec.current.version


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (None, "no value"),
        (b"\xc3", "too short"),
        (b"{\"Number\": 1}  ", "not Avro single-object"),
        (b"\xc3\x01" + b"\x00" * 8 + b"xx", "unknown schema fingerprint"),
    ],
)
def test_garbage_raises_one_clear_error(data: bytes | None, words: str) -> None:
    with pytest.raises(DecodeError, match=words):
        job_event_codec().decode(data)


@settings(max_examples=50, deadline=None)
@given(body=st.binary(min_size=0, max_size=64))
def test_truncated_or_random_bodies_raise_decode_error_only(body: bytes) -> None:
    codec = job_event_codec()
    header = codec.encode(job_observed(REALISTIC_JOB, Source.WEBHOOK))[:10]
    try:
        codec.decode(header + body)
    except DecodeError:
        pass


@pytest.mark.parametrize("name", ["job_event", "job_state"])
def test_newest_schema_reads_data_written_by_every_older_version(name: str) -> None:
    """Backward compatibility: consumers on the newest schema read what older producers wrote."""
    versions = schema_versions(name)
    reader = fastavro.parse_schema(versions[-1][1])
    for version, raw in versions:
        writer = fastavro.parse_schema(raw)
        for record in fastavro.utils.generate_many(writer, 20):
            buf = io.BytesIO()
            fastavro.schemaless_writer(buf, writer, record)
            buf.seek(0)
            fastavro.schemaless_reader(buf, writer, reader)
        # Every field added after v1 must carry a default, or old data could not be read.
        old_fields = {f["name"] for f in raw["fields"]}
        for field in versions[-1][1]["fields"]:
            if field["name"] not in old_fields:
                assert "default" in field, f"{name} field {field['name']} added after v{version} needs a default"


def test_codec_rejects_a_family_without_schemas() -> None:
    with pytest.raises(FileNotFoundError):
        AvroCodec("no_such_schema", dict, dict)


def test_murmur2_matches_kafkas_java_reference_values() -> None:
    # Reference values from Kafka's UtilsTest.testMurmur2.
    from services.common.partitioning import murmur2

    cases = {
        b"21": -973932308,
        b"foobar": -790332482,
        b"a-little-bit-long-string": -985981536,
        b"a-little-bit-longer-string": -1486304829,
        b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
        bytes([ord("a"), ord("b"), ord("c")]): 479470107,
    }
    for data, expected in cases.items():
        assert murmur2(data) == expected, data


def test_dead_letter_headers_round_trip() -> None:
    from services.common.dlq import DeadLetter, dlq_headers, parse_dlq_headers

    letter = DeadLetter("Number: must be an integer", "ingress", "p.jobs.events", 2, 17, datetime.now(UTC))
    assert parse_dlq_headers(dlq_headers(letter, [("user-agent", "trio")])) == letter
