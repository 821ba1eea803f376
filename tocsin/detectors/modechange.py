"""PCA residuals that know about operating-point changes: a leverage limit (and, optionally,
a load-velocity correction), so a mode change to a load never seen in training is not read
as a broken correlation.

Where a static PCA's residual alarms on a mode change (measured on the simulator's hard
library, ``docs/short-training.md``), the main cause is **extrapolation**: the training
head (a few hundred rows of slow load wander) holds only a handful of independent
excursions of the operating point, so the load direction of the PCA (its slowest
component) is estimated from an effective sample of ``n / tau_int`` rows, ``tau_int`` the
integrated autocorrelation time of its score (40-70 rows on the hard library's 400-row
heads: 6-10 effective rows). A small error in that direction leaves a residual that grows
with the distance along it, and a mode change goes 3-6 training spreads away (e.g. the
pump's vibration mean, whose load sensitivity is a third of its noise in training). The
statistical answer is the prediction interval of a regression: the residual's variance
at a row whose slow scores are t is sigma² (1 + h), h = sum t_i² / (lambda_i n_eff_i), the
leverage with the effective, not the nominal, sample size. Q is divided by (1 + h), the
per-column residuals of the charts by sqrt(1 + h).

Which components are slow: those whose score's integrated autocorrelation time exceeds
``slow`` (3) times the median over the kept components (on the hard library: the first
one, the load; i.i.d. training rows have none, and the detector is then a plain PCA
residual). The slow scores used for h are a **robust** (Huber, a few reweighting passes)
fit of each row on the slow loadings, so one sensor gone wild (flatlined, stuck far away)
does not pass for a plant-wide move: its score keeps growing with its size.

Optional (``taus``, default none): the residual is also regressed (ridge) on the slow
scores' "velocities" w_tau = t - F_tau(t) (F_tau a causal first-order filter) and the
velocities enter the leverage, for the lag of slow tags during a transient. Measured on
the hard library it lowered false alarms further but cost recall (docs), so it is off.

**The price, stated**: a fault that appears while the plant sits far from the training
load is seen by Q only above a (1 + h) times wider limit (h = 25 / n_eff at 5 training
spreads: with n_eff 6-10, 3.5-5x), for as long as the plant stays there; at the training
operating point (h about 0) the detector is the plain PCA residual. There is no time-out:
the widening depends on where the row is, never on elapsed time, so it cannot hold a fault
back at the trained point, and the EWMA charts (``mean``/``var``) accumulate evidence
over rows to make up part of the wider limit.

``stat``: ``"q"`` the Q / (1 + h); ``"mean"`` / ``"var"``: EWMA charts (as in
:mod:`tocsin.detectors.residual`) of the per-column residuals over their out-of-fold
spread and sqrt(1 + h). With ``taus`` the scores depend on the rows before them in one
:meth:`score` call (the filters start at the first row), as the charts' always do:
consecutive rows of one stream.
"""

from __future__ import annotations

import numpy as np

from tocsin.detectors.pca import principal_subspace, rowdot
from tocsin.detectors.protocol import ModelError, Standardized, register
from tocsin.detectors.residual import CLIP, ewma_rows

MODE_STATS = ("q", "mean", "var")
DEFAULT_TAUS: tuple[float, ...] = ()  # measured: the velocity terms cost recall (docs)


def integrated_time(t: np.ndarray) -> float:
    """Integrated autocorrelation time 1 + 2 sum rho_k of a series, summed while rho_k > 0
    (at most n / 4 lags); at least 1."""
    t = np.asarray(t, dtype=np.float64) - np.mean(t)
    n = len(t)
    var = float(t @ t)
    if n < 8 or var <= 0:
        return 1.0
    tau = 1.0
    for k in range(1, n // 4):
        rho = float(t[:-k] @ t[k:]) / var
        if rho <= 0:
            break
        tau += 2.0 * rho
    return max(1.0, tau)


def velocities(s: np.ndarray, taus: tuple[float, ...]) -> np.ndarray:
    """Per row, s - F_tau(s) for each tau (columns: tau-major, then the columns of s), the
    filters started at the first row (a steady plant there)."""
    out = []
    for tau in taus:
        a = 1.0 - np.exp(-1.0 / tau)
        f = np.empty_like(s)
        prev = s[0].copy() if len(s) else np.zeros(s.shape[1])
        for i in range(len(s)):
            prev = a * s[i] + (1.0 - a) * prev
            f[i] = prev
        out.append(s - f)
    return np.hstack(out) if out else np.zeros((len(s), 0))


@register("mode_q")
class ModeAwareResidual(Standardized):
    """PCA residual with the load-velocity correction and the leverage limit above."""

    def __init__(self, stat: str = "q", variance: float = 0.9, lam: float = 0.1,
                 taus: tuple[float, ...] = DEFAULT_TAUS, slow: float = 3.0,
                 ridge: float = 1.0, robust: bool = True):
        if stat not in MODE_STATS:
            raise ModelError(f"mode: stat must be one of {MODE_STATS}, got {stat!r}")
        if not 0.0 < variance < 1.0:
            raise ModelError(f"mode: variance must be in (0, 1), got {variance}")
        if not 0.0 < lam <= 1.0:
            raise ModelError(f"mode: lam must be in (0, 1], got {lam}")
        taus = tuple(float(t) for t in taus)
        if any(not t > 0 for t in taus):
            raise ModelError(f"mode: taus must be positive row counts, got {taus}")
        self.stat, self.variance, self.lam, self.taus = stat, variance, lam, taus
        self.slow, self.ridge, self.robust = slow, ridge, robust
        self.name = f"mode_{stat}"
        self.d: int | None = None
        self.min_rows = 20

    # -- fitting -------------------------------------------------------------------------
    def _fit_model(self, z: np.ndarray) -> None:
        n = len(z)
        self.k, vt, eig = principal_subspace(z, self.variance)
        self.components = vt[:self.k].T
        self.eig = np.maximum(eig[:self.k], 1e-12)
        t = rowdot(z, self.components)
        tau_int = np.array([integrated_time(t[:, i]) for i in range(self.k)])
        slow = tau_int > self.slow * np.median(tau_int) if self.k > 1 else np.ones(1, bool)
        self.slow_idx = np.flatnonzero(slow)
        r = z - rowdot(t, self.components.T)
        # Huber constant: 2 robust spreads of the rows' deviations from the slow part
        dev = z - rowdot(t[:, self.slow_idx], self.components[:, self.slow_idx].T)
        self.huber_c = 2.0 * float(np.median(np.abs(dev))) / 0.6745
        g = self._regressors(t, z)
        if not g.shape[1]:  # no slow component: a plain PCA residual
            self.gamma = np.zeros((0, z.shape[1]))
            self.lev_inv = np.zeros((0, 0))
            self.n_train = n
            return
        # ridge on the velocity columns only (the level columns are orthogonal to r)
        w = g[:, len(self.slow_idx):]
        if w.shape[1]:
            a = w.T @ w + self.ridge * np.eye(w.shape[1])
            self.gamma = np.linalg.solve(a, w.T @ r)
        else:
            self.gamma = np.zeros((0, z.shape[1]))
        # leverage: g' (D^-1/2 G'G D^-1/2)^-1 g with D the integrated autocorrelation times
        # of the regressors: the effective sample of each is n / tau_int, not n
        ds = 1.0 / np.sqrt([integrated_time(g[:, j]) for j in range(g.shape[1])])
        cov = (g.T @ g) * ds[:, None] * ds[None, :]
        self.lev_inv = np.linalg.pinv(cov + 1e-9 * np.eye(g.shape[1]))
        self.n_train = n

    def _slow_scores(self, z: np.ndarray) -> np.ndarray:
        """The slow (operating-point) scores of each row, robustly: a Huber fit of the row on
        the slow loadings (a few reweighting passes), so one sensor gone wild (flatlined,
        stuck far away) does not pass for a move of the whole plant. Least squares, the
        plain projection, when ``robust`` is off."""
        p = self.components[:, self.slow_idx]
        t = rowdot(z, p)
        if not self.robust:
            return t
        for _ in range(5):
            r = z - rowdot(t, p.T)
            w = np.minimum(1.0, self.huber_c / np.maximum(np.abs(r), 1e-12))
            # weighted least squares per row: (P' W P)^-1 P' W z
            pw = np.einsum("nd,dk->ndk", w, p)
            a = np.einsum("ndk,dl->nkl", pw, p)
            b = np.einsum("ndk,nd->nk", pw, z)
            t = np.linalg.solve(a + 1e-9 * np.eye(p.shape[1]), b[..., None])[..., 0]
        return t

    def _regressors(self, t: np.ndarray, z: np.ndarray | None = None) -> np.ndarray:
        s = t[:, self.slow_idx] if z is None else self._slow_scores(z)
        return np.hstack([s, velocities(s, self.taus)])

    def _corrected(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(corrected residuals rows x d, leverage h per row)."""
        t = rowdot(z, self.components)
        g = self._regressors(t, z)
        r = z - rowdot(t, self.components.T)
        w = g[:, len(self.slow_idx):]
        if w.shape[1]:
            r = r - rowdot(w, self.gamma)
        h = np.einsum("ni,ij,nj->n", g, self.lev_inv, g)
        return r, np.maximum(h, 0.0)

    def fit(self, x: np.ndarray) -> "ModeAwareResidual":
        z = self._fit_z(x)
        self._fit_model(z)
        r, _ = self._corrected(z)
        self.q_scale = float(max((r * r).sum(axis=1).mean(), 1e-12))
        self.resid_sd = np.ones(z.shape[1])
        if self.stat != "q":
            sd = self._oof_resid(z).std(axis=0)
            self.resid_sd = np.where(sd > 1e-9, sd, 1.0)
        return self

    def _oof_resid(self, z: np.ndarray, folds: int = 5) -> np.ndarray:
        """Corrected residuals of each training block from a model fitted without it."""
        n = len(z)
        if n < 20 * folds:
            return self._corrected(z)[0]
        edges = np.linspace(0, n, folds + 1).astype(int)
        out = np.empty_like(z)
        for a, b in zip(edges[:-1], edges[1:]):
            m = ModeAwareResidual("q", self.variance, self.lam, self.taus, self.slow,
                                  self.ridge, self.robust)
            m._fit_model(np.r_[z[:a], z[b:]])
            out[a:b] = m._corrected(z[a:b])[0]
        return out

    # -- scoring -------------------------------------------------------------------------
    def score(self, x: np.ndarray) -> np.ndarray:
        z = self._score_z(x)
        r, h = self._corrected(z)
        if self.stat == "q":
            return (r * r).sum(axis=1) / self.q_scale / (1.0 + h)
        u = np.clip(r / self.resid_sd / np.sqrt(1.0 + h)[:, None], -CLIP, CLIP)
        if self.stat == "mean":
            e = ewma_rows(u, self.lam, 0.0) / np.sqrt(self.lam / (2.0 - self.lam))
            return np.abs(e).max(axis=1)
        return ewma_rows(u * u, self.lam, 1.0).max(axis=1)

    # -- documents -----------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"kind": "mode_residual", "stat": self.stat, "variance": self.variance,
                "lam": self.lam, "taus": list(self.taus), "slow": self.slow,
                "ridge": self.ridge, "robust": self.robust, "mean": self.mean.tolist(),
                "std": self.std.tolist(), "components": self.components.tolist(),
                "eig": self.eig.tolist(), "slow_idx": self.slow_idx.tolist(),
                "huber_c": self.huber_c, "gamma": self.gamma.tolist(),
                "lev_inv": self.lev_inv.tolist(), "q_scale": self.q_scale,
                "resid_sd": self.resid_sd.tolist(), "n_train": self.n_train}

    @classmethod
    def from_dict(cls, doc: dict) -> "ModeAwareResidual":
        try:
            m = cls(str(doc["stat"]), float(doc["variance"]), float(doc["lam"]),
                    tuple(doc["taus"]), float(doc["slow"]), float(doc["ridge"]),
                    bool(doc["robust"]))
            m.mean = np.asarray(doc["mean"], dtype=np.float64)
            m.std = np.asarray(doc["std"], dtype=np.float64)
            m.d = len(m.mean)
            m.components = np.asarray(doc["components"], dtype=np.float64).reshape(m.d, -1)
            m.k = m.components.shape[1]
            m.eig = np.asarray(doc["eig"], dtype=np.float64)
            m.slow_idx = np.asarray(doc["slow_idx"], dtype=np.int64)
            m.huber_c = float(doc["huber_c"])
            m.gamma = np.asarray(doc["gamma"], dtype=np.float64).reshape(-1, m.d)
            ng = len(m.slow_idx) * (1 + len(m.taus))
            m.lev_inv = np.asarray(doc["lev_inv"], dtype=np.float64).reshape(ng, ng)
            m.q_scale = float(doc["q_scale"])
            m.resid_sd = np.asarray(doc["resid_sd"], dtype=np.float64)
            m.n_train = int(doc["n_train"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"{doc.get('stat', 'mode')!r} mode residual: malformed model "
                             f"document ({exc!r})") from exc
        return m
