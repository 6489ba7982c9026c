"""``GET /Job`` as a pure function: the modifiedDate parameter, strictly-after, status filter, bytes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from services.simulator.errors import InvalidRequestError
from services.simulator.jobs import JobBook
from services.simulator.listing import body, chunks, content_length, modified_since, select

pytestmark = pytest.mark.unit

T0 = datetime(2024, 9, 1, 12, 0, 0, 0, tzinfo=UTC)
MS = timedelta(milliseconds=1)


def _book() -> JobBook:
    book = JobBook()
    book.add({"Number": 1, "JobStatus": "Open", "Title": "a"}, T0 - MS)
    book.add({"Number": 2, "JobStatus": "Open", "Title": "b"}, T0)
    book.add({"Number": 3, "JobStatus": "OnHold", "Title": "c"}, T0 + MS)
    book.add({"Number": 4, "JobStatus": "Closed", "Title": "d"}, T0 + 2 * MS)
    return book


def test_without_the_parameter_or_with_it_empty_there_is_no_filter() -> None:
    assert modified_since({}) is None
    assert modified_since({"modifiedDate": ""}) is None


def test_a_plain_date_means_midnight_utc() -> None:
    assert modified_since({"modifiedDate": "2024-09-01"}) == datetime(2024, 9, 1, tzinfo=UTC)


def test_the_parameter_name_is_case_insensitive_and_offsets_convert_to_utc() -> None:
    assert modified_since({"ModifiedDate": "2024-09-01T14:00:00+02:00"}) == T0


@pytest.mark.parametrize("value", ["yesterday", "2024-13-01", "2024-09-01T12:00:00 02:00", "1725192000"])
def test_a_malformed_value_is_refused_naming_the_parameter(value: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        modified_since({"modifiedDate": value})
    assert caught.value.field == "modifiedDate"
    assert repr(value) in str(caught.value)


def test_the_parameter_given_twice_is_refused() -> None:
    from multidict import MultiDict

    with pytest.raises(InvalidRequestError, match="once"):
        modified_since(MultiDict([("modifiedDate", "2024-09-01"), ("modifiedDate", "2024-09-02")]))


def test_only_open_and_on_hold_jobs_are_listed() -> None:
    assert [r.number for r in select(_book(), None)] == [1, 2, 3]


def test_modified_date_selects_strictly_after_the_instant() -> None:
    book = _book()
    assert [r.number for r in select(book, T0)] == [3]
    assert [r.number for r in select(book, T0 - timedelta(microseconds=1))] == [2, 3]
    assert [r.number for r in select(book, T0 - MS)] == [2, 3]
    assert [r.number for r in select(book, T0 - 2 * MS)] == [1, 2, 3]
    assert [r.number for r in select(book, T0 + MS)] == []


def test_omitted_numbers_are_left_out() -> None:
    assert [r.number for r in select(_book(), None, omit={2})] == [1, 3]


def test_the_body_is_a_bare_json_array_of_the_jobs_in_order() -> None:
    book = _book()
    parsed = json.loads(body(select(book, None)))
    assert [job["Number"] for job in parsed] == [1, 2, 3]
    assert parsed[0] == {"Number": 1, "JobStatus": "Open", "Title": "a", "ModifiedDateUtc": "2024-09-01T11:59:59.999Z"}
    assert body([]) == b"[]"


def test_cached_bytes_follow_every_change() -> None:
    book = _book()
    assert b'"Title":"a"' in book.get(1).body()
    book.modify(1, {"Title": "changed"}, T0)
    assert b'"Title":"changed"' in body(select(book, None))
    book.set_positions(1, 7)
    assert json.loads(book.get(1).body())["NumberOfCurrentOpenPositions"] == 7
    book.modify(1, {"JobStatus": "Closed"}, T0)
    assert [r.number for r in select(book, None)] == [2, 3]


@pytest.mark.parametrize("count", [0, 1, 999, 1000, 1001, 2500])
def test_chunks_join_to_exactly_the_body_and_its_length(count: int) -> None:
    book = JobBook()
    for n in range(count):
        book.add({"Number": n + 1, "JobStatus": "Open", "Title": "é" * (n % 3)}, T0)
    records = select(book, None)
    parts = [r.body() for r in records]
    streamed = b"".join(chunks(parts))
    assert streamed == body(records)
    assert content_length(parts) == len(streamed)
    assert len(json.loads(streamed)) == count
