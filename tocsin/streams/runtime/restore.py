"""Reading state back on assignment: a changelog partition to its end, or a replay window.

One assign-only consumer per runner (read_committed, no group offsets), so restoring never
touches the group's committed positions. The end of a partition is its last stable offset
(librdkafka's partition EOF under read_committed), so an aborted or still-open transaction of
a dead worker is never restored.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from tocsin.errors import ServiceError
from tocsin.streams.runtime.operator import Record
from tocsin.streams.runtime.state import KeyedState

CHUNK = 2000
_NO_LEADER_YET = {KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE,
                  KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_PARTITION,
                  KafkaError._TIMED_OUT}


def to_record(m) -> Record:
    kind, ts = m.timestamp()
    return Record(m.topic(), m.partition(), m.offset(), m.key(), m.value() or b"",
                  ts if kind and ts > 0 else 0)


class Restorer:
    def __init__(self, conf: dict, timeout_s: float = 120.0):
        self.timeout_s = timeout_s
        self.c = Consumer({**conf, "group.id": conf.get("group.id", "tocsin-restore"),
                           "enable.auto.commit": False, "enable.partition.eof": True,
                           "isolation.level": "read_committed",
                           "auto.offset.reset": "earliest", "fetch.wait.max.ms": 50})

    def close(self) -> None:
        self.c.close()

    def _watermarks(self, tp: TopicPartition) -> tuple[int, int]:
        """The partition's low and high offsets; a partition without a leader yet (a
        changelog topic created a moment ago, a leader moving) is asked again until the
        timeout instead of failing the rebalance callback and with it the runner."""
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                return self.c.get_watermark_offsets(tp, timeout=self.timeout_s)
            except KafkaException as exc:
                err = exc.args[0]
                if err.code() not in _NO_LEADER_YET or time.monotonic() > deadline:
                    raise
            time.sleep(0.1)

    def _read(self, tps: list[TopicPartition], stop_before: dict[int, int] | None,
              feed: Callable[[int, Sequence], None]) -> int:
        """Feed messages of each ``tps`` from its offset to its end (or ``stop_before`` by
        partition), all partitions at once; ``feed(partition, messages)``."""
        todo: dict[int, int] = {}
        assign = []
        for tp in tps:
            low, high = self._watermarks(TopicPartition(tp.topic, tp.partition))
            end = high if stop_before is None else min(high, stop_before[tp.partition])
            start = low if tp.offset < 0 else max(tp.offset, low)
            if start < end:
                todo[tp.partition] = end
                assign.append(TopicPartition(tp.topic, tp.partition, start))
        if not assign:
            return 0
        topic = assign[0].topic
        self.c.assign(assign)
        deadline = time.monotonic() + self.timeout_s
        n = 0
        try:
            while todo:
                got: dict[int, list] = {}
                for m in self.c.consume(CHUNK, 0.05):
                    p, err = m.partition(), m.error()
                    if err is not None:
                        if err.code() == KafkaError._PARTITION_EOF:
                            todo.pop(p, None)
                            continue
                        raise ServiceError(f"restore of {topic}[{p}]: {err}")
                    if p not in todo:
                        continue
                    if m.offset() >= todo[p]:
                        todo.pop(p)
                        continue
                    got.setdefault(p, []).append(m)
                for p, msgs in got.items():
                    feed(p, msgs)
                    n += len(msgs)
                for pos in self.c.position([TopicPartition(topic, p) for p in todo]):
                    if pos.offset >= todo[pos.partition]:
                        todo.pop(pos.partition)
                if todo and time.monotonic() > deadline:
                    raise ServiceError(f"restore of {topic} partitions {sorted(todo)} did not "
                                       f"reach its end in {self.timeout_s:.0f}s")
        finally:
            self.c.unassign()
        return n

    def changelog(self, topic: str, states: dict[int, KeyedState]) -> int:
        """Apply changelog ``topic``'s partitions to ``states`` (by partition); -> records."""
        def feed(p: int, msgs) -> None:
            apply = states[p].apply_changelog
            for m in msgs:
                apply(m.key(), m.value())

        return self._read([TopicPartition(topic, p, OFFSET_BEGINNING) for p in states], None,
                          feed)

    def replay(self, topic: str, partition: int, committed: int, committed_ts_ms: int,
               horizon_s: float, feed: Callable[[list[Record]], None]) -> int:
        """Feed the input records of the ``horizon_s`` before the committed position (by
        Kafka timestamp) to ``feed``; -> records fed."""
        if committed <= 0 or committed_ts_ms <= 0:
            return 0
        want = TopicPartition(topic, partition, max(0, committed_ts_ms - int(horizon_s * 1000)))
        start = self.c.offsets_for_times([want], timeout=self.timeout_s)[0].offset
        if start < 0 or start >= committed:
            return 0
        return self._read([TopicPartition(topic, partition, start)], {partition: committed},
                          lambda _p, msgs: feed([to_record(m) for m in msgs]))
