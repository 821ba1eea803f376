"""The scorer's output path: scores, alerts and feature-state changelog records through one
librdkafka producer, drained whenever Faust commits input offsets.

Why not Faust's producer and ``Table.__setitem__``: measured on this project's machine, a
changelog write through the Faust table path cost about 1 ms and a plain aiokafka send about
0.3 ms, which held the scorer near 350 transactions/s with state on versus about 2,400 without
state; librdkafka batches the same records for a few microseconds each. Faust still owns the
table: it recovers it from the changelog topic on start (``table.data`` is updated locally,
the record goes to the table's changelog topic here).

At-least-once: every record of a batch is handed to librdkafka before the agent returns (so
before ``take_events`` acknowledges the inputs), and :meth:`hook_commit` makes Faust's
pre-commit producer flush also wait until Kafka acknowledged everything handed over so far.
So no input offset is committed before its scores and state are stored. A crash replays the
uncommitted inputs; feature state counts a replayed transaction once (ids kept per card).
"""

from __future__ import annotations

import asyncio
import logging

from confluent_kafka import Producer

from tocsin.config.kafka_security import client_conf

log = logging.getLogger("tocsin.payments.out")


class OutputWriter:
    def __init__(self, bootstrap: str, linger_ms: float = 1.0):
        self.p = Producer(client_conf(bootstrap, {"enable.idempotence": True,
                           "acks": "all", "linger.ms": linger_ms, "client.id": "tocsin-fraud",
                           "partitioner": "murmur2_random", "error_cb": self._error}))

    @staticmethod
    def _error(err) -> None:
        log.error("output producer: %s", err)

    def send(self, topic: str, key: bytes, value: bytes) -> None:
        while True:
            try:
                self.p.produce(topic, value, key=key)
                return
            except BufferError:  # local queue full: let deliveries complete
                self.p.poll(0.01)

    def poll(self) -> None:
        self.p.poll(0)

    async def drain(self, timeout: float = 300.0) -> None:
        """Until Kafka acknowledged every record handed over so far (librdkafka retries
        failed sends itself; an idempotent producer that cannot deliver raises a fatal
        error through ``error_cb``)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self.p) > 0:
            self.p.poll(0)
            await asyncio.sleep(0.0005)
            if loop.time() > deadline:
                raise TimeoutError(f"{len(self.p)} records not acknowledged by Kafka "
                                   f"in {timeout:.0f}s")

    def hook_commit(self, faust_producer) -> None:
        """Make Faust's pre-commit ``producer.flush()`` drain this writer too."""
        orig = faust_producer.flush

        async def flush() -> None:
            await self.drain()
            await orig()

        faust_producer.flush = flush

    def close(self) -> None:
        self.p.flush(30)
