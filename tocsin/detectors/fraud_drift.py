"""Serving-side guard: features far outside what the model was trained on.

A model only knows the range it was trained on. When a feature at serving is more than
``limit`` (50) training standard deviations from its training mean -- or differs at all from
a feature that was constant in training -- the worker counts it per feature (a Prometheus
counter, a bounded label set: the feature names) and logs the features concerned once per
interval. Trees cannot blow up on such a value (they saturate), but the score is then an
extrapolation, and usually a sign that the training window missed a regime (cold start, no
warm-up history, a new merchant type).
"""

from __future__ import annotations

import numpy as np


class FeatureRange:
    """``check(tab)`` -> per-feature count of out-of-range rows in the batch."""

    def __init__(self, names: list[str], mean, std, limit: float = 50.0):
        self.names = list(names)
        self.mean = np.asarray(mean, np.float64)
        std = np.asarray(std, np.float64)
        self.constant = std == 0.0
        # constant in training: any difference is out of range (beyond float32 rounding)
        self.span = np.where(self.constant, 1e-6 * np.maximum(np.abs(self.mean), 1.0),
                             limit * std)
        self.limit = limit
        self.totals = np.zeros(len(self.names), np.int64)

    @classmethod
    def from_meta(cls, meta: dict, limit: float = 50.0) -> "FeatureRange | None":
        tr = meta.get("training_stats")
        if not tr:
            return None
        return cls(meta["features"], tr["mean"], tr["std"], limit)

    def check(self, tab: np.ndarray) -> np.ndarray:
        if not len(tab):
            return np.zeros(len(self.names), np.int64)
        far = np.abs(np.asarray(tab, np.float64) - self.mean) > self.span
        counts = far.sum(axis=0)
        self.totals += counts
        return counts

    def worst(self, tab: np.ndarray) -> dict[str, float]:
        """Largest distance of each out-of-range feature in ``tab``, in training SDs
        (``inf`` for a feature that was constant in training)."""
        d = np.abs(np.asarray(tab, np.float64) - self.mean).max(axis=0) if len(tab) else \
            np.zeros(len(self.names))
        out = {}
        for i in np.flatnonzero(d > self.span):
            out[self.names[i]] = float("inf") if self.constant[i] else \
                float(d[i] / (self.span[i] / self.limit))
        return out
