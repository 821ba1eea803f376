"""Dead letters (topic ``tocsin.deadletter``, keyed by source topic): input that could not be
decoded or processed, with the reason and where the original lives.

A dead letter must itself never fail: a payload over ``limit`` bytes (default 64 KiB) is kept
truncated, with its full length and SHA-256, so the record stays far below Kafka's 1 MB message
limit whatever came in; the original is found by its origin (topic, partition, offset,
timestamp) for as long as the source topic retains it. Build one with :func:`envelope`, after
masking anything that must not be stored in clear (card numbers): the hash is of the bytes
given, so a masked payload gives a hash that reveals nothing of the original.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import asdict, dataclass

import orjson

from tocsin.contracts._codec import check_schema, loads
from tocsin.contracts._codec import field as get_field

NAME = "tocsin.deadletter"
VERSION = 2
PAYLOAD_LIMIT = 64 * 1024  # bytes of the original kept (base64 in the record)
PAYLOAD_LIMIT_MAX = 512 * 1024  # 4/3 of this plus the reason stays under 1 MB
ERROR_LIMIT = 4000  # characters of the reason kept
KEY_LIMIT = 1024  # bytes of the original key kept


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a record came from: a Kafka position, or a feed (partition and offset -1)."""

    topic: str
    partition: int = -1
    offset: int = -1
    timestamp_ns: int = 0  # the original record's timestamp (Kafka's, or the feed's); 0 unknown
    key: bytes | None = None


@dataclass(slots=True)
class DeadLetter:
    source_topic: str
    partition: int
    offset: int
    key: str | None  # base64 of the original key (at most KEY_LIMIT bytes)
    payload: str  # base64 of the original value, or of its first `limit` bytes
    error: str
    stage: str  # "decode", "guard" or "process"
    worker: str
    ts: int  # ns, when it was dead-lettered
    length: int = 0  # bytes of the original value
    sha256: str = ""  # hex SHA-256 of the original value (as given to `envelope`)
    truncated: bool = False  # payload holds only the first bytes of the original
    origin_ts: int = 0  # ns, the original record's timestamp; 0 unknown

    @classmethod
    def wrap(cls, *, source_topic: str, partition: int, offset: int, key: bytes | None,
             payload: bytes | None, error: str, stage: str, worker: str, ts: int,
             origin_ts: int = 0, limit: int = PAYLOAD_LIMIT) -> "DeadLetter":
        return envelope(payload, error, Origin(source_topic, partition, offset, origin_ts, key),
                        stage=stage, worker=worker, ts=ts, limit=limit)

    def raw_payload(self) -> bytes:
        """The kept bytes (the whole original unless ``truncated``)."""
        return base64.b64decode(self.payload)

    def encode(self) -> bytes:
        d = asdict(self)
        d["schema"] = f"{NAME}/{VERSION}"
        return orjson.dumps(d)

    @classmethod
    def decode(cls, data: bytes) -> "DeadLetter":
        obj = loads(data, NAME)
        check_schema(obj, NAME, VERSION)
        key = obj.get("key")
        payload = get_field(obj, "payload", str, NAME)
        return cls(
            source_topic=get_field(obj, "source_topic", str, NAME),
            partition=get_field(obj, "partition", int, NAME),
            offset=get_field(obj, "offset", int, NAME),
            key=key if isinstance(key, str) else None,
            payload=payload,
            error=get_field(obj, "error", str, NAME),
            stage=get_field(obj, "stage", str, NAME),
            worker=get_field(obj, "worker", str, NAME),
            ts=get_field(obj, "ts", int, NAME),
            length=_int(obj, "length", len(base64.b64decode(payload))),
            sha256=_str(obj, "sha256"),
            truncated=obj.get("truncated") is True,
            origin_ts=_int(obj, "origin_ts", 0),
        )


def _str(obj: dict, key: str) -> str:
    v = obj.get(key)
    return v if isinstance(v, str) else ""


def _int(obj: dict, key: str, default: int) -> int:
    v = obj.get(key)
    return v if type(v) is int else default


def envelope(payload: bytes | None, reason: str, origin: Origin, *, stage: str, worker: str,
             ts: int, limit: int = PAYLOAD_LIMIT) -> DeadLetter:
    """The dead letter for ``payload``: truncated to ``limit`` bytes (with length and SHA-256
    of the whole), the reason cut to ERROR_LIMIT characters, the key to KEY_LIMIT bytes."""
    if not 0 <= limit <= PAYLOAD_LIMIT_MAX:
        raise ValueError(f"dead-letter payload limit must be 0..{PAYLOAD_LIMIT_MAX} bytes")
    data = bytes(payload or b"")
    kept = data[:limit]
    if len(reason) > ERROR_LIMIT:
        reason = reason[:ERROR_LIMIT] + f"... ({len(reason)} characters)"
    key = origin.key
    return DeadLetter(
        source_topic=origin.topic[:256], partition=origin.partition, offset=origin.offset,
        key=None if key is None else base64.b64encode(bytes(key)[:KEY_LIMIT]).decode(),
        payload=base64.b64encode(kept).decode(), error=reason, stage=stage, worker=worker,
        ts=ts, length=len(data), sha256=hashlib.sha256(data).hexdigest(),
        truncated=len(kept) < len(data), origin_ts=origin.timestamp_ns)
