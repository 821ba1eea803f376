"""Fused evidence: an ensemble's members' calibrated surprises combined into ONE statistic,
recalibrated out-of-fold on the training rows to the surprise scale.

The suite's default combination (:func:`tocsin.detectors.calibration.combine`, Bonferroni)
alarms on the single most surprising member: a fault that several members see moderately
(each at s ~ 2.5) stays below a threshold that one member alone must cross. Fusing sums the
evidence instead:

- ``fisher``: Fisher's statistic ``T = -2 sum_i ln p_i = 2 ln(10) sum_i s_i`` over the m
  members (p_i = 10^-s_i, the member's normal tail probability). For INDEPENDENT members
  with exact p-values, T is chi-squared with 2m degrees of freedom on normal rows. Our
  members are not independent (they score the same rows; ``mode_q``, ``mode_mean`` and
  ``mode_var`` share one PCA residual): positive correlation leaves the mean of T at 2m but
  inflates its variance, so the chi-squared tail is far too thin and its p-values would
  alarm far more often than they claim. Hence no chi-squared reference here: T's own
  distribution on the training rows (each member's out-of-fold scores, i.e. from a model
  that did not see the row) is fitted by the same peaks-over-threshold calibration
  (:func:`~tocsin.detectors.calibration.fit_tail`) as every member. Whatever the
  dependence between members, that empirical tail is T's, so the fused surprise has the
  members' meaning: s = 2 is "1 normal row in 100 fuses this much evidence".
- ``top2``: the sum of the two largest member surprises (a middle ground: one member at the
  cap still counts, but the quiet members add nothing, not even their noise).

The members' surprises are used capped at 12 (a quality check's flag is 12, not infinity);
training rows where a quality check flags nothing add 0. The output is a surprise, so every
decision rule (:mod:`tocsin.detectors.decision`) applies unchanged.

:class:`FusedDetector` is the same idea as a plain detector (registered, so the detector
contract covers it): members fitted and calibrated out-of-fold on its training rows, the
fused statistic recalibrated on their out-of-fold surprises; its score is the fused
surprise (uncapped).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tocsin.detectors.calibration import SF_FLOOR, TailCalibration, fit_tail
from tocsin.detectors.protocol import ModelError, as_rows, out_of_fold_scores, register

HOWS = ("fisher", "top2")
CAP = -np.log10(SF_FLOOR)
LN10 = float(np.log(10.0))


def statistic(stack: np.ndarray, how: str = "fisher") -> np.ndarray:
    """(m members x n rows) surprises -> (n,) fused statistic; NaN surprises count 0."""
    s = np.asarray(stack, dtype=np.float64)
    if s.ndim != 2 or s.shape[0] < 1:
        raise ModelError(f"fused: expected (members x rows) surprises, got shape {s.shape}")
    s = np.where(np.isfinite(s), np.maximum(s, 0.0), 0.0)
    if how == "fisher":
        return 2.0 * LN10 * s.sum(axis=0)
    if how == "top2":
        if s.shape[0] == 1:
            return s[0].copy()
        top = np.partition(s, s.shape[0] - 2, axis=0)[-2:]
        return top.sum(axis=0)
    raise ModelError(f"fused: how must be one of {HOWS}, got {how!r}")


def align_tail(arrays: list[np.ndarray]) -> np.ndarray:
    """Stack members' training surprises of different lengths on their LAST rows: members on
    window features drop the window warm-up at the start of the training rows, the raw-row
    members do not, and both end at the last training row."""
    n = min(len(a) for a in arrays)
    if n < 30:
        raise ModelError(f"fused: need at least 30 training rows scored by every member, "
                         f"got {n}")
    return np.vstack([np.asarray(a, dtype=np.float64)[len(a) - n:] for a in arrays])


@dataclass
class FusedCalibration:
    """The fused statistic and its calibration on training rows (out-of-fold surprises)."""

    how: str
    calibration: TailCalibration

    @classmethod
    def fit(cls, train_stack: np.ndarray, how: str = "fisher") -> "FusedCalibration":
        capped = np.minimum(np.asarray(train_stack, dtype=np.float64), CAP)
        return cls(how, fit_tail(statistic(capped, how)))

    def surprise(self, stack: np.ndarray, uncapped: bool = False) -> np.ndarray:
        """Members' surprises (m x n; capped at 12 before fusing) -> fused surprise."""
        t = statistic(np.minimum(np.asarray(stack, dtype=np.float64), CAP), self.how)
        if uncapped:
            return self.calibration.surprise_uncapped(t)
        return self.calibration.surprise(t)

    def to_dict(self) -> dict:
        return {"how": self.how, "calibration": self.calibration.to_dict()}

    @classmethod
    def from_dict(cls, doc: dict) -> "FusedCalibration":
        try:
            how = str(doc["how"])
            cal = TailCalibration.from_dict(doc["calibration"])
        except (KeyError, TypeError) as exc:
            raise ModelError(f"fused: malformed document ({exc!r})") from exc
        if how not in HOWS:
            raise ModelError(f"fused: how must be one of {HOWS}, got {how!r}")
        return cls(how, cal)


@register("fused")
class FusedDetector:
    """Registered members (by name, default ``mode_q`` and ``diff_var``), each calibrated on
    its own out-of-fold scores, fused (``how``) and recalibrated on the fused out-of-fold
    surprises. ``score`` is the fused surprise, uncapped."""

    name = "fused"

    def __init__(self, members: tuple[str, ...] = ("mode_q", "diff_var"), how: str = "fisher",
                 folds: int = 5):
        if how not in HOWS:
            raise ModelError(f"fused: how must be one of {HOWS}, got {how!r}")
        if not members:
            raise ModelError("fused: no members")
        self.members, self.how, self.folds = tuple(members), how, folds
        self.models: list = []
        self.cals: list[TailCalibration] = []
        self.fused: FusedCalibration | None = None
        self.d: int | None = None

    @staticmethod
    def _make(name: str):
        from tocsin.detectors.protocol import REGISTRY

        if name not in REGISTRY or name == "fused":
            raise ModelError(f"fused: unknown member {name!r}; known: "
                             f"{sorted(n for n in REGISTRY if n != 'fused')}")
        return REGISTRY[name]

    def fit(self, x: np.ndarray) -> "FusedDetector":
        a = as_rows(x, who=self.name)
        oof = []
        self.models, self.cals = [], []
        for m in self.members:
            make = self._make(m)
            scores = out_of_fold_scores(make, a, self.folds)
            cal = fit_tail(scores)
            oof.append(cal.surprise_uncapped(scores))
            self.models.append(make().fit(a))
            self.cals.append(cal)
        self.fused = FusedCalibration.fit(np.vstack(oof), self.how)
        self.d = a.shape[1]
        return self

    def score(self, x: np.ndarray) -> np.ndarray:
        if self.fused is None or self.d is None:
            raise ModelError(f"{self.name}: score before fit")
        a = as_rows(x, self.d, self.name)
        stack = np.vstack([c.surprise_uncapped(m.score(a))
                           for m, c in zip(self.models, self.cals)])
        return self.fused.surprise(stack, uncapped=True)

    def to_dict(self) -> dict:
        if self.fused is None:
            raise ModelError(f"{self.name}: not fitted")
        return {"members": list(self.members), "how": self.how, "folds": self.folds,
                "d": self.d, "models": [m.to_dict() for m in self.models],
                "calibrations": [c.to_dict() for c in self.cals],
                "fused": self.fused.to_dict()}

    @classmethod
    def from_dict(cls, doc: dict) -> "FusedDetector":
        try:
            det = cls(tuple(doc["members"]), str(doc["how"]), int(doc["folds"]))
            det.models = [type(cls._make(m)()).from_dict(md)
                          for m, md in zip(det.members, doc["models"])]
            det.cals = [TailCalibration.from_dict(c) for c in doc["calibrations"]]
            det.fused = FusedCalibration.from_dict(doc["fused"])
            det.d = int(doc["d"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"fused: malformed model document ({exc!r})") from exc
        if not (len(det.models) == len(det.cals) == len(det.members)):
            raise ModelError("fused: members, models and calibrations differ in number")
        return det
