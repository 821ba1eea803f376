"""Small confluent-kafka helpers for the integration tests."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from confluent_kafka import (
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaError,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from tests.waiting import async_wait_for, wait_for

__all__ = ["async_wait_for", "collect", "committed_behind", "end_offsets", "produce",
           "read_committed", "read_to_end", "wait_committed", "wait_for"]

from tocsin.config.kafka_security import client_conf


def produce(bootstrap: str, topic: str, items: list[tuple[bytes | None, bytes]]) -> None:
    p = Producer(client_conf(bootstrap, {"enable.idempotence": True}))
    for key, value in items:
        p.produce(topic, value, key=key)
    assert p.flush(30) == 0, "messages not acknowledged by Kafka"


def collect(bootstrap: str, topic: str, until: Callable[[list], bool], timeout: float = 60.0,
            decode: Callable[[bytes], object] = lambda b: b, committed: bool = True) -> list:
    """Read `topic` from the beginning until `until(items)` holds or the timeout passes
    (``committed``: read_committed, as an exactly-once consumer reads)."""
    c = Consumer(client_conf(bootstrap, {"group.id": f"test-{uuid.uuid4().hex}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False,
                  "isolation.level": "read_committed" if committed else "read_uncommitted"}))
    c.subscribe([topic])
    items: list = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not until(items):
            msg = c.poll(0.2)
            if msg is None or msg.error():
                continue
            items.append((msg.key(), decode(msg.value())))
    finally:
        c.close()
    return items


def read_to_end(bootstrap: str, topic: str, decode: Callable[[bytes], object] = lambda b: b,
                timeout: float = 60.0) -> list:
    """Every message of `topic` up to the end offsets as of now, as (key, value) pairs: a read
    that ends when the topic is read, not after a guessed time."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"test-{uuid.uuid4().hex}",
                  "enable.auto.commit": False})
    try:
        parts = sorted(c.list_topics(topic, timeout=15).topics[topic].partitions)
        ends = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=15) for p in parts}
        todo = {p for p, (lo, hi) in ends.items() if hi > lo}
        c.assign([TopicPartition(topic, p, ends[p][0]) for p in todo])
        items: list = []
        wait_for(lambda: not todo or _take(c, items, todo, ends, decode), timeout,
                 f"every message of {topic} up to {ends}", seen=lambda: f"{len(items)} read")
        return items
    finally:
        c.close()


def read_committed(bootstrap: str, topic: str, decode: Callable[[bytes], object] = lambda b: b,
                   timeout: float = 60.0) -> list:
    """What a read_committed consumer sees of `topic` up to its last stable offset now (the
    end of a transactional topic is a commit marker, never a message: read to EOF)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"test-{uuid.uuid4().hex}",
                  "enable.auto.commit": False, "isolation.level": "read_committed",
                  "enable.partition.eof": True})
    try:
        parts = sorted(c.list_topics(topic, timeout=15).topics[topic].partitions)
        c.assign([TopicPartition(topic, p, 0) for p in parts])
        todo, items = set(parts), []

        def take() -> bool:
            for msg in c.consume(500, 0.2):
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        todo.discard(msg.partition())
                    continue
                items.append((msg.key(), decode(msg.value())))
            return not todo

        wait_for(take, timeout, f"{topic} read to its end", seen=lambda: f"{len(items)} read")
        return items
    finally:
        c.close()


def _take(c: Consumer, items: list, todo: set, ends: dict, decode) -> bool:
    for msg in c.consume(500, 0.2):
        if msg.error() or msg.partition() not in todo:
            continue
        items.append((msg.key(), decode(msg.value())))
        if msg.offset() + 1 >= ends[msg.partition()][1]:
            todo.discard(msg.partition())
    return not todo


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """{partition: end offset} of `topic` now."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"test-{uuid.uuid4().hex}"})
    try:
        parts = sorted(c.list_topics(topic, timeout=15).topics[topic].partitions)
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=15)[1]
                for p in parts}
    finally:
        c.close()


def committed_behind(bootstrap: str, group: str, topic: str,
                     ends: dict[int, int]) -> dict[int, tuple[int, int]]:
    """{partition: (committed, end)} where group `group` has not yet committed up to `ends`
    (empty: it has processed and committed all of it)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    fut = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(
        group, [TopicPartition(topic, p) for p in ends])])[group]
    got = {tp.partition: tp.offset for tp in fut.result(15).topic_partitions}
    behind = {p: (got.get(p, -1), hi) for p, hi in ends.items()
              if hi > 0 and got.get(p, -1) < hi}
    # a transactional topic ends in commit markers, never consumed: behind only by markers
    # (or aborted records) is caught up
    return {p: v for p, v in behind.items()
            if v[0] < 0 or _data_between(bootstrap, topic, p, v[0], v[1])}


def _data_between(bootstrap: str, topic: str, p: int, lo: int, hi: int) -> bool:
    """Whether a read_committed consumer finds a record of `topic`[p] in [lo, hi)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"test-{uuid.uuid4().hex}",
                  "enable.auto.commit": False, "isolation.level": "read_committed",
                  "enable.partition.eof": True})
    try:
        c.assign([TopicPartition(topic, p, lo)])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            for msg in c.consume(100, 0.2):
                err = msg.error()
                if err is None:
                    return msg.offset() < hi
                if err.code() == KafkaError._PARTITION_EOF:
                    return False
        return True
    finally:
        c.close()


def wait_committed(bootstrap: str, group: str, topic: str, timeout: float = 60.0) -> None:
    """Until consumer group `group` has committed every message in `topic` as of this call
    (later messages do not count: a topic still being written is no moving target). Faust
    commits only what its agents processed, after flushing what they sent."""
    ends = end_offsets(bootstrap, topic)
    behind: dict = {}

    def caught_up() -> bool:
        behind.clear()
        behind.update(committed_behind(bootstrap, group, topic, ends))
        return not behind

    wait_for(caught_up, timeout, f"group {group} to commit {topic} up to {ends}",
             seen=lambda: f"behind (committed, end) by partition: {behind}", interval=0.3)
