"""Sequential tests on the PCA residuals: EWMA charts for small shifts, slow drift and
noise changes that a row-by-row T²/Q misses.

A row-wise Q compares each row alone with the normal correlation structure, so a sensor
that drifts by a fraction of its noise per minute, or whose noise doubles, stays inside
the limit for a long time. Accumulating evidence over rows is the classical remedy
(Roberts 1959, EWMA; Lowry et al. 1992, MEWMA; applied to PCA residuals by Kano et al.
2002). Per row, the residual of each column of the standardised input, divided by its
training spread, is u_j (about N(0, 1) on normal rows); then

- ``stat="mean"``: the EWMA of u_j (weight ``lam``) per column, scaled by its asymptotic
  spread sqrt(lam / (2 - lam)); the score is the largest |value| over columns (a shift or
  drift in one sensor's relation to the others);
- ``stat="var"``: the EWMA of u_j² per column; the score is the largest value (a sensor
  whose noise grew, an oscillation that breaks the correlation structure).

The score of a row depends on the rows before it: :meth:`score` expects consecutive rows
of one stream (as the offline evaluation and a per-asset stream operator give) and starts
each call from the normal state (0 for the mean, 1 for the variance). Calibration
(:mod:`tocsin.detectors.calibration`) then sets the limit from out-of-fold scores, so
``lam`` changes sensitivity and delay, never the false-alarm rate.

A fault that ends lets the EWMA decay by (1 - lam) per row: with ``lam = 0.1`` a score at
10x its limit is back under it after about 22 rows.
"""

from __future__ import annotations

import numpy as np

from tocsin.detectors.pca import principal_subspace, rowdot
from tocsin.detectors.protocol import ModelError, Standardized, register

RESIDUAL_STATS = ("mean", "var")
CLIP = 5.0


def ewma_rows(u: np.ndarray, lam: float, start: float) -> np.ndarray:
    """Column-wise causal EWMA over rows (rows x columns), starting from ``start``."""
    out = np.empty_like(u)
    prev = np.full(u.shape[1], start, dtype=np.float64)
    for i in range(u.shape[0]):
        prev = lam * u[i] + (1.0 - lam) * prev
        out[i] = prev
    return out


@register("residual_mean")
class ResidualEWMA(Standardized):
    """EWMA chart of per-column PCA residuals; ``stat`` is "mean" or "var"."""

    def __init__(self, stat: str = "mean", lam: float = 0.1, variance: float = 0.9):
        if stat not in RESIDUAL_STATS:
            raise ModelError(f"residual_ewma: stat must be one of {RESIDUAL_STATS}, "
                             f"got {stat!r}")
        if not 0.0 < lam <= 1.0:
            raise ModelError(f"residual_ewma: lam must be in (0, 1], got {lam}")
        if not 0.0 < variance < 1.0:
            raise ModelError(f"residual_ewma: variance must be in (0, 1), got {variance}")
        self.stat, self.lam, self.variance = stat, lam, variance
        self.name = f"residual_{stat}"
        self.d: int | None = None
        self.min_rows = 10

    def fit(self, x: np.ndarray) -> "ResidualEWMA":
        z = self._fit_z(x)
        self.k, vt, _ = principal_subspace(z, self.variance)
        self.components = vt[:self.k].T
        sd = self._oof_resid(z).std(axis=0)
        self.resid_sd = np.where(sd > 1e-9, sd, 1.0)
        return self

    def _oof_resid(self, z: np.ndarray, folds: int = 5) -> np.ndarray:
        """Residuals of each training row from a subspace fitted without its block: the
        in-sample residual spread understates new rows', most for columns with little
        weight in the training variance (and the chart takes the max over columns)."""
        n = len(z)
        if n < 10 * folds:
            return self._resid(z)
        edges = np.linspace(0, n, folds + 1).astype(int)
        out = np.empty_like(z)
        for a, b in zip(edges[:-1], edges[1:]):
            rest = np.r_[z[:a], z[b:]]
            _, _, vt = np.linalg.svd(rest - rest.mean(axis=0), full_matrices=False)
            p = vt[:self.k].T
            out[a:b] = z[a:b] - rowdot(rowdot(z[a:b], p), p.T)
        return out

    def _resid(self, z: np.ndarray) -> np.ndarray:
        return z - rowdot(rowdot(z, self.components), self.components.T)

    def score(self, x: np.ndarray) -> np.ndarray:
        u = self._resid(self._score_z(x)) / self.resid_sd
        # clipped at CLIP: a sensor gone wild must not hold the chart up for minutes after it
        # recovers (a clipped u² of 25 decays under 2 in about 25 rows at lam 0.1)
        u = np.clip(u, -CLIP, CLIP)
        if self.stat == "mean":
            e = ewma_rows(u, self.lam, 0.0) / np.sqrt(self.lam / (2.0 - self.lam))
            return np.abs(e).max(axis=1)
        return ewma_rows(u * u, self.lam, 1.0).max(axis=1)

    def to_dict(self) -> dict:
        return {"kind": "residual_ewma", "stat": self.stat, "lam": self.lam,
                "variance": self.variance, "mean": self.mean.tolist(),
                "std": self.std.tolist(), "components": self.components.tolist(),
                "resid_sd": self.resid_sd.tolist()}

    @classmethod
    def from_dict(cls, doc: dict) -> "ResidualEWMA":
        try:
            m = cls(str(doc["stat"]), float(doc["lam"]), float(doc["variance"]))
            m.mean = np.asarray(doc["mean"], dtype=np.float64)
            m.std = np.asarray(doc["std"], dtype=np.float64)
            m.components = np.asarray(doc["components"], dtype=np.float64).reshape(
                len(m.mean), -1)
            m.resid_sd = np.asarray(doc["resid_sd"], dtype=np.float64)
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"residual_ewma: malformed model document ({exc!r})") from exc
        m.k = m.components.shape[1]
        m.d = len(m.mean)
        return m
