"""Read a compacted topic to its current end: the newest value of every key (tombstones
remove the key). Used to restore state written as one record per key."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from tocsin.config.kafka_security import client_conf
from tocsin.errors import ServiceError


def read_compacted(bootstrap: str, topic: str, timeout: float = 15.0) -> dict[str, bytes]:
    c = Consumer(client_conf(bootstrap, {"group.id": f"tocsin-read-{uuid.uuid4().hex}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False,
                  # written in transactions: read what is committed, to the last stable
                  # offset (a topic ends in a commit marker, never a message: the EOF says so)
                  "isolation.level": "read_committed", "enable.partition.eof": True}))
    try:
        md = c.list_topics(topic, timeout=timeout).topics.get(topic)
        if md is None or md.error is not None:
            return {}
        ends = {}
        for p in md.partitions:
            lo, hi = watermarks(c, topic, p, timeout)
            if hi > lo:
                ends[p] = hi
        c.assign([TopicPartition(topic, p, 0) for p in ends])
        out: dict[str, bytes] = {}
        done: set[int] = set()
        deadline = time.monotonic() + timeout
        while len(done) < len(ends) and time.monotonic() < deadline:
            msg = c.poll(0.2)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() != KafkaError._PARTITION_EOF:
                    raise ServiceError(f"cannot read {topic}: {msg.error()}")
                done.add(msg.partition())
                continue
            key = (msg.key() or b"").decode(errors="replace")
            if msg.value() is None:
                out.pop(key, None)
            else:
                out[key] = msg.value()
            if msg.offset() + 1 >= ends[msg.partition()]:
                done.add(msg.partition())
        if len(done) < len(ends):
            raise ServiceError(f"{topic}: not read to its end within {timeout:.0f}s")
        return out
    finally:
        c.close()


def watermarks(c: Consumer, topic: str, partition: int, timeout: float) -> tuple[int, int]:
    """Low and high offsets, retried while a just-created topic's leader settles (the
    broker answers NOT_LEADER_FOR_PARTITION for a moment after CreateTopics)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout)
        except KafkaException as exc:
            if time.monotonic() > deadline:
                raise ServiceError(f"{topic}[{partition}]: no offsets: {exc}") from exc
            time.sleep(0.2)
