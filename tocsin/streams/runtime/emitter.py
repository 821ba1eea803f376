"""The Emitter the runner hands to operators: outputs collected for the batch's transaction.

Nothing is sent from here: the runner produces what was collected inside the transaction that
also carries the changelog writes and the input offsets, so a crash before the commit leaves
no visible output. A muted emitter (replay restore) drops everything.
"""

from __future__ import annotations

import logging
import time

from tocsin.contracts.deadletter import PAYLOAD_LIMIT, Origin, envelope
from tocsin.detectors.bounds import Throttled
from tocsin.streams import metrics
from tocsin.streams.runtime.operator import Record

log = logging.getLogger("tocsin.runtime")


class BatchEmitter:
    """Collects ``(topic, key, value)`` outputs of one batch; dead letters go to
    ``deadletter_topic`` (key: the source topic) as a :mod:`tocsin.contracts.deadletter`
    envelope."""

    def __init__(self, deadletter_topic: str, worker: str, limit: int = PAYLOAD_LIMIT,
                 interval_s: float = 60.0):
        self.deadletter_topic = deadletter_topic
        self.worker = worker
        self.limit = limit
        self.muted = False
        self.out: list[tuple[str, bytes | None, bytes]] = []
        self._report = Throttled(log, f"{worker}: records dead-lettered", interval_s)

    def send(self, topic: str, key: bytes | None, value: bytes) -> None:
        if not self.muted:
            self.out.append((topic, key, value))

    def dead_letter(self, record: Record, reason: str, stage: str) -> None:
        if self.muted:
            return
        origin = Origin(record.topic, record.partition, record.offset,
                        record.timestamp_ms * 1_000_000 if record.timestamp_ms > 0 else 0,
                        record.key)
        dl = envelope(record.value, reason, origin, stage=stage, worker=self.worker,
                      ts=time.time_ns(), limit=self.limit)
        self.out.append((self.deadletter_topic, record.topic.encode(), dl.encode()))
        metrics.DEADLETTERS.labels(record.topic, stage).inc()
        self._report.note(stage, example=f"{record.topic}[{record.partition}]@"
                          f"{record.offset}: {reason[:300]}")

    def take(self) -> list[tuple[str, bytes | None, bytes]]:
        out, self.out = self.out, []
        return out
