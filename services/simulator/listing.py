"""``GET /Job`` as a function of the job book: status filter, ``modifiedDate`` filter, body assembly (pure)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from datetime import datetime

from services.common.trio import parse_trio_datetime
from services.simulator.errors import InvalidRequestError
from services.simulator.jobs import JobRecord

MODIFIED_DATE = "modifiedDate"


def modified_since(query: Mapping[str, str]) -> datetime | None:
    """The ``modifiedDate`` query parameter as a UTC instant, or None when absent or empty.

    The parameter name is matched case-insensitively (as ASP.NET binds it). A plain date means midnight
    UTC; a date-time without an offset is taken as UTC. Anything else raises InvalidRequestError (400).
    A ``+`` offset must be percent-encoded: unencoded, it arrives as a space and is rejected, as it
    would be by the real API.
    """
    values = [value for key, value in query.items() if key.lower() == MODIFIED_DATE.lower()]
    if not values:
        return None
    if len(values) > 1:
        raise InvalidRequestError(MODIFIED_DATE, "give the parameter once")
    text = values[0].strip()
    if not text:
        return None
    try:
        return parse_trio_datetime(text)
    except ValueError as exc:
        raise InvalidRequestError(
            MODIFIED_DATE, f"the value {values[0]!r} is not valid: use a date (2024-09-01) or an ISO 8601 date-time"
        ) from exc


def select(records: Iterable[JobRecord], since: datetime | None, omit: Collection[int] = ()) -> list[JobRecord]:
    """The Open and OnHold jobs, modified strictly after ``since`` when given, minus ``omit``."""
    if omit:
        return [r for r in select(records, since) if r.number not in omit]
    if since is None:
        return [r for r in records if r.listed]
    return [r for r in records if r.listed and r.modified > since]


def body(records: Iterable[JobRecord]) -> bytes:
    """The bare JSON array, joined from each job's cached bytes in a single copy (100k jobs are ~80 MB)."""
    parts = [r.body() for r in records]
    if not parts:
        return b"[]"
    parts[0] = b"[" + parts[0]
    parts[-1] = parts[-1] + b"]"
    return b",".join(parts)


CHUNK_JOBS = 1000  # ~1 MB per chunk with the simulator's jobs


def content_length(parts: Sequence[bytes]) -> int:
    """The byte length of ``body`` of these job bodies, without building it."""
    return 2 + sum(map(len, parts)) + max(0, len(parts) - 1)


def chunks(parts: Sequence[bytes], jobs_per_chunk: int = CHUNK_JOBS) -> Iterator[bytes]:
    """The same bytes as ``body``, in pieces of ``jobs_per_chunk`` jobs, so no 80 MB buffer is ever built."""
    if not parts:
        yield b"[]"
        return
    for start in range(0, len(parts), jobs_per_chunk):
        piece = b",".join(parts[start : start + jobs_per_chunk])
        head = b"[" if start == 0 else b","
        tail = b"]" if start + jobs_per_chunk >= len(parts) else b""
        yield head + piece + tail
