"""From a detector's raw score to a tail probability on a fixed scale (peaks over threshold).

Raw scores mean different things per detector and per stream (an Isolation Forest's 0.62,
a reconstruction error's 3.1, a T² ratio's 1.4). Calibration fits, on scores of NORMAL rows
the detector did not train on (out-of-fold or held back), the distribution of the score:

- the body empirically (``quantiles`` of the calibration scores);
- the tail above the ``tail`` quantile u (default the 90 % quantile) with a generalised
  Pareto distribution of the exceedances (Pickands-Balkema-de Haan: the excess over a high
  threshold of almost any distribution is GPD), fitted by maximum likelihood (scipy).

``sf(s)`` is then the estimated probability that a normal row scores at least ``s``:
(1 - tail_q) * GPD.sf(s - u) above u. Extrapolating this way sets limits far beyond the
largest calibration score (a 1e-4 limit from 500 rows) where an empirical quantile cannot.
The shape ξ is clamped to [0, 0.5]: a negative ξ (a finite upper end point) fitted to a
few dozen exceedances puts a hard wall right above the calibration data and new normal data
crosses it; ξ >= 0 errs towards fewer false alarms.

``surprise(s) = -log10 sf(s)`` is the fixed-scale score: 2 means "1 normal row in 100 is
this extreme", 3 "1 in 1000", for every detector, stream and asset, so one threshold serves
them all, and calibrated scores combine (:func:`combine`). ``probability(s) = 1 - sf(s)``
is the same number as an anomaly probability in [0, 1].
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from tocsin.detectors.protocol import ModelError

SF_FLOOR = 1e-12  # surprise is capped at 12
N_QUANTILES = 201


@dataclass
class TailCalibration:
    tail_q: float  # fraction of calibration scores below the tail threshold u
    u: float
    xi: float
    sigma: float
    quantiles: list[float]  # body: calibration scores at N_QUANTILES evenly spaced levels
    n: int  # calibration scores used

    def sf(self, s: np.ndarray) -> np.ndarray:
        s = np.asarray(s, dtype=np.float64)
        q = np.asarray(self.quantiles)
        levels = np.linspace(0.0, 1.0, len(q))
        body = 1.0 - np.interp(s, q, levels, left=0.0, right=1.0)
        exc = np.maximum(s - self.u, 0.0) / self.sigma
        if self.xi > 1e-9:
            tail = np.power(1.0 + self.xi * exc, -1.0 / self.xi)
        else:
            tail = np.exp(-exc)
        tail = (1.0 - self.tail_q) * tail
        out = np.where(s > self.u, tail, np.maximum(body, 1.0 - self.tail_q))
        out = np.where(np.isnan(s), np.nan, out)
        return np.clip(out, SF_FLOOR, 1.0)

    def surprise(self, s: np.ndarray) -> np.ndarray:
        return -np.log10(self.sf(s))

    def surprise_uncapped(self, s: np.ndarray) -> np.ndarray:
        """The surprise without the cap at 12 (tail computed in log space): equal to
        :meth:`surprise` below the cap and still increasing above it, so extreme rows keep
        their order (for a scorer that picks its own threshold from a ranking)."""
        s = np.asarray(s, dtype=np.float64)
        exc = np.maximum(s - self.u, 0.0) / self.sigma
        if self.xi > 1e-9:
            log_tail = -np.log10(1.0 + self.xi * exc) / self.xi
        else:
            log_tail = -exc * np.log10(np.e)
        above = -(np.log10(1.0 - self.tail_q) + log_tail)
        return np.where(s > self.u, np.maximum(above, self.surprise(s)), self.surprise(s))

    def probability(self, s: np.ndarray) -> np.ndarray:
        return 1.0 - self.sf(s)

    def threshold(self, surprise: float) -> float:
        """The raw score whose surprise is ``surprise`` (for a ModelScore's threshold)."""
        p = 10.0 ** -surprise
        if p >= 1.0 - self.tail_q:
            return float(np.interp(1.0 - p, np.linspace(0, 1, len(self.quantiles)),
                                   self.quantiles))
        r = p / (1.0 - self.tail_q)
        if self.xi > 1e-9:
            return float(self.u + self.sigma * (r ** -self.xi - 1.0) / self.xi)
        return float(self.u - self.sigma * np.log(r))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: dict) -> "TailCalibration":
        try:
            return cls(float(doc["tail_q"]), float(doc["u"]), float(doc["xi"]),
                       float(doc["sigma"]), [float(v) for v in doc["quantiles"]],
                       int(doc["n"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"calibration: malformed document ({exc!r})") from exc


def fit_tail(scores: np.ndarray, tail: float = 0.9, min_exceedances: int = 20,
             xi_max: float = 0.5) -> TailCalibration:
    """Fit the calibration on scores of normal rows unseen by the detector."""
    s = np.asarray(scores, dtype=np.float64)
    s = s[np.isfinite(s)]
    if s.size < 30:
        raise ModelError(f"calibration: need at least 30 finite normal scores, got {s.size}")
    tail = min(tail, 1.0 - min_exceedances / s.size) if s.size * (1 - tail) < min_exceedances \
        else tail
    tail = max(tail, 0.5)
    u = float(np.quantile(s, tail))
    exc = s[s > u] - u
    quantiles = np.quantile(s, np.linspace(0.0, 1.0, N_QUANTILES)).tolist()
    scale_floor = max(1e-12, 1e-6 * (abs(u) + float(np.std(s))))
    if exc.size < 3 or float(exc.max()) <= scale_floor:
        return TailCalibration(tail, u, 0.0, max(float(exc.mean()) if exc.size else 0.0,
                                                 scale_floor), quantiles, int(s.size))
    xi, sigma = _gpd_mle(exc)
    if xi < 0.0 or xi > xi_max:  # refit the scale with the shape pinned at the bound
        xi = float(np.clip(xi, 0.0, xi_max))
        sigma = _gpd_sigma(exc, xi)
    return TailCalibration(tail, u, xi, max(sigma, scale_floor), quantiles, int(s.size))


def _gpd_mle(exc: np.ndarray) -> tuple[float, float]:
    from scipy import stats

    try:
        xi, _, sigma = stats.genpareto.fit(exc, floc=0.0)
    except (ValueError, RuntimeError, FloatingPointError):
        return 0.0, float(exc.mean())
    if not (np.isfinite(xi) and np.isfinite(sigma) and sigma > 0):
        return 0.0, float(exc.mean())
    return float(xi), float(sigma)


def _gpd_sigma(exc: np.ndarray, xi: float) -> float:
    """MLE of the GPD scale for a fixed shape (1-D, bounded search)."""
    from scipy import optimize, stats

    if xi <= 1e-9:
        return float(exc.mean())  # the exponential's MLE
    m = float(exc.mean())
    res = optimize.minimize_scalar(
        lambda ls: -stats.genpareto.logpdf(exc, xi, 0.0, np.exp(ls)).sum(),
        bounds=(np.log(m) - 5, np.log(m) + 5), method="bounded")
    return float(np.exp(res.x))


def combine(surprises: dict[str, np.ndarray], how: str = "bonferroni") -> np.ndarray:
    """Ensemble of calibrated scores -> one surprise on the same scale.

    ``bonferroni``: -log10(min(1, m * min_i p_i)): alarm when any member is extreme,
    paying log10(m) for asking m detectors, so the ensemble's false-alarm rate stays at
    most the target. ``mean``: the mean surprise (a consensus; smoother, weaker on faults
    only one member sees). Raw scores are never combined.
    """
    if not surprises:
        raise ModelError("combine: no detector scores")
    stack = np.vstack([np.asarray(v, dtype=np.float64) for v in surprises.values()])
    m = stack.shape[0]
    if how == "bonferroni":
        best = np.nanmax(stack, axis=0)
        return np.maximum(best - np.log10(m), 0.0)
    if how == "mean":
        return np.nanmean(stack, axis=0)
    raise ModelError(f"combine: how must be 'bonferroni' or 'mean', got {how!r}")
