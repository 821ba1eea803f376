"""A chart of row-to-row variability: extra sensor noise, oscillations and jumps that a
residual of the (window-averaged) correlation structure misses.

Per sensor, the first difference of consecutive RAW rows, d_j = x_j(t) - x_j(t-1), over its
training spread (the root mean square of the training differences, the largest 1 % left out
so one bad row or a fold junction does not set it), clipped at ``CLIP``; the score is the
largest, over sensors, EWMA (weight ``lam``) of u_j² (about 1 on normal rows). A slow load
(wander, ramps of tens of seconds) barely moves the differences, so operating-point changes
are not read as faults (a step in the load is one large difference: at most ``lam`` x 25 on
the chart, decaying by (1 - lam) per row). What it sees: a sensor whose noise grew
(differences grow with the noise sd, a sum of the white noise and a smooth process), an
oscillation sampled at one row per second (an aliased vibration harmonic that grew,
cavitation), a valve that holds and then jumps. What it does not see, by design: a level
step or a slow drift (after the step the differences are normal again): it is a member of
an ensemble (``mode_noise``), never a detector alone.

Missing values: the last value is carried forward (a difference of 0 where no value came),
so a dropout is left to the ``missing`` check. The score of a row depends on the rows before
it in one :meth:`score` call (consecutive rows of one stream, like the residual charts);
each call starts from the normal state (1) and its first row has no difference (u = 0).
"""

from __future__ import annotations

import numpy as np

from tocsin.detectors.online import ffill
from tocsin.detectors.protocol import ModelError, as_rows, register
from tocsin.detectors.residual import CLIP, ewma_rows

# carry the last finite value of each column forward (leading gaps: the column's first finite
# value, or 0 for a column with none): the online detectors' forward fill
carried = ffill


def differences(x: np.ndarray) -> np.ndarray:
    """Row-to-row differences of the carried-forward rows; the first row gets 0."""
    c = carried(x)
    d = np.zeros_like(c)
    d[1:] = c[1:] - c[:-1]
    return d


def diff_scale(d: np.ndarray, trim: float = 0.99) -> np.ndarray:
    """Per column, the RMS of the differences below their ``trim`` quantile of |d|; columns
    that never moved get 1 (then any movement is large)."""
    a = np.abs(d)
    out = np.ones(d.shape[1])
    for j in range(d.shape[1]):
        lim = np.quantile(a[:, j], trim)
        keep = d[a[:, j] <= lim, j]
        rms = float(np.sqrt(np.mean(keep * keep))) if keep.size else 0.0
        if rms > 1e-12:
            out[j] = rms
    return out


@register("diff_var")
class DiffNoise:
    """EWMA chart of squared first differences per sensor (raw rows), max over sensors."""

    name = "diff_var"

    def __init__(self, lam: float = 0.1):
        if not 0.0 < lam <= 1.0:
            raise ModelError(f"diff_var: lam must be in (0, 1], got {lam}")
        self.lam = float(lam)
        self.d: int | None = None

    def fit(self, x: np.ndarray) -> "DiffNoise":
        a = as_rows(x, who=self.name)
        if a.shape[0] < 10:
            raise ModelError(f"{self.name}: need at least 10 training rows, got {a.shape[0]}")
        self.d = a.shape[1]
        self.scale = diff_scale(differences(a)[1:])
        return self

    def score(self, x: np.ndarray) -> np.ndarray:
        if self.d is None:
            raise ModelError(f"{self.name}: score before fit")
        a = as_rows(x, self.d, self.name)
        if not len(a):
            return np.zeros(0)
        u = np.clip(differences(a) / self.scale, -CLIP, CLIP)
        return ewma_rows(u * u, self.lam, 1.0).max(axis=1)

    def to_dict(self) -> dict:
        if self.d is None:
            raise ModelError(f"{self.name}: not fitted")
        return {"kind": "diff_var", "lam": self.lam, "scale": self.scale.tolist()}

    @classmethod
    def from_dict(cls, doc: dict) -> "DiffNoise":
        try:
            m = cls(float(doc["lam"]))
            m.scale = np.asarray(doc["scale"], dtype=np.float64)
            m.d = len(m.scale)
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"diff_var: malformed model document ({exc!r})") from exc
        return m
