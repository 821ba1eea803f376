"""Decision steps, explicit and in this order: calibrated score -> smoothing -> threshold ->
persistence. Each is a pure function of the past (causal), so the stream and the offline
evaluation decide alike, and each has a stated effect on delay and on clearing.

1. Calibrate (:mod:`tocsin.detectors.calibration`): raw score -> surprise = -log10 p.
2. Smooth: EWMA with weight ``alpha`` on the newest row (1 = off). It averages away single
   noisy rows; a step of height h reaches h(1 - (1 - alpha)^t) after t rows, and after a
   fault ends the smoothed score falls back by the same factor per row.
3. Threshold: one number on the surprise scale for every detector and stream (default 3:
   a row as extreme as 1 normal row in 1,000).
4. Persistence, k of n: alarm when at least ``k`` of the last ``n`` rows are above the
   threshold; the alarm clears when fewer than ``k`` are, at most ``n - k + 1`` rows after
   the score drops back. ``k = n = 1`` alarms on every crossing.

:func:`clear_rows` gives the worst-case rows from the end of a fault to the clear of the
alarm, for a score that drops from ``peak`` to the normal level at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tocsin.detectors.protocol import ModelError


def ewma(x: np.ndarray, alpha: float, init: float | None = None) -> np.ndarray:
    """Causal exponentially weighted mean; NaN rows keep the previous value."""
    x = np.asarray(x, dtype=np.float64)
    if not 0.0 < alpha <= 1.0:
        raise ModelError(f"ewma: alpha must be in (0, 1], got {alpha}")
    if alpha == 1.0:
        return x.copy()
    out = np.empty_like(x)
    prev = np.nan if init is None else float(init)
    for i, v in enumerate(x):
        if np.isnan(v):
            out[i] = prev
            continue
        prev = v if np.isnan(prev) else alpha * v + (1.0 - alpha) * prev
        out[i] = prev
    return out


def k_of_n(above: np.ndarray, k: int, n: int) -> np.ndarray:
    """True where at least ``k`` of the last ``n`` rows (this one included) are True."""
    if not 1 <= k <= n:
        raise ModelError(f"persistence: need 1 <= k <= n, got k={k}, n={n}")
    a = np.asarray(above, dtype=bool).astype(np.int64)
    c = np.cumsum(a)
    prev = np.concatenate([np.zeros(min(n, c.size), dtype=np.int64), c[:-n]]) if c.size > n \
        else np.zeros(c.size, dtype=np.int64)
    return (c - prev) >= k


@dataclass(frozen=True)
class DecisionRule:
    threshold: float = 3.0  # on the surprise scale
    alpha: float = 1.0  # EWMA weight of the newest row (1: no smoothing)
    k: int = 1
    n: int = 1

    @property
    def name(self) -> str:
        parts = [f"s>{self.threshold:g}"]
        if self.alpha < 1.0:
            parts.insert(0, f"ewma {self.alpha:g}")
        if self.n > 1:
            parts.append(f"{self.k}/{self.n}")
        return ", ".join(parts)

    def apply(self, surprise: np.ndarray) -> np.ndarray:
        s = np.nan_to_num(np.asarray(surprise, dtype=np.float64), nan=0.0)
        return k_of_n(ewma(s, self.alpha) > self.threshold, self.k, self.n)

    def clear_rows(self, peak: float, normal: float = 0.0) -> int:
        """Worst-case rows from a fault's end until the alarm clears (score drops to
        ``normal`` at once; the EWMA decays; then n - k + 1 rows for the persistence)."""
        decay = 0
        if self.alpha < 1.0 and peak > self.threshold > normal:
            decay = math.ceil(math.log((self.threshold - normal) / (peak - normal))
                              / math.log(1.0 - self.alpha))
        return decay + self.n - self.k + 1


# the named rules `tocsin eval` offers (--rule) and the benchmarks tabulate; all fixed before
# any test data was seen, none fitted to labels
RULES = {
    "raw": DecisionRule(3.0),
    "s4": DecisionRule(4.0),
    "2of3": DecisionRule(3.0, k=2, n=3),
    "s2_2of3": DecisionRule(2.0, k=2, n=3),
    "3of5": DecisionRule(3.0, k=3, n=5),
    "ewma": DecisionRule(2.0, alpha=0.3),
    "ewma25": DecisionRule(2.5, alpha=0.3),
}
