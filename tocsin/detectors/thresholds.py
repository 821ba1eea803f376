"""The fast threshold stream: per-tag high / low / rate-of-change limits with hysteresis.

Pure numpy: a frame's samples go in as arrays, alarm transitions come out. State (whether a
rule is active, the last value for rate of change) is explicit and lives in the object, so
the same frames in the same order always give the same transitions (event time only).

Semantics per tag and rule (ISA-18.2 style):
- high: raise when value > high; clear when value < high - deadband.
- low:  raise when value < low;  clear when value > low + deadband.
- rate: raise when |dv/dt| (units per second, between consecutive source timestamps of the
  tag) > rate; clear when it falls to <= rate * (1 - rate_clear_fraction), by default half
  the limit, so noise on a slowly decaying rate does not flap the alarm.
Samples of bad quality and NaN values are ignored; they neither raise nor clear.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
import orjson

RULES = ("high", "low", "rate")
SNAPSHOT_VERSION = 1


@dataclass(frozen=True, slots=True)
class TagLimits:
    high: float | None = None
    low: float | None = None
    rate: float | None = None  # units per second
    deadband: float = 0.0
    rate_clear_fraction: float = 0.5
    severity: str = "warning"


@dataclass(frozen=True, slots=True)
class Transition:
    tag: str
    rule: str
    raised: bool  # True: the rule became active; False: it cleared
    value: float  # the value (or |rate| for the rate rule) at the transition
    limit: float
    ts: int  # ns, source timestamp of the sample that caused it
    opened_ts: int  # ns, source timestamp of the sample that opened the episode
    severity: str


class ThresholdDetector:
    """Threshold state of one asset; feed it frames in arrival order with :meth:`update`."""

    def __init__(self, limits: Mapping[str, TagLimits]):
        self.tags = list(limits)
        self.index = {t: i for i, t in enumerate(self.tags)}
        n = len(self.tags)
        nan = np.nan

        def arr(get):
            return np.array([nan if get(limits[t]) is None else get(limits[t])
                             for t in self.tags], dtype=np.float64).reshape(n)

        self.high = arr(lambda lim: lim.high)
        self.low = arr(lambda lim: lim.low)
        self.rate = arr(lambda lim: lim.rate)
        self.deadband = arr(lambda lim: lim.deadband)
        self.rate_clear = self.rate * (1.0 - arr(lambda lim: lim.rate_clear_fraction))
        self.severity = [limits[t].severity for t in self.tags]
        self._limit = (self.high, self.low, self.rate)
        self._has_rule = [bool((~np.isnan(x)).any()) for x in self._limit]
        # explicit state
        self.active = np.zeros((len(RULES), n), dtype=bool)
        self.opened = np.zeros((len(RULES), n), dtype=np.int64)
        self.last_value = np.full(n, np.nan)
        self.last_ts = np.zeros(n, dtype=np.int64)
        self.unknown_tags = 0
        self._layouts: dict[tuple[str, ...], tuple] = {}

    def _layout(self, tags: list[str]):
        """Tag indices, sort order and group bounds of a frame layout, cached: a source
        usually sends the same tag sequence frame after frame."""
        key = tuple(tags)
        hit = self._layouts.get(key)
        if hit is None:
            get = self.index.get
            idx = np.fromiter((get(t, -1) for t in tags), dtype=np.int64, count=len(tags))
            order = np.argsort(idx, kind="stable")
            hit = (idx, order, *_groups(idx[order]))
            if len(self._layouts) >= 64:
                self._layouts.clear()
            self._layouts[key] = hit
        return hit

    def update(self, tags: list[str], ts: np.ndarray, values: np.ndarray,
               quality: np.ndarray) -> list[Transition]:
        """Evaluate one frame; return the transitions it causes, in source-time order."""
        if not tags:
            return []
        idx, order, start, end = self._layout(tags)
        keep = (idx >= 0) & (quality != 2) & ~np.isnan(values)
        if keep.all() and (ts.size < 2 or (ts[1:] >= ts[:-1]).all()):
            # common case: all samples usable and in source-time order, so a stable sort by
            # tag (cached with the layout) is the (tag, ts) order
            idx, ts, values = idx[order], ts[order], values[order]
        else:
            self.unknown_tags += int((idx < 0).sum())
            idx, ts, values = idx[keep], ts[keep], values[keep]
            if idx.size == 0:
                return []
            o = np.lexsort((ts, idx))
            idx, ts, values = idx[o], ts[o], values[o]
            start, end = _groups(idx)
        out: list[Transition] = []
        for r in range(len(RULES)):
            if not self._has_rule[r]:
                continue
            limit = self._limit[r][idx]
            if r == 2:
                shown = self._rates(idx, ts, values, start)
                set_m = shown > limit
            else:
                shown = values
                set_m = values > limit if r == 0 else values < limit
            was = self.active[r, idx[start]]
            if not set_m.any() and not was.any():
                continue  # the common case: nothing active, nothing crossing
            if r == 0:
                reset_m = values < limit - self.deadband[idx]
            elif r == 1:
                reset_m = values > limit + self.deadband[idx]
            else:
                reset_m = shown <= self.rate_clear[idx]
            out.extend(self._transitions(r, idx, ts, start, end, set_m, reset_m, limit, shown))
        self.last_value[idx[end]] = values[end]
        self.last_ts[idx[end]] = ts[end]
        if len(out) > 1:
            out.sort(key=lambda t: t.ts)
        return out

    def _rates(self, idx, ts, values, start) -> np.ndarray:
        """|dv/dt| in units/s against the previous sample of the same tag (or the stored one
        from the previous frame); NaN where there is none or the timestamps are equal."""
        n = idx.size
        prev_v = np.empty(n)
        prev_t = np.empty(n, dtype=np.int64)
        prev_v[1:], prev_t[1:] = values[:-1], ts[:-1]
        prev_v[start], prev_t[start] = self.last_value[idx[start]], self.last_ts[idx[start]]
        dt = (ts - prev_t) / 1e9
        rate = np.full(n, np.nan)
        np.divide(np.abs(values - prev_v), dt, out=rate, where=dt > 0)
        return rate

    def _transitions(self, r, idx, ts, start, end, set_m, reset_m, limit, shown):
        n = idx.size
        sig = np.zeros(n, dtype=np.int8)
        sig[reset_m] = -1
        sig[set_m] = 1
        stored = np.where(self.active[r, idx], 1, -1).astype(np.int8)
        # a group start with no signal inherits the stored state, so the forward fill below
        # never leaks one tag's state into the next tag's samples
        sig[start & (sig == 0)] = stored[start & (sig == 0)]
        pos = np.where(sig != 0, np.arange(n), 0)
        np.maximum.accumulate(pos, out=pos)
        state = sig[pos]
        prev = np.empty(n, dtype=np.int8)
        prev[1:] = state[:-1]
        prev[start] = stored[start]
        changed = np.flatnonzero(state != prev)
        out = []
        for i in changed.tolist():
            t = int(idx[i])
            raised = bool(state[i] > 0)
            if raised:
                self.opened[r, t] = ts[i]
            out.append(Transition(self.tags[t], RULES[r], raised, float(shown[i]),
                                  float(limit[i]), int(ts[i]), int(self.opened[r, t]),
                                  self.severity[t]))
        self.active[r, idx[end]] = state[end] > 0
        return out


def snapshot(det: "ThresholdDetector") -> bytes:
    """The detector's explicit state as bytes (durable state: a restart continues every
    active alarm under the same opened_ts, hence the same alert id)."""
    return orjson.dumps({"v": SNAPSHOT_VERSION, "tags": det.tags, "active": det.active,
                         "opened": det.opened, "last_value": det.last_value,
                         "last_ts": det.last_ts},
                        option=orjson.OPT_SERIALIZE_NUMPY)  # NaN -> null


def restore(det: "ThresholdDetector", data: bytes) -> None:
    """Load a :func:`snapshot` into ``det``, tag by tag: tags the limits no longer have are
    dropped, new tags start clear (a config change never misplaces an alarm)."""
    obj = orjson.loads(data)
    if obj.get("v") != SNAPSHOT_VERSION:
        raise ValueError(f"threshold snapshot version {obj.get('v')!r}, want {SNAPSHOT_VERSION}")
    src = [det.index.get(t, -1) for t in obj["tags"]]
    have = np.array([i >= 0 for i in src], dtype=bool)
    dst = np.array([i for i in src if i >= 0], dtype=np.int64)
    if not dst.size:
        return
    active = np.asarray(obj["active"], dtype=bool).reshape(len(RULES), -1)
    opened = np.asarray(obj["opened"], dtype=np.int64).reshape(len(RULES), -1)
    det.active[:, dst] = active[:, have]
    det.opened[:, dst] = opened[:, have]
    det.last_value[dst] = np.asarray([np.nan if v is None else v for v in obj["last_value"]],
                                     dtype=np.float64)[have]
    det.last_ts[dst] = np.asarray(obj["last_ts"], dtype=np.int64)[have]


def _groups(sorted_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Masks of the first and last sample of each tag in tag-sorted order."""
    n = sorted_idx.size
    start = np.ones(n, dtype=bool)
    if n:
        np.not_equal(sorted_idx[1:], sorted_idx[:-1], out=start[1:])
    end = np.ones(n, dtype=bool)
    end[:-1] = start[1:]
    return start, end
