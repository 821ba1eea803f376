"""Small confluent-kafka helpers for the integration tests."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from confluent_kafka import Consumer, Producer

from tocsin.config.kafka_security import client_conf


def produce(bootstrap: str, topic: str, items: list[tuple[bytes | None, bytes]]) -> None:
    p = Producer(client_conf(bootstrap, {"enable.idempotence": True}))
    for key, value in items:
        p.produce(topic, value, key=key)
    assert p.flush(30) == 0, "messages not acknowledged by Kafka"


def collect(bootstrap: str, topic: str, until: Callable[[list], bool], timeout: float = 60.0,
            decode: Callable[[bytes], object] = lambda b: b) -> list:
    """Read `topic` from the beginning until `until(items)` holds or the timeout passes."""
    c = Consumer(client_conf(bootstrap, {"group.id": f"test-{uuid.uuid4().hex}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False}))
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
