"""Avro codecs for the project's topics (fastavro; every schema parsed once).

Wire format: Avro single-object encoding (``C3 01`` + the writer schema's 8-byte CRC-64-AVRO
fingerprint, little-endian + the Avro binary body), so a consumer can tell schema versions apart
without a registry. Every committed version under ``schemas/<name>/`` is known to the decoder, which
resolves data written by any of them to the newest (reader) schema.
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Generic, TypeVar

import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form

from services.common.errors import DecodeError
from services.common.events import JobEvent, JobState

SINGLE_OBJECT_MAGIC = b"\xc3\x01"
_HEADER = struct.Struct("<2sQ")  # magic, fingerprint (little-endian uint64)


def schemas_dir() -> Path:
    """Where the committed .avsc files live (the repository's schemas/ folder)."""
    return Path(__file__).resolve().parents[2] / "schemas"


def schema_versions(name: str) -> list[tuple[int, dict[str, Any]]]:
    """All committed versions of a schema, oldest first, as (version, schema JSON)."""
    folder = schemas_dir() / name
    found = []
    for path in folder.glob("v*.avsc"):
        found.append((int(path.stem[1:]), json.loads(path.read_text())))
    if not found:
        raise FileNotFoundError(f"no schema versions under {folder}")
    return sorted(found, key=lambda item: item[0])


def _fingerprint(parsed: Any) -> int:
    return int(fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO"), 16)


T = TypeVar("T")


@dataclass(frozen=True)
class SchemaVersion:
    version: int
    parsed: Any
    fingerprint: int


class AvroCodec(Generic[T]):
    """Encode and decode one record type of one schema family.

    ``to_record`` / ``from_record`` map between the Python type and the Avro record dict.
    """

    def __init__(self, name: str, to_record: Callable[[T], dict], from_record: Callable[[dict], T]) -> None:
        self.name = name
        self._to_record = to_record
        self._from_record = from_record
        self.versions: list[SchemaVersion] = []
        for version, raw in schema_versions(name):
            parsed = fastavro.parse_schema(raw)
            self.versions.append(SchemaVersion(version, parsed, _fingerprint(parsed)))
        self.current = self.versions[-1]
        self._by_fingerprint = {v.fingerprint: v for v in self.versions}

    def encode(self, value: T) -> bytes:
        buf = io.BytesIO()
        buf.write(_HEADER.pack(SINGLE_OBJECT_MAGIC, self.current.fingerprint))
        fastavro.schemaless_writer(buf, self.current.parsed, self._to_record(value))
        return buf.getvalue()

    def decode(self, data: bytes | None) -> T:
        """Decode bytes of any known version; raises DecodeError saying what was wrong."""
        if data is None:
            raise DecodeError(f"{self.name}: no value (a tombstone or an empty message)")
        if len(data) < _HEADER.size:
            raise DecodeError(f"{self.name}: {len(data)} bytes is too short for an Avro single-object header")
        magic, fp = _HEADER.unpack_from(data)
        if magic != SINGLE_OBJECT_MAGIC:
            raise DecodeError(f"{self.name}: not Avro single-object encoding (first bytes {data[:2].hex()})")
        writer = self._by_fingerprint.get(fp)
        if writer is None:
            raise DecodeError(f"{self.name}: unknown schema fingerprint {fp:016x} (a newer producer?)")
        try:
            record = fastavro.schemaless_reader(
                io.BytesIO(data[_HEADER.size :]), writer.parsed, self.current.parsed
            )
            return self._from_record(record)  # type: ignore[arg-type]
        except Exception as exc:  # fastavro raises many types on garbage
            raise DecodeError(f"{self.name} v{writer.version}: cannot decode body: {exc}") from exc

    def version_of(self, data: bytes) -> int:
        magic, fp = _HEADER.unpack_from(data)
        if magic != SINGLE_OBJECT_MAGIC or fp not in self._by_fingerprint:
            raise DecodeError(f"{self.name}: unknown header")
        return self._by_fingerprint[fp].version


@cache
def job_event_codec() -> AvroCodec[JobEvent]:
    return AvroCodec("job_event", JobEvent.to_record, JobEvent.from_record)


@cache
def job_state_codec() -> AvroCodec[JobState]:
    return AvroCodec("job_state", JobState.to_record, JobState.from_record)
