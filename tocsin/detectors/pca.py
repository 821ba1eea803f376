"""PCA monitoring: Hotelling's T² in the principal subspace and SPE/Q in the residual.

The classical multivariate statistical process control pair (Jackson & Mudholkar 1979;
MacGregor & Kourti 1995). Standardise the normal rows, keep the fewest principal components
that explain ``variance`` (default 90 %) of the variance, then per row

- T² = sum_i t_i² / λ_i over the kept scores t = P'z: how far the row is inside the normal
  correlation structure (a shift along directions the plant normally moves in);
- Q (SPE) = ||z - P P'z||²: how much of the row the normal structure cannot explain (broken
  correlations, a new direction of variation).

Each has a textbook control limit at confidence ``alpha``: T² from the F distribution
(k(n-1)(n+1)/(n(n-k)) F(k, n-k)), Q from Jackson-Mudholkar's normal approximation over the
residual eigenvalues. :meth:`score` returns max(T²/T²_lim, Q/Q_lim), a fixed scale where 1 is
the classical limit, so "T² or Q beyond its 99 % limit" is ``score > 1``: the baseline that
the Tennessee Eastman literature reports. Calibration on out-of-fold scores
(:mod:`tocsin.detectors.calibration`) replaces those Gaussian limits with fitted ones.

Pure numpy (scipy for the two quantiles); the fitted state is a few plain matrices
(:meth:`to_dict`), so serving needs neither sklearn nor torch.
"""

from __future__ import annotations

import numpy as np

from tocsin.detectors.protocol import ModelError, Standardized, register

STATS = ("combined", "t2", "q")


def rowdot(a: np.ndarray, m: np.ndarray) -> np.ndarray:
    """a @ m with each row's result independent of the other rows in the batch. BLAS matmul
    picks kernels by batch size, so a row scored alone and in a batch of 64 can differ in the
    last bits; the stream batches assets as they come, and a replay must give the same
    scores (measured: matmul is not batch-invariant, einsum's plain loop is)."""
    return np.einsum("nd,dk->nk", a, m)


def principal_subspace(z: np.ndarray, variance: float, max_k: int | None = None
                       ) -> tuple[int, np.ndarray, np.ndarray]:
    """The principal subspace of standardised rows ``z``: the fewest components that hold
    ``variance`` of the training variance (at least 1, at most ``max_k`` and d - 1, so a
    residual is left), the right singular vectors (rows) and the eigenvalues (all of them)."""
    n, d = z.shape
    _, s, vt = np.linalg.svd(z - z.mean(axis=0), full_matrices=False)
    eig = s ** 2 / max(n - 1, 1)
    total = eig.sum()
    if total <= 0:
        k = 1
    else:
        k = int(np.searchsorted(np.cumsum(eig) / total, variance - 1e-12) + 1)
    k = max(1, min(k, max_k or d, len(eig) - 1 if len(eig) > 1 else 1))
    return k, vt, eig


def t2_limit(k: int, n: int, alpha: float) -> float:
    from scipy import stats

    if n <= k + 1:
        return float(stats.chi2.ppf(alpha, k))
    return float(k * (n - 1) * (n + 1) / (n * (n - k)) * stats.f.ppf(alpha, k, n - k))


def q_limit(resid_eig: np.ndarray, alpha: float) -> float:
    """Jackson-Mudholkar limit of Q from the eigenvalues left out of the model."""
    from scipy import stats

    lam = resid_eig[resid_eig > 1e-12]
    if lam.size == 0:
        return 1e-12
    t1, t2, t3 = (float((lam ** p).sum()) for p in (1, 2, 3))
    h0 = 1.0 - 2.0 * t1 * t3 / (3.0 * t2 * t2)
    if h0 <= 0.05:  # degenerate spectrum: fall back to the scaled chi² (Box 1954)
        g, h = t2 / t1, t1 * t1 / t2
        return float(g * stats.chi2.ppf(alpha, h))
    ca = stats.norm.ppf(alpha)
    v = (ca * np.sqrt(2 * t2 * h0 * h0) / t1 + 1 + t2 * h0 * (h0 - 1) / (t1 * t1))
    return float(t1 * v ** (1.0 / h0))


@register("pca")
class PCADetector(Standardized):
    """T²/Q monitor; ``stat`` picks combined (max of the two ratios), t2 or q."""

    def __init__(self, variance: float = 0.9, alpha: float = 0.99, stat: str = "combined",
                 max_components: int | None = None):
        if not 0.0 < variance <= 1.0:
            raise ModelError(f"pca: variance must be in (0, 1], got {variance}")
        if stat not in STATS:
            raise ModelError(f"pca: stat must be one of {STATS}, got {stat!r}")
        self.variance, self.alpha, self.stat = variance, alpha, stat
        self.max_components = max_components
        self.name = "pca" if stat == "combined" else f"pca_{stat}"
        self.d: int | None = None

    def fit(self, x: np.ndarray) -> "PCADetector":
        z = self._fit_z(x)
        n = len(z)
        k, vt, eig = principal_subspace(z, self.variance, self.max_components)
        self.k, self.n_train = k, n
        self.components = vt[:k].T  # d x k
        self.eig = np.maximum(eig[:k], 1e-12)
        self.resid_eig = eig[k:]
        self.t2_lim = t2_limit(k, n, self.alpha)
        self.q_lim = max(q_limit(self.resid_eig, self.alpha), 1e-12)
        return self

    def statistics(self, x: np.ndarray, contributions: bool = False
                   ) -> dict[str, np.ndarray]:
        """Per row: T², Q and their ratios to the ``alpha`` limits; with ``contributions``
        also ``contrib``, :meth:`contributions` from the same projection (one pass)."""
        z = self._score_z(x)
        t = rowdot(z, self.components)
        t2 = ((t * t) / self.eig).sum(axis=1)
        r = z - rowdot(t, self.components.T)
        r2 = r * r
        q = r2.sum(axis=1)
        out = {"t2": t2, "q": q, "t2_ratio": t2 / self.t2_lim, "q_ratio": q / self.q_lim}
        if contributions:
            tot = r2.sum(axis=1, keepdims=True)
            out["contrib"] = r2 / np.where(tot > 0, tot, 1.0)
        return out

    def score(self, x: np.ndarray) -> np.ndarray:
        s = self.statistics(x)
        if self.stat == "t2":
            return s["t2_ratio"]
        if self.stat == "q":
            return s["q_ratio"]
        return np.maximum(s["t2_ratio"], s["q_ratio"])

    def contributions(self, x: np.ndarray) -> np.ndarray:
        """Per row and column, the share of Q from that column (sums to 1): which sensors
        broke the normal correlation structure."""
        z = self._score_z(x)
        r = z - rowdot(rowdot(z, self.components), self.components.T)
        r2 = r * r
        tot = r2.sum(axis=1, keepdims=True)
        return r2 / np.where(tot > 0, tot, 1.0)

    def to_dict(self) -> dict:
        """Plain lists for a model manifest (serving rebuilds it with :meth:`from_dict`)."""
        return {"kind": "pca", "stat": self.stat, "variance": self.variance,
                "alpha": self.alpha, "k": self.k, "n_train": self.n_train,
                "mean": self.mean.tolist(), "std": self.std.tolist(),
                "components": self.components.tolist(), "eig": self.eig.tolist(),
                "t2_lim": self.t2_lim, "q_lim": self.q_lim}

    @classmethod
    def from_dict(cls, doc: dict) -> "PCADetector":
        try:
            m = cls(float(doc["variance"]), float(doc["alpha"]), str(doc["stat"]))
            m.mean = np.asarray(doc["mean"], dtype=np.float64)
            m.std = np.asarray(doc["std"], dtype=np.float64)
            m.components = np.asarray(doc["components"], dtype=np.float64).reshape(
                len(m.mean), -1)
            m.eig = np.asarray(doc["eig"], dtype=np.float64)
            m.k, m.n_train = int(doc["k"]), int(doc["n_train"])
            m.t2_lim, m.q_lim = float(doc["t2_lim"]), float(doc["q_lim"])
            m.resid_eig = np.zeros(0)
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"pca: malformed model document ({exc!r})") from exc
        m.d = len(m.mean)
        return m
