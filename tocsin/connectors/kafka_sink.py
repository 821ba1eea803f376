"""Publish readings frames to Kafka with an idempotent confluent-kafka producer."""

from __future__ import annotations

import logging

from confluent_kafka import KafkaError, Producer

from tocsin.contracts.readings import ReadingsFrame

log = logging.getLogger(__name__)


class KafkaFrameSink:
    def __init__(self, bootstrap: str, topic: str, *, linger_ms: int = 5,
                 extra: dict | None = None):
        conf = {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": linger_ms,
            "compression.type": "lz4",
            "client.id": "tocsin-connector",
        }
        conf.update(extra or {})
        self.topic = topic
        self.producer = Producer(conf)
        self.delivered = 0
        self.failed = 0

    def _on_delivery(self, err: KafkaError | None, msg) -> None:
        if err is not None:
            self.failed += 1
            log.error("frame for asset %s not delivered to %s: %s", msg.key(), self.topic, err)
        else:
            self.delivered += 1

    def publish(self, frame: ReadingsFrame) -> None:
        data = frame.encode()
        while True:
            try:
                self.producer.produce(self.topic, data, key=frame.asset.encode(),
                                      on_delivery=self._on_delivery)
                break
            except BufferError:  # local queue full: serve callbacks, then retry
                self.producer.poll(0.05)
        self.producer.poll(0)

    def flush(self, timeout: float = 10.0) -> int:
        return self.producer.flush(timeout)
