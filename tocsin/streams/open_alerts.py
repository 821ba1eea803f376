"""Read the open alerts from the compacted ``plant.alerts.open`` topic, and send acks.

The topic holds the newest event of every open alert (key = alert id) and a tombstone for
each cleared one, so reading it from the beginning up to the end offsets of its partitions
gives exactly the open alerts, however long the plant has run.
"""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from tocsin.config.kafka_security import client_conf
from tocsin.contracts.acks import Ack
from tocsin.contracts.alerts import Alert
from tocsin.errors import SchemaError, ServiceError


def read_open_alerts(bootstrap: str, topic: str, timeout: float = 15.0
                     ) -> tuple[dict[str, Alert], list[str]]:
    """(open alerts by id, errors for undecodable records) as of now."""
    c = Consumer(client_conf(bootstrap, {"group.id": f"tocsin-list-{uuid.uuid4().hex}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False,
                  # written in transactions: read what is committed, to the last stable
                  # offset (a topic ends in a commit marker, never a message: the EOF says so)
                  "isolation.level": "read_committed", "enable.partition.eof": True}))
    try:
        md = c.list_topics(topic, timeout=timeout)
        t = md.topics.get(topic)
        if t is None or t.error is not None:
            raise ServiceError(f"topic {topic} not found at {bootstrap} (is the fusion worker "
                               f"running with the same --prefix?)")
        ends = {}
        for p in t.partitions:
            lo, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)
            if hi > lo:
                ends[p] = hi
        c.assign([TopicPartition(topic, p, 0) for p in ends] or [])
        open_: dict[str, Alert] = {}
        errors: list[str] = []
        deadline = time.monotonic() + timeout
        done: set[int] = set()
        while len(done) < len(ends) and time.monotonic() < deadline:
            msg = c.poll(0.2)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    done.add(msg.partition())
                else:
                    errors.append(str(msg.error()))
                continue
            key = (msg.key() or b"").decode(errors="replace")
            if msg.value() is None:
                open_.pop(key, None)
            else:
                try:
                    open_[key] = Alert.decode(msg.value())
                except SchemaError as exc:
                    errors.append(f"offset {msg.offset()}: {exc}")
            if msg.offset() + 1 >= ends[msg.partition()]:
                done.add(msg.partition())
        if len(done) < len(ends):
            raise ServiceError(f"{topic}: not read to its end within {timeout:.0f}s")
        return open_, errors
    except KafkaError as exc:  # pragma: no cover - broker gone
        raise ServiceError(f"cannot read {topic}: {exc}") from exc
    finally:
        c.close()


def send_ack(bootstrap: str, topic: str, ack: Ack, timeout: float = 15.0) -> None:
    p = Producer(client_conf(bootstrap, {"enable.idempotence": True}))
    p.produce(topic, ack.encode(), key=ack.alert_id.encode())
    if p.flush(timeout) != 0:
        raise ServiceError(f"ack not acknowledged by Kafka at {bootstrap} within {timeout:.0f}s")
