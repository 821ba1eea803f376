"""A detector plus its calibration, and ensembles of them: what training produces and
serving runs. Raw score -> surprise (-log10 of the normal tail probability) per member, then
one combined surprise (:func:`tocsin.detectors.calibration.combine`).

Calibration scores come from rows the detector did not train on: ``"oof"`` refits it on
contiguous folds (cheap detectors: PCA, Mahalanobis), ``"holdout"`` trains on the first
``1 - holdout`` of the rows and calibrates on the rest (costly ones: the LSTM-AE).
Either way the final detector of ``"oof"`` is fitted on every row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Callable

import numpy as np

from tocsin.detectors.calibration import TailCalibration, combine, fit_tail
from tocsin.detectors.pca import PCADetector
from tocsin.detectors.protocol import Detector, ModelError, out_of_fold_scores


@dataclass
class Calibrated:
    detector: Detector
    calibration: TailCalibration
    # the scores the calibration was fitted on (out-of-fold or held back): what a second
    # level (the fused ensembles, :mod:`tocsin.detectors.fused`) recalibrates on
    cal_scores: np.ndarray | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.detector.name

    def surprise(self, x: np.ndarray) -> np.ndarray:
        return self.calibration.surprise(self.detector.score(x))


def fit_calibrated(make: Callable[[], Detector], x: np.ndarray, how: str = "oof",
                   folds: int = 5, holdout: float = 0.2, tail: float = 0.9) -> Calibrated:
    x = np.asarray(x, dtype=np.float64)
    if how == "oof":
        cal_scores = out_of_fold_scores(make, x, folds)
        det = make().fit(x)
    elif how == "holdout":
        cut = int(round(len(x) * (1.0 - holdout)))
        if cut < 3 or len(x) - cut < 30:
            raise ModelError(f"calibration: {len(x)} rows leave too few for a {holdout:.0%} "
                             "holdout (need 30 held-back rows)")
        det = make().fit(x[:cut])
        cal_scores = det.score(x[cut:])
    else:
        raise ModelError(f"calibration: how must be 'oof' or 'holdout', got {how!r}")
    return Calibrated(det, fit_tail(cal_scores, tail=tail), np.asarray(cal_scores))


@dataclass
class Ensemble:
    members: list[Calibrated]
    how: str = "bonferroni"
    names: list[str] = field(init=False)

    def __post_init__(self):
        if not self.members:
            raise ModelError("ensemble: no members")
        self.names = [m.name for m in self.members]

    def surprises(self, x: np.ndarray) -> dict[str, np.ndarray]:
        return {m.name: m.surprise(x) for m in self.members}

    def surprise(self, x: np.ndarray) -> np.ndarray:
        s = self.surprises(x)
        return s[self.names[0]] if len(s) == 1 else combine(s, self.how)


class PCAMonitor:
    """PCA T² and Q, each calibrated on out-of-fold scores, combined into one surprise:
    the model that training adds to every artifact and the stream serves (plain matrices in
    the manifest; numpy only at serving time)."""

    name = "pca"

    def __init__(self, variance: float = 0.9, folds: int = 5, tail: float = 0.9):
        self.variance, self.folds, self.tail = variance, folds, tail
        self.pca: PCADetector | None = None
        self.cal: dict[str, TailCalibration] = {}

    def fit(self, x: np.ndarray) -> "PCAMonitor":
        x = np.asarray(x, dtype=np.float64)
        for stat in ("t2", "q"):
            oof = out_of_fold_scores(partial(PCADetector, self.variance, stat=stat), x,
                                     self.folds)
            self.cal[stat] = fit_tail(oof, tail=self.tail)
        self.pca = PCADetector(self.variance).fit(x)
        return self

    def surprises(self, x: np.ndarray) -> dict[str, np.ndarray]:
        return self.score_and_contributions(x, contributions=False)[1]

    def score_and_contributions(self, x: np.ndarray, contributions: bool = True
                                ) -> tuple[np.ndarray | None, dict[str, np.ndarray]]:
        """-> (per column shares of Q or None, surprises): the serving path needs both, and
        one projection gives both."""
        if self.pca is None:
            raise ModelError("pca: score before fit")
        st = self.pca.statistics(x, contributions=contributions)
        return st.get("contrib"), {"t2": self.cal["t2"].surprise(st["t2_ratio"]),
                                   "q": self.cal["q"].surprise(st["q_ratio"])}

    def score(self, x: np.ndarray) -> np.ndarray:
        """Combined surprise (Bonferroni over T² and Q): -log10 of the normal tail
        probability, the same scale for every asset."""
        return combine(self.surprises(x))

    def to_dict(self) -> dict:
        if self.pca is None:
            raise ModelError("pca: not fitted")
        return {"model": self.pca.to_dict(), "folds": self.folds,
                "calibration": {k: c.to_dict() for k, c in self.cal.items()}}

    @classmethod
    def from_dict(cls, doc: dict) -> "PCAMonitor":
        try:
            m = cls(folds=int(doc.get("folds", 5)))
            m.pca = PCADetector.from_dict(doc["model"])
            m.cal = {k: TailCalibration.from_dict(v) for k, v in doc["calibration"].items()}
            if set(m.cal) != {"t2", "q"}:
                raise KeyError("calibration needs t2 and q")
        except (KeyError, TypeError, AttributeError) as exc:
            raise ModelError(f"pca: malformed model document ({exc!r})") from exc
        m.variance = m.pca.variance
        return m
