"""Explicit bounds (DESIGN.md principle 12): capped key sets and "counted, logged once per
interval" reports.

Why: 30,000 unknown asset ids used to mean 30,000 detector states, 30,000 Prometheus label
children and 30,001 warning lines. A :class:`KeyCap` admits at most ``cap`` keys and counts
what it turned away; a :class:`Throttled` report counts events by reason and emits at most one
log line per reason and interval, with the count since the last line and one example.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable


class KeyCap:
    """Admits the first ``cap`` distinct keys; counts the events of keys beyond it."""

    __slots__ = ("cap", "keys", "refused")

    def __init__(self, cap: int):
        if cap < 0:
            raise ValueError("cap must be >= 0")
        self.cap = cap
        self.keys: set[Hashable] = set()
        self.refused = 0

    def admit(self, key: Hashable) -> bool:
        if key in self.keys:
            return True
        if len(self.keys) < self.cap:
            self.keys.add(key)
            return True
        self.refused += 1
        return False

    def discard(self, key: Hashable) -> None:
        self.keys.discard(key)

    def __len__(self) -> int:
        return len(self.keys)


class Throttled:
    """Counts events per reason; logs one line per reason at most every ``interval_s``.

    The reasons must come from a fixed, small set (they label the line, and may label a
    metric); keys from the wire go into the example text only.
    """

    def __init__(self, log: logging.Logger, what: str, interval_s: float = 60.0,
                 level: int = logging.WARNING, clock: Callable[[], float] = time.monotonic):
        self.log, self.what, self.interval_s, self.level = log, what, interval_s, level
        self.clock = clock
        self.total: dict[str, int] = {}
        self._pending: dict[str, int] = {}
        self._example: dict[str, str] = {}
        self._last: dict[str, float] = {}

    def note(self, reason: str, n: int = 1, example: str = "") -> bool:
        """Count ``n`` events; returns True if a line was logged now."""
        if n <= 0:
            return False
        self.total[reason] = self.total.get(reason, 0) + n
        self._pending[reason] = self._pending.get(reason, 0) + n
        if example and reason not in self._example:
            self._example[reason] = example[:200]
        now = self.clock()
        last = self._last.get(reason)
        if last is not None and now - last < self.interval_s:
            return False
        self._emit(reason, now)
        return True

    def flush(self) -> None:
        """Log what is pending for every reason (at shutdown, or from a timer)."""
        now = self.clock()
        for reason in [r for r, n in self._pending.items() if n]:
            self._emit(reason, now)

    def _emit(self, reason: str, now: float) -> None:
        n = self._pending.pop(reason, 0)
        ex = self._example.pop(reason, "")
        self._last[reason] = now
        span = "" if reason not in self.total or self.total[reason] == n else \
            f" (total {self.total[reason]})"
        self.log.log(self.level, "%s: %d %s%s%s; next report for this reason in %.0fs at "
                     "the earliest", self.what, n, reason, span, f", e.g. {ex}" if ex else "",
                     self.interval_s)
