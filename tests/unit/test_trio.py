"""Parsing Trio's job objects and timestamps."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.common.errors import InvalidJobError
from services.common.trio import format_trio_datetime, job_facts, parse_trio_datetime

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-09-01", datetime(2024, 9, 1, tzinfo=UTC)),
        ("2024-09-01T00:00:00Z", datetime(2024, 9, 1, tzinfo=UTC)),
        ("2024-09-01T10:11:12.1234567", datetime(2024, 9, 1, 10, 11, 12, 123456, tzinfo=UTC)),
        ("2024-09-01T10:11:12.5+02:00", datetime(2024, 9, 1, 8, 11, 12, 500000, tzinfo=UTC)),
        ("2024-09-01T10:11", datetime(2024, 9, 1, 10, 11, tzinfo=UTC)),
    ],
)
def test_trio_timestamps_parse_to_utc(text: str, expected: datetime) -> None:
    assert parse_trio_datetime(text) == expected


@pytest.mark.parametrize("text", ["", "yesterday", "2024-13-01", "2024-09-01T25:00:00", "2024-09-01X"])
def test_malformed_timestamps_are_rejected_with_the_text(text: str) -> None:
    with pytest.raises(ValueError, match="date"):
        parse_trio_datetime(text)


def test_format_round_trips() -> None:
    value = datetime(2024, 9, 1, 1, 2, 3, 4, tzinfo=UTC)
    assert parse_trio_datetime(format_trio_datetime(value)) == value


@pytest.mark.parametrize(
    ("job", "field"),
    [
        ([], "$"),
        ({"JobStatus": "Open"}, "Number"),
        ({"Number": "12", "JobStatus": "Open"}, "Number"),
        ({"Number": True, "JobStatus": "Open"}, "Number"),
        ({"Number": 1}, "JobStatus"),
        ({"Number": 1, "JobStatus": "Open", "ModifiedDateUtc": "soon"}, "ModifiedDateUtc"),
        ({"Number": 1, "JobStatus": "Open", "NumberOfCurrentOpenPositions": "2"}, "NumberOfCurrentOpenPositions"),
    ],
)
def test_job_facts_name_the_bad_field(job: object, field: str) -> None:
    with pytest.raises(InvalidJobError) as info:
        job_facts(job)
    assert info.value.field == field
