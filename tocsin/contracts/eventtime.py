"""Event-time guards: which source timestamps are plausible, as one pure numpy function.

Why: windows close on a watermark taken from the newest source timestamp, so one sample
stamped a year ahead ends every window of its asset for a year, and one stamped in seconds
(read as nanoseconds: 1970-01-01T00:00:01.5) is late forever. A timestamp is refused when it
is more than ``max_future_s`` ahead of the wall clock, or before ``min_year``; a refused one in
the range of epoch seconds, milliseconds or microseconds of a plausible date is named as that
unit mistake, so the producer can be fixed. Refused samples never reach a window or a detector.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np

NS = 1_000_000_000
OK, FUTURE, TOO_OLD, SECONDS, MILLIS, MICROS = range(6)
REASONS = ("ok", "future", "before_min_year", "seconds_not_ns", "millis_not_ns",
           "micros_not_ns")


def _epoch_s(year: int) -> int:
    return int(datetime(year, 1, 1, tzinfo=timezone.utc).timestamp())


@dataclass(frozen=True, slots=True)
class TimeGuard:
    """``max_future_s``: allowed clock skew ahead of this host's clock (default 5 min);
    ``min_year``: anything stamped before 1 January of this year is refused (default 2000)."""

    max_future_s: float = 300.0
    min_year: int = 2000

    @property
    def min_ns(self) -> int:
        return _epoch_s(self.min_year) * NS


_LO_S, _HI_S = _epoch_s(2000), _epoch_s(2100)  # plausible dates, for naming unit mistakes


def classify(ts: np.ndarray, now_ns: int, guard: TimeGuard = TimeGuard()) -> np.ndarray:
    """-> uint8 reason code per timestamp (``OK`` = 0); see :data:`REASONS`."""
    ts = np.asarray(ts, dtype=np.int64)
    out = np.zeros(ts.shape, dtype=np.uint8)
    if not ts.size:
        return out
    fut = ts > now_ns + int(guard.max_future_s * NS)
    old = ts < guard.min_ns
    if not (fut.any() or old.any()):
        return out
    out[fut] = FUTURE
    out[old] = TOO_OLD
    for code, scale in ((SECONDS, 1), (MILLIS, 1_000), (MICROS, 1_000_000)):
        out[old & (ts >= _LO_S * scale) & (ts < _HI_S * scale)] = code
    return out


def check_one(ts: int, now_ns: int, guard: TimeGuard = TimeGuard()) -> str | None:
    """The reason a single timestamp is refused, or None if it is plausible."""
    code = int(classify(np.array([ts], dtype=np.int64), now_ns, guard)[0])
    return None if code == OK else REASONS[code]


def describe(codes: np.ndarray) -> str:
    """'3 future, 1 seconds_not_ns' for the refused codes in ``codes``."""
    vals, counts = np.unique(codes[codes != OK], return_counts=True)
    return ", ".join(f"{c} {REASONS[v]}" for v, c in zip(vals.tolist(), counts.tolist()))
