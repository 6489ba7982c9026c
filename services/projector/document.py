"""The shape of one view document (collection ``jobs``, one per Trio job ``Number``), as plain data.

Times are kept twice: an int64 microsecond field (``*_us``) that the rules order by, because BSON dates
hold milliseconds while Trio's ``ModifiedDateUtc`` carries microseconds, and a millisecond BSON date
copy (``*_at``) for queries. The Trio job is kept twice too: ``job_json`` is the verbatim text (the
lossless copy, unknown fields included) and ``job`` is an embedded document for queries whose keys are
made safe for every MongoDB-wire server (no ``.``, no leading ``$``, no empty key).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

ID = "_id"  # the Trio job Number: _id is unique by definition, so one document per Number
REVISION = "revision"  # +1 on every write; the optimistic-concurrency token
STATUS = "status"  # the view's status: Trio's JobStatus, or Closed by an inferred closure
JOB_JSON = "job_json"
JOB = "job"
MODIFIED_US = "modified_us"
MODIFIED_AT = "modified_at"
OPEN_POSITIONS = "open_positions"
STATUS_REASON = "status_reason"
FIRST_SEEN_US = "first_seen_us"
FIRST_SEEN_AT = "first_seen_at"
OBSERVED_US = "observed_us"
OBSERVED_AT = "observed_at"
SOURCE = "source"
EVENT_ID = "event_id"
PARTITION = "partition"
OFFSET = "offset"
CLOSED_US = "closed_us"
CLOSED_AT = "closed_at"
CLOSED_REASON = "closed_reason"
CLOSURE_INFERRED = "closure_inferred"
LAST_SEEN_US = "last_seen_us"
LAST_SEEN_AT = "last_seen_at"
LAST_SNAPSHOT_ID = "last_snapshot_id"
LAST_SNAPSHOT_US = "last_snapshot_us"
# The last effective change written, where its event was read, and (for an operator's change only)
# whether it was announced: see feed.unannounced.
LAST_CHANGE = "last_change"

# Fields that record how the document got where it is rather than what the job is. Two views built
# from the same events in different orders differ at most in these (see rules.py).
WRITE_BOOKKEEPING = frozenset({REVISION, LAST_CHANGE})

# "No ModifiedDateUtc" orders before every real instant.
NO_TIME = -(2**62)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)
_INT64 = (-(2**63), 2**63 - 1)


def to_us(value: datetime) -> int:
    """An aware datetime as exact integer microseconds since the epoch (naive means UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - EPOCH) // _MICRO


def from_us(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


def ms_datetime(us: int | None) -> datetime | None:
    """The millisecond BSON-date copy of a microsecond instant (what survives a round trip)."""
    if us is None or us == NO_TIME:
        return None
    return EPOCH + timedelta(milliseconds=us // 1000)


def safe_text(text: str) -> str:
    """A string every MongoDB-wire server stores: NUL -> U+2400 (PostgreSQL's jsonb under FerretDB cannot
    hold it, nor can a BSON key), a lone surrogate (valid in JSON's ``\\u`` escapes, not UTF-8) -> U+FFFD."""
    if "\x00" in text:
        text = text.replace("\x00", "\u2400")
    if not text.isascii():
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def safe_key(key: str) -> str:
    """A key every MongoDB-wire server stores: ``.`` -> U+FF0E, a leading ``$`` -> U+FF04, "" -> U+2400,
    and what safe_text changes."""
    if key == "":
        return "\u2400"
    key = safe_text(key).replace(".", "\uff0e")
    if key.startswith("$"):
        key = "\uff04" + key[1:]
    return key


def query_copy(value: Any) -> Any:
    """The JSON value as every MongoDB-wire server holds it: safe keys and strings, integers beyond int64
    as decimal strings, an array inside an array as its JSON text (FerretDB stores no nested arrays).

    Only the query copy is altered; ``job_json`` stays byte for byte what Trio sent.
    """
    if isinstance(value, dict):
        return {safe_key(str(k)): query_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json.dumps(v, separators=(",", ":")) if isinstance(v, list) else query_copy(v)
                for v in value]
    if isinstance(value, str):
        return safe_text(value)
    if isinstance(value, int) and not isinstance(value, bool) and not (_INT64[0] <= value <= _INT64[1]):
        return str(value)
    return value


def content(doc: dict[str, Any]) -> dict[str, Any]:
    """What the job *is* in the view: compared to decide whether a change is effective."""
    return {
        STATUS: doc.get(STATUS),
        JOB: doc.get(JOB),
        CLOSED_US: doc.get(CLOSED_US),
        CLOSED_REASON: doc.get(CLOSED_REASON),
        CLOSURE_INFERRED: doc.get(CLOSURE_INFERRED),
    }


def without_write_bookkeeping(doc: dict[str, Any] | None) -> dict[str, Any] | None:
    if doc is None:
        return None
    return {k: v for k, v in doc.items() if k not in WRITE_BOOKKEEPING}
