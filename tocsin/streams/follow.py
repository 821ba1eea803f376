"""Follow a topic from the command line: one poll loop for every tail and demo.

`follow` yields each record decoded with its contract's ``decode``; a record that does not
decode (for any reason), and a Kafka error other than the end of a partition, go to
``on_error`` as one readable line (topic, partition, offset, reason) and the loop goes on, so
one bad record never stops a tail or a demo. Tails read in a group of their own and commit
nothing, so they report bad records instead of dead-lettering them (the consumers that own
the topic do that).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

from confluent_kafka import Consumer, KafkaError

from tocsin.config.kafka_security import client_conf

T = TypeVar("T")


def tail_consumer(bootstrap: str, topics: Sequence[str], *, from_beginning: bool,
                  group: str = "tocsin-tail") -> Consumer:
    """A consumer in a group of its own (nothing committed), subscribed to ``topics``."""
    c = Consumer(client_conf(bootstrap, {"group.id": f"{group}-{uuid.uuid4().hex}",
                  "auto.offset.reset": "earliest" if from_beginning else "latest",
                  "enable.auto.commit": False}))
    c.subscribe(list(topics))
    return c


def follow(consumer: Consumer, decode: Callable[[bytes], T], *,
           until: Callable[[], bool] = lambda: False,
           on_error: Callable[[str], None] | None = None,
           timeout: float | None = None, poll_s: float = 0.2) -> Iterator[T]:
    """Decoded records until ``until()`` is true or ``timeout`` seconds have passed."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while not until() and (deadline is None or time.monotonic() < deadline):
        msg = consumer.poll(poll_s)
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() != KafkaError._PARTITION_EOF and on_error is not None:
                on_error(f"kafka: {msg.error()}")
            continue
        try:  # any failure, not only SchemaError: one bad record never stops a tail
            item = decode(msg.value())
        except Exception as exc:
            if on_error is not None:
                on_error(f"undecodable record at {msg.topic()}[{msg.partition()}]@"
                         f"{msg.offset()}: {exc}")
            continue
        yield item
