"""k-nearest-neighbour distance to the normal rows.

The score of a row is its mean Euclidean distance to its ``k`` nearest training rows in
standardised units (Ramaswamy et al. 2000; Angiulli & Pizzuti 2002). It assumes nothing about
the shape of normal operation: several operating modes, curved relations between sensors and
a few hundred rows are all fine, which is where one Gaussian (T², Mahalanobis) or one linear
subspace (PCA) is wrong. In unsupervised benchmarks it is among the strongest simple
detectors (Goldstein & Uchida 2016; Campos et al. 2016). The price: scoring compares each row
with every training row (n_train x d per row), cheap for the few hundred to few thousand rows
it is meant for; ``max_rows`` caps the reference set by taking evenly spaced rows.

The fitted state is the reference rows (z-scores) and the scaling: plain numbers.
"""

from __future__ import annotations

import numpy as np

from tocsin.detectors.protocol import ModelError, Standardized, register


@register("knn")
class KNNDetector(Standardized):
    def __init__(self, k: int = 5, max_rows: int = 5000):
        if k < 1:
            raise ModelError(f"knn: k must be >= 1, got {k}")
        self.k, self.max_rows = k, max_rows
        self.name = "knn"
        self.d: int | None = None
        self.min_rows = k + 1

    def fit(self, x: np.ndarray) -> "KNNDetector":
        z = self._fit_z(x)
        if len(z) > self.max_rows:
            z = z[np.linspace(0, len(z) - 1, self.max_rows).astype(int)]
        self.ref = z
        self.ref_sq = (z * z).sum(axis=1)
        return self

    def score(self, x: np.ndarray) -> np.ndarray:
        z = self._score_z(x)
        k = min(self.k, len(self.ref))
        out = np.empty(len(z))
        for i in range(0, len(z), 256):  # bounded memory: 256 x n_train distances at a time
            b = z[i:i + 256]
            d2 = (b * b).sum(axis=1)[:, None] + self.ref_sq[None, :] - 2.0 * np.einsum(
                "nd,md->nm", b, self.ref)
            near = np.partition(np.maximum(d2, 0.0), k - 1, axis=1)[:, :k]
            out[i:i + 256] = np.sqrt(near).mean(axis=1)
        return out

    def to_dict(self) -> dict:
        return {"kind": "knn", "k": self.k, "mean": self.mean.tolist(),
                "std": self.std.tolist(), "ref": self.ref.tolist()}

    @classmethod
    def from_dict(cls, doc: dict) -> "KNNDetector":
        try:
            m = cls(int(doc["k"]))
            m.mean = np.asarray(doc["mean"], dtype=np.float64)
            m.std = np.asarray(doc["std"], dtype=np.float64)
            m.ref = np.asarray(doc["ref"], dtype=np.float64).reshape(-1, len(m.mean))
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"knn: malformed model document ({exc!r})") from exc
        m.ref_sq = (m.ref * m.ref).sum(axis=1)
        m.d = len(m.mean)
        return m
