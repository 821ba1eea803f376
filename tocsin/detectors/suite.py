"""The pure detectors side by side, each calibrated on its own out-of-fold scores, and the
ensembles that combine their calibrated scores: what ``tocsin eval csv`` and the benchmarks
run on short training data (a few hundred normal rows).

Members (all fitted on the same normal rows, all on the surprise scale after calibration):
``pca_t2`` and ``pca_q`` (:mod:`pca`), ``mahalanobis`` (MCD / Ledoit-Wolf, :mod:`covariance`),
``knn`` (:mod:`knn`) and ``missing``: the share of missing inputs in a row, "surprising" when
it exceeds anything the training rows had (a sensor that stops reporting is a fault an
operator must hear about, and every other member imputes it away).

Ensembles (Bonferroni over members, :func:`~tocsin.detectors.calibration.combine`):
``pca_t2q`` = T² and Q; ``ensemble`` = T², Q, k-NN and missing; ``all`` = every member.
"""

from __future__ import annotations

from functools import partial
from typing import Callable

import numpy as np

from tocsin.detectors.calibrated import Calibrated, fit_calibrated
from tocsin.detectors.calibration import SF_FLOOR, combine
from tocsin.detectors.covariance import MahalanobisDetector
from tocsin.detectors.knn import KNNDetector
from tocsin.detectors.pca import PCADetector
from tocsin.detectors.protocol import Detector, ModelError

MEMBERS: dict[str, Callable[[], Detector]] = {
    "pca_t2": partial(PCADetector, stat="t2"),
    "pca_q": partial(PCADetector, stat="q"),
    "mahalanobis": MahalanobisDetector,
    "knn": KNNDetector,
}
ENSEMBLES: dict[str, list[str]] = {
    "pca_t2q": ["pca_t2", "pca_q"],
    "q_missing": ["pca_q", "missing"],
    "ensemble": ["pca_t2", "pca_q", "knn", "missing"],
    "all": ["pca_t2", "pca_q", "mahalanobis", "knn", "missing"],
}
NAMES = [*MEMBERS, "missing", *ENSEMBLES]
MAX_SURPRISE = -np.log10(SF_FLOOR)


class MissingShare:
    """Surprise of a row's share of missing inputs: 0 up to the largest share seen in the
    training rows, the cap (12) above it."""

    name = "missing"

    def fit(self, x: np.ndarray) -> "MissingShare":
        self.limit = float(np.isnan(x).mean(axis=1).max()) if len(x) else 0.0
        return self

    def surprise(self, x: np.ndarray) -> np.ndarray:
        share = np.isnan(x).mean(axis=1)
        return np.where(share > self.limit + 1e-9, MAX_SURPRISE, 0.0)


def needed(names: list[str]) -> list[str]:
    """The members a list of detector/ensemble names needs."""
    out: list[str] = []
    for n in names:
        if n not in NAMES:
            raise ModelError(f"unknown detector {n!r}; known: {NAMES}")
        for m in ENSEMBLES.get(n, [n]):
            if m not in out:
                out.append(m)
    return out


def fit_suite(x: np.ndarray, names: list[str]) -> dict[str, Calibrated | MissingShare]:
    """Fit and calibrate (out-of-fold) every member the names need, on normal rows ``x``.
    Columns that are missing in every training row are dropped by the caller's imputation
    (the training mean of an empty column is 0)."""
    x = np.asarray(x, dtype=np.float64)
    out: dict[str, Calibrated | MissingShare] = {}
    for m in needed(names):
        out[m] = MissingShare().fit(x) if m == "missing" else fit_calibrated(MEMBERS[m], x)
    return out


def surprises(fitted: dict[str, Calibrated | MissingShare], x: np.ndarray,
              names: list[str]) -> dict[str, np.ndarray]:
    """Per name, the calibrated score (surprise) of every row of ``x``."""
    x = np.asarray(x, dtype=np.float64)
    each = {m: f.surprise(x) for m, f in fitted.items()}
    out = {}
    for n in names:
        members = ENSEMBLES.get(n, [n])
        out[n] = each[members[0]] if len(members) == 1 else combine(
            {m: each[m] for m in members})
    return out
