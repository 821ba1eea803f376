"""Dead letters (topic ``tocsin.deadletter``, keyed by source topic): input that could not be
decoded or processed, kept whole (base64) with the reason, so nothing vanishes silently."""

from __future__ import annotations

import base64
from dataclasses import asdict, dataclass

import orjson

from tocsin.contracts._codec import check_schema, loads
from tocsin.contracts._codec import field as get_field

NAME = "tocsin.deadletter"
VERSION = 1


@dataclass(slots=True)
class DeadLetter:
    source_topic: str
    partition: int
    offset: int
    key: str | None  # base64 of the original key
    payload: str  # base64 of the original value
    error: str
    stage: str  # "decode" or "process"
    worker: str
    ts: int  # ns, when it was dead-lettered

    @classmethod
    def wrap(cls, *, source_topic: str, partition: int, offset: int, key: bytes | None,
             payload: bytes | None, error: str, stage: str, worker: str, ts: int) -> "DeadLetter":
        return cls(source_topic, partition, offset,
                   None if key is None else base64.b64encode(key).decode(),
                   base64.b64encode(payload or b"").decode(), error, stage, worker, ts)

    def raw_payload(self) -> bytes:
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
        return cls(
            source_topic=get_field(obj, "source_topic", str, NAME),
            partition=get_field(obj, "partition", int, NAME),
            offset=get_field(obj, "offset", int, NAME),
            key=key if isinstance(key, str) else None,
            payload=get_field(obj, "payload", str, NAME),
            error=get_field(obj, "error", str, NAME),
            stage=get_field(obj, "stage", str, NAME),
            worker=get_field(obj, "worker", str, NAME),
            ts=get_field(obj, "ts", int, NAME),
        )
