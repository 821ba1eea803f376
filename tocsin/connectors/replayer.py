"""`tocsin replay`: publish a recording to Kafka at original timing, N x speed, or as fast as
possible, to the same topics, renamed ones, or under a prefix (isolated runs).

Per-partition order is kept: a message goes to the partition it was recorded from when the
target topic has it, else to the key's partition. With ``rebase`` the Kafka timestamps, and
the source timestamps inside readings frames, are shifted so the first message is "now".
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from confluent_kafka import Producer

from tocsin.config.kafka_security import client_conf
from tocsin.connectors.kafka_admin import ensure_topics
from tocsin.connectors.recording import RecordingReader
from tocsin.errors import TocsinError

_READINGS = b'"tocsin.readings/'


@dataclass
class ReplaySpec:
    speed: float = 0.0  # 0: as fast as possible; 1: original timing; N: N x
    prefix: str = ""
    rename: dict[str, str] = field(default_factory=dict)
    topics: list[str] | None = None  # recorded topics to replay (default: all)
    rebase: bool = False
    allow_truncated: bool = False
    count_samples: bool = True  # parse frame sizes for the summary (costs ~10% speed)


@dataclass
class ReplayResult:
    messages: int = 0
    samples: int = 0
    seconds: float = 0.0
    failed: int = 0


def target_topic(topic: str, spec: ReplaySpec) -> str:
    return spec.prefix + spec.rename.get(topic, topic)


def _shift_readings(value: bytes, delta_ns: int) -> tuple[bytes, int]:
    """Shift the source timestamps of a readings frame; other payloads are left alone."""
    if _READINGS not in value:
        return value, 0
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError:
        return value, 0  # replayed as recorded; the worker dead-letters it as it did then
    if not isinstance(obj, dict) or not str(obj.get("schema", "")).startswith("tocsin.readings/"):
        return value, 0
    ts = obj.get("ts")
    if isinstance(ts, list) and all(isinstance(t, int) for t in ts):
        obj["ts"] = [t + delta_ns for t in ts]
        return orjson.dumps(obj), len(ts)
    return value, 0


def replay(path: str | Path, broker: str, spec: ReplaySpec,
           progress: Callable[[ReplayResult], None] | None = None,
           stop: Callable[[], bool] = lambda: False) -> ReplayResult:
    reader = RecordingReader(path, allow_truncated=spec.allow_truncated)
    wanted = set(spec.topics) if spec.topics else set(reader.topics)
    unknown = wanted - set(reader.topics)
    if unknown:
        raise TocsinError(f"{path}: the recording has no topic {sorted(unknown)}; it has "
                          f"{reader.topics}")
    targets = {t: target_topic(t, spec) for t in reader.topics if t in wanted}
    by_index = [targets.get(t) for t in reader.topics]
    producer = Producer(client_conf(broker, {"linger.ms": 5, "acks": "all",
                         "enable.idempotence": True, "compression.type": "lz4",
                         "queue.buffering.max.messages": 200000}))
    meta = producer.list_topics(timeout=15)
    missing = [t for t in targets.values() if t not in meta.topics]
    if missing:
        ensure_topics(broker, missing, partitions=4)
        meta = producer.list_topics(timeout=15)
    nparts = {t: len(meta.topics[t].partitions) for t in targets.values()}
    res = ReplayResult()
    errors: list[str] = []

    def on_delivery(err, msg):
        if err is not None:
            res.failed += 1
            if len(errors) < 5:
                errors.append(str(err))

    t_start = time.monotonic()
    wall0 = ts0 = None
    delta_ns = 0
    last_progress = t_start
    produce, poll = producer.produce, producer.poll
    n = 0
    try:
        for ti, partition, _off, ts, _tst, key, value, headers in reader.records():
            topic = by_index[ti]
            if topic is None:
                continue
            if ts0 is None:
                ts0 = ts
                wall0 = time.monotonic()
                if spec.rebase:
                    delta_ns = (time.time_ns() // 1_000_000 - ts0) * 1_000_000
            if spec.speed > 0:
                wait = wall0 + (ts - ts0) / 1000.0 / spec.speed - time.monotonic()
                if wait > 0:
                    poll(0)
                    time.sleep(wait)
            if spec.rebase:
                ts += delta_ns // 1_000_000
                if value is not None:
                    value, _ = _shift_readings(value, delta_ns)
            part = partition if partition < nparts[topic] else -1
            while True:
                try:
                    if headers:
                        produce(topic, value, key, partition=part, on_delivery=on_delivery,
                                timestamp=ts, headers=headers)
                    else:
                        produce(topic, value, key, partition=part, on_delivery=on_delivery,
                                timestamp=ts)
                    break
                except BufferError:  # local queue full: serve delivery reports, retry
                    poll(0.05)
            n += 1
            if spec.count_samples and value is not None and _READINGS in value:
                res.samples += _count_samples(value)
            if not n & 63:
                poll(0)
                if stop():
                    break
                if progress:
                    now = time.monotonic()
                    if now - last_progress > 0.5:
                        last_progress = now
                        res.messages, res.seconds = n, now - t_start
                        progress(res)
    finally:
        left = producer.flush(60)
        reader.close()
    res.messages = n
    res.seconds = time.monotonic() - t_start
    if left or res.failed:
        raise TocsinError(f"replay: {res.failed + left} messages not acknowledged by Kafka "
                          f"({'; '.join(errors) or 'flush timed out'})")
    return res


def _count_samples(value: bytes) -> int:
    # cheap: the number of entries of the "quality" (or "ts") array, without a full parse
    i = value.find(b'"ts":[')
    if i < 0:
        return 0
    j = value.find(b"]", i)
    return value.count(b",", i, j) + 1 if j > i + 6 else 0
