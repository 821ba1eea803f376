"""Bounded event-time alignment for the terminal stage (the role of Kafka Streams'
``max.task.idle.ms``).

The terminal stage reads one through-topic partition, written by card-stage tasks that drain
their own card partitions at their own pace: under a backlog one source can be hours of event
time ahead of another. A transaction is therefore held until every *active* source has passed
its event time (each source's watermark: the largest event time it has sent, carried by its
records and by the watermark records the card stage sends to every partition), then released
in ``(ts, tie)`` order -- so the terminal features, and the scores, equal an event-time replay.

Bounds, so a dead or finished source cannot stop the stage: a source whose watermark has not
advanced for ``idle_ns`` of wall time is not waited for (a source never heard from is waited for
``idle_ns`` after the partition opened); ``max_skew_ns`` of event time behind the most advanced
source at most; ``max_buffer`` transactions held at most. What is released past a bound may be
scored before an earlier transaction that arrives later (the terminal state still counts it by
event time: :mod:`tocsin.detectors.fraud_terminal`). Pure: the wall clock comes in.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from typing import Any

NO_WM = -1


class Aligner:
    def __init__(self, sources: Iterable[str] = (), *, idle_ns: int = 5 * 10**9,
                 max_skew_ns: int | None = None, max_buffer: int = 200_000):
        self.expected = list(sources)
        self.idle_ns, self.max_skew_ns, self.max_buffer = idle_ns, max_skew_ns, max_buffer
        self.wm: dict[str, int] = {}
        self.advanced: dict[str, int] = {}  # wall ns of each source's last advance
        self.heap: list[tuple[int, int, int, Any]] = []
        self._n = 0  # insertion counter: equal (ts, tie) never compare items
        self.forced = 0  # released by a bound, not by the watermarks

    def open(self, now_ns: int, marks: dict[str, int] | None = None) -> None:
        """Start waiting: restored watermarks (``marks``) and the expected sources count as
        advanced now."""
        for s, ts in (marks or {}).items():
            self.wm[s] = max(self.wm.get(s, NO_WM), ts)
        for s in [*self.expected, *self.wm]:
            self.wm.setdefault(s, NO_WM)
            self.advanced[s] = now_ns

    def watermark(self, source: str, ts: int, now_ns: int) -> bool:
        """Note that ``source`` has sent everything up to ``ts``; True if it advanced."""
        if ts > self.wm.get(source, NO_WM):
            self.wm[source] = ts
            self.advanced[source] = now_ns
            return True
        return False

    def push(self, ts: int, tie: int, item: Any) -> None:
        self._n += 1
        heapq.heappush(self.heap, (ts, tie, self._n, item))

    def bound(self, now_ns: int) -> int | None:
        """Event time up to which transactions may go (None: no limit)."""
        active = [w for s, w in self.wm.items() if now_ns - self.advanced[s] <= self.idle_ns]
        b = min(active) if active else None
        if b is not None and self.max_skew_ns is not None and self.wm:
            b = max(b, max(self.wm.values()) - self.max_skew_ns)
        return b

    def release(self, now_ns: int) -> list[tuple[int, int, int, Any]]:
        """The held transactions that may go now, in event-time order."""
        heap = self.heap
        if not heap:
            return []
        b = self.bound(now_ns)
        out = []
        pop = heapq.heappop
        while heap and (b is None or heap[0][0] <= b):
            out.append(pop(heap))
        while len(heap) > self.max_buffer:
            out.append(pop(heap))
            self.forced += 1
        return out

    def __len__(self) -> int:
        return len(self.heap)
