"""`tocsin record`: consume topics (every partition, a start and an end) into a recording."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    Consumer,
    KafkaError,
    TopicPartition,
)

from tocsin import __version__
from tocsin.config.kafka_security import client_conf
from tocsin.connectors.recording import Message, RecordingWriter
from tocsin.errors import TocsinError


@dataclass
class RecordSpec:
    topics: list[str]
    start: str = "beginning"  # "beginning", "end", "offset:N", or an ISO-8601 time
    until: str = "end"  # "end" (high watermarks at start), "live", or an ISO-8601 time
    duration: float | None = None  # seconds, for live recordings


def _ms(iso: str) -> int:
    try:
        dt = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError as exc:
        raise TocsinError(f"not an ISO-8601 time: {iso!r}") from exc
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp() * 1000)


def record(broker: str, spec: RecordSpec, out: str | Path,
           progress: Callable[[int, int], None] | None = None,
           stop: Callable[[], bool] = lambda: False) -> int:
    """Write the messages selected by `spec` to `out`; return how many were written."""
    consumer = Consumer(client_conf(broker, {"group.id": "tocsin-recorder",
                         "enable.auto.commit": False, "enable.partition.eof": True}))
    try:
        meta = consumer.list_topics(timeout=15)
        tps: list[TopicPartition] = []
        for t in spec.topics:
            tm = meta.topics.get(t)
            if tm is None or tm.error is not None:
                raise TocsinError(f"topic {t!r} does not exist on {broker}")
            tps += [TopicPartition(t, p) for p in sorted(tm.partitions)]
        start = _start_offsets(consumer, tps, spec.start)
        ends: dict[tuple[str, int], int] = {}
        until_ms = None
        if spec.until == "end":
            for tp in tps:
                lo, hi = consumer.get_watermark_offsets(tp, timeout=15)
                ends[(tp.topic, tp.partition)] = hi
        elif spec.until != "live":
            until_ms = _ms(spec.until)
        consumer.assign(start)
        header = {"created": datetime.now(timezone.utc).isoformat(), "broker": broker,
                  "tocsin": __version__, "start": spec.start, "until": spec.until}
        done = {k for k, hi in ends.items() if _first(start, k) >= hi} if ends else set()
        n = 0
        deadline = time.monotonic() + spec.duration if spec.duration else None
        with RecordingWriter(out, header) as w:
            w.declare_topics(spec.topics)
            while not stop():
                if ends and len(done) == len(ends):
                    break
                if deadline and time.monotonic() >= deadline:
                    break
                msgs = consumer.consume(1000, 0.2)
                for msg in msgs:
                    err = msg.error()
                    key = (msg.topic(), msg.partition())
                    if err is not None:
                        if err.code() == KafkaError._PARTITION_EOF:
                            if spec.until == "end":
                                done.add(key)
                            elif until_ms is not None:
                                done.add(key)
                            continue
                        raise TocsinError(f"kafka error while recording: {err}")
                    if key in done:
                        continue
                    tstype, ts = msg.timestamp()
                    if until_ms is not None and ts > until_ms:
                        done.add(key)
                        continue
                    if ends and msg.offset() >= ends[key]:
                        done.add(key)
                        continue
                    w.write(Message(msg.topic(), msg.partition(), msg.offset(), ts,
                                    msg.key(), msg.value(), list(msg.headers() or []), tstype))
                    n += 1
                    if ends and msg.offset() + 1 >= ends[key]:
                        done.add(key)
                if until_ms is not None and len(done) == len(tps):
                    break
                if progress:
                    progress(n, w.f.tell())
        return n
    finally:
        consumer.close()


def _first(tps: list[TopicPartition], key: tuple[str, int]) -> int:
    for tp in tps:
        if (tp.topic, tp.partition) == key:
            return tp.offset if tp.offset >= 0 else -1
    return -1


def _start_offsets(consumer: Consumer, tps: list[TopicPartition],
                   start: str) -> list[TopicPartition]:
    if start == "beginning":
        out = []
        for tp in tps:
            lo, _ = consumer.get_watermark_offsets(tp, timeout=15)
            out.append(TopicPartition(tp.topic, tp.partition, lo))
        return out
    if start == "end":  # the end as of now, fixed here (not whenever the fetcher resolves it)
        out = []
        for tp in tps:
            _, hi = consumer.get_watermark_offsets(tp, timeout=15)
            out.append(TopicPartition(tp.topic, tp.partition, hi))
        return out
    if start.startswith("offset:"):
        try:
            off = int(start.split(":", 1)[1])
        except ValueError as exc:
            raise TocsinError(f"bad start {start!r}: expected offset:N") from exc
        return [TopicPartition(tp.topic, tp.partition, off) for tp in tps]
    ms = _ms(start)
    found = consumer.offsets_for_times([TopicPartition(tp.topic, tp.partition, ms)
                                        for tp in tps], timeout=15)
    return [TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_END)
            for tp in found]


__all__ = ["RecordSpec", "record", "OFFSET_BEGINNING"]
