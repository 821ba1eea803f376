"""The input partitions a runner holds, their state, and the restore on assignment.

State is per input partition number: an operator with several inputs gets one KeyedState per
partition number (its inputs must be co-partitioned; the cooperative assignor does not promise
that both topics' partition p land on the same worker, so multi-input operators should merge
their inputs through one topic). Restore runs inside the rebalance callback, before the
partition is handed to the fetcher, so no record is processed against missing state.
"""

from __future__ import annotations

import logging
import time

from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from tocsin.errors import ServiceError
from tocsin.streams import metrics
from tocsin.streams.runtime.emitter import BatchEmitter
from tocsin.streams.runtime.operator import Operator
from tocsin.streams.runtime.restore import Restorer
from tocsin.streams.runtime.state import KeyedState

log = logging.getLogger("tocsin.runtime")


class Assignment:
    def __init__(self, op: Operator, restorer: Restorer, changelog: str | None,
                 emitter: BatchEmitter, timeout_s: float = 120.0):
        self.op = op
        self.mode = op.restore_mode()
        self.restorer = restorer
        self.changelog = changelog if self.mode.kind == "changelog" else None
        self.emitter = emitter
        self.timeout_s = timeout_s
        self.tps: set[tuple[str, int]] = set()
        self.states: dict[int, KeyedState] = {}
        self.m_restore = metrics.RT_RESTORE.labels(op.name)

    def holds(self, topic: str, partition: int) -> bool:
        return (topic, partition) in self.tps

    def add(self, consumer, tps: list[TopicPartition]) -> list[TopicPartition]:
        """Restore the state of newly assigned partitions; -> their committed offsets."""
        if not tps:
            return []
        committed = committed_offsets(consumer, tps, self.timeout_s)
        by_part: dict[int, list[TopicPartition]] = {}
        for c in committed:
            by_part.setdefault(c.partition, []).append(c)
        t0 = time.perf_counter()
        new = {p: KeyedState(p, logged=self.changelog is not None)
               for p in sorted(by_part) if p not in self.states}
        n = self.restorer.changelog(self.changelog, new) if self.changelog and new else 0
        for p, st in new.items():
            self.states[p] = st
            self.op.open(p, st)
            if self.mode.kind == "replay":
                n += self._replay(by_part[p])
        if new:
            dt = time.perf_counter() - t0
            self.m_restore.observe(dt)
            log.info("%s: partitions %s restored (%d records, %.2fs)", self.op.name,
                     sorted(new), n, dt)
        self.tps |= {(t.topic, t.partition) for t in tps}
        return committed

    def _replay(self, committed: list[TopicPartition]) -> int:
        n = 0
        self.emitter.muted = True
        try:
            for c in committed:
                try:
                    ts = int(c.metadata or 0)
                except ValueError:
                    ts = 0
                n += self.restorer.replay(c.topic, c.partition, c.offset, ts,
                                          self.mode.horizon_s,
                                          lambda recs: self.op.process(recs, self.emitter))
        finally:
            self.emitter.muted = False
        return n

    def remove(self, tps: list[TopicPartition]) -> None:
        """Drop revoked partitions and, once no input of a partition number is held, its
        state (the new owner restores it)."""
        self.tps -= {(t.topic, t.partition) for t in tps}
        held = {p for _, p in self.tps}
        for p in [p for p in self.states if p not in held]:
            self.op.close(p)
            del self.states[p]

    def rewind(self, consumer) -> None:
        """After an aborted transaction: state back to the committed point, fetch positions
        back to the committed offsets."""
        tps = [TopicPartition(t, p) for t, p in sorted(self.tps)]
        self.remove(tps)
        for c in self.add(consumer, tps):
            off = c.offset if c.offset >= 0 else OFFSET_BEGINNING
            consumer.seek(TopicPartition(c.topic, c.partition, off))

    def changes(self) -> list[tuple[int, dict[bytes, bytes | None]]]:
        return [(p, st.take_changes()) for p, st in self.states.items() if st.dirty]

    def drop_changes(self) -> None:
        for st in self.states.values():
            st.take_changes()


def committed_offsets(consumer, tps: list[TopicPartition], timeout_s: float) -> list[TopicPartition]:
    """The group's committed offsets of ``tps``, never a partition whose fetch failed.

    A partition whose offset fetch reports an error (for instance an unstable offset while a
    dead worker's transaction is still open) comes back with offset -1001, which reads like
    "never committed": a rewind would then seek to the beginning and process the partition
    again. So errors are retried until ``timeout_s``, then raised (the worker exits and is
    restarted, which is safe), and -1001 only ever means "nothing committed yet".
    """
    want = [TopicPartition(t.topic, t.partition) for t in tps]
    deadline = time.monotonic() + timeout_s
    while True:
        got = consumer.committed(want, timeout=max(1.0, deadline - time.monotonic()))
        bad = [c for c in got if c.error is not None]
        if not bad:
            return got
        if time.monotonic() >= deadline:
            raise ServiceError(f"committed offsets of {bad[0].topic}[{bad[0].partition}] not "
                               f"available in {timeout_s:.0f}s: {bad[0].error}")
        log.info("committed offsets of %d partitions not available yet (%s); retrying",
                 len(bad), bad[0].error)
        time.sleep(0.2)
