"""Mahalanobis distance to the normal rows, with a robust (MCD) or shrunk covariance.

A single-cluster Gaussian picture of normal operation: d²(x) = (x - μ)' Σ⁻¹ (x - μ). With few
rows per column the sample covariance is ill-conditioned and its inverse blows up noise in
the smallest directions, so Σ is the Minimum Covariance Determinant estimate (Rousseeuw &
Van Driessen 1999; robust to a few abnormal rows in "normal" training data) when there are
comfortably more rows than columns, else Ledoit-Wolf shrinkage. The score is d²/d (about 1 on
normal rows, whatever the width). sklearn fits; scoring is one matrix product in numpy.
"""

from __future__ import annotations

import numpy as np

from tocsin.detectors.protocol import ModelError, Standardized, register


@register("mahalanobis")
class MahalanobisDetector(Standardized):
    def __init__(self, robust: bool = True, seed: int = 0):
        self.robust, self.seed = robust, seed
        self.name = "mahalanobis"
        self.d: int | None = None

    def fit(self, x: np.ndarray) -> "MahalanobisDetector":
        from sklearn.covariance import LedoitWolf, MinCovDet

        z = self._fit_z(x)
        n, d = z.shape
        self.method = "ledoit-wolf"
        est = None
        if self.robust and n >= 5 * d:
            import warnings

            try:
                with warnings.catch_warnings():  # "not full rank": handled by the pinv below
                    warnings.simplefilter("ignore", UserWarning)
                    est = MinCovDet(random_state=self.seed).fit(z)
                self.method = "mcd"
            except ValueError:  # singular subsets (constant columns in the support)
                est = None
        if est is None:
            est = LedoitWolf().fit(z)
        self.location = np.asarray(est.location_, dtype=np.float64)
        cov = np.asarray(est.covariance_, dtype=np.float64)
        self.precision = np.linalg.pinv(cov + 1e-9 * np.eye(d), hermitian=True)
        return self

    def score(self, x: np.ndarray) -> np.ndarray:
        z = self._score_z(x) - self.location
        return np.einsum("ij,jk,ik->i", z, self.precision, z) / z.shape[1]

    def to_dict(self) -> dict:
        return {"kind": "mahalanobis", "method": self.method, "mean": self.mean.tolist(),
                "std": self.std.tolist(), "location": self.location.tolist(),
                "precision": self.precision.tolist()}

    @classmethod
    def from_dict(cls, doc: dict) -> "MahalanobisDetector":
        try:
            m = cls()
            m.method = str(doc["method"])
            m.mean = np.asarray(doc["mean"], dtype=np.float64)
            m.std = np.asarray(doc["std"], dtype=np.float64)
            m.location = np.asarray(doc["location"], dtype=np.float64)
            m.precision = np.asarray(doc["precision"], dtype=np.float64)
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"mahalanobis: malformed model document ({exc!r})") from exc
        m.d = len(m.mean)
        return m
