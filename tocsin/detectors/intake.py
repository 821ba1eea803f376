"""Readings intake: decode a frame, drop the samples with implausible event times, and say why.

Every readings consumer (thresholds, features, the history sink) takes frames through this one
function, so the same frame is judged the same way everywhere. A refused sample never reaches
a detector or a window (a sample a year ahead would move the watermark a year); the frame's
reason names how many samples were refused and why, so the caller can dead-letter a copy.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from tocsin.contracts import eventtime
from tocsin.contracts.readings import ReadingsFrame
from tocsin.detectors.bounds import Throttled

log = logging.getLogger("tocsin.intake")


@dataclass(slots=True)
class Intake:
    frame: ReadingsFrame  # the plausible samples (may be empty)
    refused: int = 0  # samples dropped by the event-time guard
    reason: str = ""  # why, for the dead letter; "" when nothing was refused


def select(frame: ReadingsFrame, keep: np.ndarray) -> ReadingsFrame:
    """The frame with only the samples where ``keep`` is true."""
    tags = [t for t, k in zip(frame.tags, keep.tolist()) if k]
    return ReadingsFrame(frame.asset, tags, frame.ts[keep], frame.values[keep],
                         frame.quality[keep], source=frame.source, seq=frame.seq)


class ReadingsIntake:
    """Decode + event-time guard; counts refused samples per reason (logged once per
    interval, never one line per frame)."""

    def __init__(self, guard: eventtime.TimeGuard = eventtime.TimeGuard(),
                 interval_s: float = 60.0, who: str = "readings"):
        self.guard = guard
        self._min_ns = guard.min_ns
        self._future_ns = int(guard.max_future_s * eventtime.NS)
        self.report = Throttled(log, f"{who}: samples refused by the event-time guard",
                                interval_s)

    def take(self, value: bytes, now_ns: int) -> Intake:
        """Raises :class:`~tocsin.errors.SchemaError` for a frame that does not decode."""
        return self.check(ReadingsFrame.decode(value), now_ns)

    def check(self, frame: ReadingsFrame, now_ns: int) -> Intake:
        ts = frame.ts
        # the common case (every sample plausible) in two reductions, no per-sample arrays
        if not len(ts) or (ts.min() >= self._min_ns and ts.max() <= now_ns + self._future_ns):
            return Intake(frame)
        codes = eventtime.classify(ts, now_ns, self.guard)
        if not codes.any():
            return Intake(frame)
        bad = codes != eventtime.OK
        i = int(np.flatnonzero(bad)[0])
        what = eventtime.describe(codes)
        for code, n in zip(*np.unique(codes[bad], return_counts=True)):
            self.report.note(eventtime.REASONS[int(code)], int(n),
                             f"asset {frame.asset!r} tag {frame.tags[i]!r} ts {int(frame.ts[i])}")
        reason = (f"event time: {int(bad.sum())} of {len(frame)} samples refused ({what}; "
                  f"max future skew {self.guard.max_future_s:g}s, min year "
                  f"{self.guard.min_year}); first: tag {frame.tags[i]!r} ts {int(frame.ts[i])}")
        return Intake(select(frame, ~bad), int(bad.sum()), reason)
