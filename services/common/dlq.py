"""The dead-letter convention every service shares (topic ``<prefix>.jobs.dlq``).

A DLQ record keeps the original key and the original bytes untouched; why and where it failed travel
as headers, so ``jobsync projector dlq replay`` can put it back where it came from after a fix.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

REASON = "dlq-reason"  # human-readable: what was wrong, naming the field or the error
ORIGIN = "dlq-origin"  # which service dead-lettered it: ingress, poller, projector
ORIGINAL_TOPIC = "dlq-original-topic"  # where it would have gone / where it was read from
ORIGINAL_PARTITION = "dlq-original-partition"
ORIGINAL_OFFSET = "dlq-original-offset"
FAILED_AT = "dlq-failed-at"  # ISO 8601 UTC

MAX_REASON_BYTES = 2000


@dataclass(frozen=True)
class DeadLetter:
    reason: str
    origin: str
    original_topic: str | None = None
    original_partition: int | None = None
    original_offset: int | None = None
    failed_at: datetime | None = None


def dlq_headers(letter: DeadLetter, extra: Iterable[tuple[str, bytes | str]] = ()) -> list[tuple[str, bytes]]:
    """Kafka headers describing a dead letter (plus any ``extra`` audit headers to keep)."""
    failed_at = letter.failed_at or datetime.now(UTC)
    headers: list[tuple[str, bytes]] = [
        (REASON, letter.reason.encode()[:MAX_REASON_BYTES]),
        (ORIGIN, letter.origin.encode()),
        (FAILED_AT, failed_at.isoformat().encode()),
    ]
    if letter.original_topic is not None:
        headers.append((ORIGINAL_TOPIC, letter.original_topic.encode()))
    if letter.original_partition is not None:
        headers.append((ORIGINAL_PARTITION, str(letter.original_partition).encode()))
    if letter.original_offset is not None:
        headers.append((ORIGINAL_OFFSET, str(letter.original_offset).encode()))
    for name, value in extra:
        headers.append((name, value.encode() if isinstance(value, str) else value))
    return headers


def parse_dlq_headers(headers: Sequence[tuple[str, bytes]] | Sequence[tuple[str, bytes | None]] | None) -> DeadLetter:
    """Read back what ``dlq_headers`` wrote (missing headers become None)."""
    found = {name: (value or b"").decode(errors="replace") for name, value in headers or ()}
    return DeadLetter(
        reason=found.get(REASON, ""),
        origin=found.get(ORIGIN, ""),
        original_topic=found.get(ORIGINAL_TOPIC),
        original_partition=int(found[ORIGINAL_PARTITION]) if ORIGINAL_PARTITION in found else None,
        original_offset=int(found[ORIGINAL_OFFSET]) if ORIGINAL_OFFSET in found else None,
        failed_at=datetime.fromisoformat(found[FAILED_AT]) if FAILED_AT in found else None,
    )
