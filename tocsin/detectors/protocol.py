"""The detector contract: fit on normal data, score higher = more anomalous, decide elsewhere.

Every detector (PCA T²/Q, robust Mahalanobis, the Isolation Forest and LSTM-AE wrappers in
:mod:`tocsin.models.detectors`) follows :class:`Detector`: ``fit(x)`` learns from rows of
normal operation (n x d float, NaN allowed and imputed by the detector), ``score(x)`` returns
one finite float per row, larger meaning "less like the training data". A score has no unit
and no threshold: calibration (:mod:`tocsin.detectors.calibration`) turns it into a tail
probability on a fixed scale, and the decision steps (:mod:`tocsin.detectors.decision`)
smooth, threshold and debounce it. Keeping the three apart lets one decision rule serve
every detector and every stream (river's ``anomaly/base.py`` vs ``anomaly/filter.py``).

``tests/unit/test_detector_contract.py`` runs one parametrised contract over every
implementation listed in :data:`REGISTRY` and ``tocsin.models.detectors.REGISTRY``.
"""

from __future__ import annotations

from typing import Callable, Protocol, runtime_checkable

import numpy as np

from tocsin.errors import ModelError


@runtime_checkable
class Detector(Protocol):
    """fit on normal rows; score -> (n,) floats, higher = more anomalous."""

    name: str

    def fit(self, x: np.ndarray) -> "Detector": ...

    def score(self, x: np.ndarray) -> np.ndarray: ...


def as_rows(x: np.ndarray, d: int | None = None, who: str = "detector") -> np.ndarray:
    """Check and convert input to a float64 (n x d) matrix; errors name the detector."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2:
        raise ModelError(f"{who}: expected a 2-D array (rows x columns), got shape {a.shape}")
    if d is not None and a.shape[1] != d:
        raise ModelError(f"{who}: fitted on {d} columns, got {a.shape[1]}")
    return a


def standardizer(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column mean and std over finite values; constant or empty columns get std 1 (they then
    only contribute when they move, which is what an operator wants to hear about)."""
    with np.errstate(all="ignore"):
        mean = np.nanmean(x, axis=0)
        std = np.nanstd(x, axis=0)
    mean = np.where(np.isfinite(mean), mean, 0.0)
    std = np.where(np.isfinite(std) & (std > 1e-9 * np.maximum(1.0, np.abs(mean))), std, 1.0)
    return mean, std


def zscore(x: np.ndarray, mean: np.ndarray, std: np.ndarray, clip: float = 1e6) -> np.ndarray:
    """Standardise; missing values become the training mean (z = 0)."""
    z = (x - mean) / std
    return np.clip(np.where(np.isfinite(z), z, 0.0), -clip, clip)


class Standardized:
    """The input checks and scaling that every pure detector shares (one place, not a copy
    per detector): ``_fit_z`` checks a training matrix, learns the column scaling and returns
    the z-scores; ``_score_z`` checks that the detector is fitted and the width matches, and
    returns the z-scores of new rows. Subclasses set ``name``."""

    name = "detector"
    d: int | None = None
    min_rows = 3

    def _fit_z(self, x: np.ndarray) -> np.ndarray:
        a = as_rows(x, who=self.name)
        if a.shape[0] < self.min_rows:
            raise ModelError(f"{self.name}: need at least {self.min_rows} training rows, got "
                             f"{a.shape[0]}")
        self.mean, self.std = standardizer(a)
        self.d = a.shape[1]
        return zscore(a, self.mean, self.std)

    def _score_z(self, x: np.ndarray) -> np.ndarray:
        if self.d is None:
            raise ModelError(f"{self.name}: score before fit")
        return zscore(as_rows(x, self.d, self.name), self.mean, self.std)


def out_of_fold_scores(make: Callable[[], Detector], x: np.ndarray, folds: int = 5
                       ) -> np.ndarray:
    """Scores of every training row from a detector that did not see it (contiguous blocks,
    so autocorrelated neighbours do not leak). In-sample scores are optimistic, most of all
    with few rows per column; calibrating on these gives thresholds that hold on new data
    without giving up training rows."""
    n = len(x)
    folds = max(2, min(folds, n // 10))
    edges = np.linspace(0, n, folds + 1).astype(int)
    out = np.empty(n)
    for a, b in zip(edges[:-1], edges[1:]):
        keep = np.r_[0:a, b:n]
        out[a:b] = make().fit(x[keep]).score(x[a:b])
    return out


REGISTRY: dict[str, Callable[[], Detector]] = {}


def register(name: str):
    """Class decorator: list a pure detector (constructed with defaults) for the contract."""
    def deco(cls):
        REGISTRY[name] = cls
        return cls
    return deco
