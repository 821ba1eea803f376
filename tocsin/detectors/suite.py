"""The pure detectors side by side, each calibrated on its own out-of-fold scores, and the
ensembles that combine their calibrated scores: what ``tocsin eval csv`` and the benchmarks
run on short training data (a few hundred normal rows).

Members (all fitted on the same normal rows, all on the surprise scale after calibration):
``pca_t2`` and ``pca_q`` (:mod:`pca`), ``mahalanobis`` (MCD / Ledoit-Wolf, :mod:`covariance`),
``knn`` (:mod:`knn`), ``residual_mean`` / ``residual_var`` (EWMA charts on the PCA
residuals, :mod:`residual`: slow drift, small shifts, noise changes), ``mode_q`` /
``mode_mean`` / ``mode_var`` (the same Q and charts with a leverage limit that widens as a
row moves along the operating-point direction beyond the training range,
:mod:`modechange`: mode changes; ``mode_slow`` the mean chart with a longer memory, lam
0.03), ``diff_var`` (an EWMA chart of squared row-to-row differences of the RAW rows,
:mod:`noise`: extra noise, oscillations, jumps), and two data-quality
checks on the raw rows (every other member imputes
a missing value away and sees a frozen sensor only through its correlations):
``missing``, the share of sensors without a value in a row, and ``stuck``, the longest run of
identical consecutive values of any sensor; each is "surprising" (the cap, 12) only beyond
anything the training rows had (the stuck check: beyond twice the longest training run, at
least 5 rows, so quantised sensors that repeat values are fine).

Online members (:mod:`online`, for univariate and non-stationary streams): ``online_z`` and
``online_lik`` judge each RAW row against a trailing window of the rows before it, warm-started
from the end of the training rows, and are calibrated on their own online (one-step-ahead)
scores over the training rows instead of out-of-fold refits.

Ensembles (Bonferroni over members, :func:`~tocsin.detectors.calibration.combine`):
``pca_t2q`` = T² and Q; ``q_resid`` = Q, the two residual charts and the quality checks;
``mode_resid`` = the three ``mode_*`` members and the quality checks; ``mode_noise`` (the
default of ``tocsin eval csv`` for 2+ sensor columns) = ``mode_resid`` and ``diff_var``;
``mode_slow_resid`` / ``mode_noise_slow`` = ``mode_resid`` / ``mode_noise`` and ``mode_slow``;
``ensemble`` = T², Q, k-NN and missing; ``all`` = every member but the residual charts;
``online`` = the two online members and the quality checks (the default of ``tocsin eval
csv`` for files with one sensor column).

Fused ensembles (:data:`FUSED`, :mod:`fused`): ``mode_noise_fisher`` / ``mode_noise_top2`` =
``mode_noise``'s members, their surprises summed (Fisher's -2 sum ln p) or the two largest
summed, and that statistic recalibrated on the members' out-of-fold surprises of the
training rows, so it is on the same surprise scale and every decision rule applies.

:func:`surprises` gives the capped surprise (the decision scale); ``uncapped=True`` the same
numbers without the cap at 12, so the rows beyond it keep their order (what a scorer that
picks its own threshold from a ranking needs).
"""

from __future__ import annotations

from functools import partial
from typing import Callable

import numpy as np

from tocsin.detectors.calibrated import Calibrated, fit_calibrated
from tocsin.detectors.calibration import SF_FLOOR, combine
from tocsin.detectors.covariance import MahalanobisDetector
from tocsin.detectors.fused import FusedCalibration, align_tail
from tocsin.detectors.knn import KNNDetector
from tocsin.detectors.modechange import ModeAwareResidual
from tocsin.detectors.noise import DiffNoise
from tocsin.detectors.online import OnlineLikelihood, OnlineZ
from tocsin.detectors.pca import PCADetector
from tocsin.detectors.protocol import Detector, ModelError
from tocsin.detectors.residual import ResidualEWMA

MEMBERS: dict[str, Callable[[], Detector]] = {
    "pca_t2": partial(PCADetector, stat="t2"),
    "pca_q": partial(PCADetector, stat="q"),
    "mahalanobis": MahalanobisDetector,
    "knn": KNNDetector,
    "residual_mean": partial(ResidualEWMA, "mean"),
    "residual_var": partial(ResidualEWMA, "var"),
    "mode_q": partial(ModeAwareResidual, "q"),
    "mode_mean": partial(ModeAwareResidual, "mean"),
    "mode_var": partial(ModeAwareResidual, "var"),
    "mode_slow": partial(ModeAwareResidual, "mean", lam=0.03),
}
# calibrated members that score the RAW sensor rows (not the window features)
RAW_MEMBERS: dict[str, Callable[[], Detector]] = {
    "diff_var": DiffNoise,
}
ONLINE: dict[str, Callable[[], OnlineZ]] = {
    "online_z": OnlineZ,
    "online_lik": OnlineLikelihood,
}
ENSEMBLES: dict[str, list[str]] = {
    "pca_t2q": ["pca_t2", "pca_q"],
    "q_quality": ["pca_q", "missing", "stuck"],
    "q_resid": ["pca_q", "residual_mean", "residual_var", "missing", "stuck"],
    "mode_resid": ["mode_q", "mode_mean", "mode_var", "missing", "stuck"],
    "mode_noise": ["mode_q", "mode_mean", "mode_var", "diff_var", "missing", "stuck"],
    "mode_slow_resid": ["mode_q", "mode_mean", "mode_var", "mode_slow", "missing", "stuck"],
    "mode_noise_slow": ["mode_q", "mode_mean", "mode_var", "mode_slow", "diff_var", "missing",
                        "stuck"],
    "ensemble": ["pca_t2", "pca_q", "knn", "missing", "stuck"],
    "all": ["pca_t2", "pca_q", "mahalanobis", "knn", "missing", "stuck"],
    "online": ["online_z", "online_lik", "missing", "stuck"],
}
# fused ensembles (:mod:`fused`): name -> (members, how); the members' surprises fused into
# one statistic, recalibrated on the members' out-of-fold surprises of the training rows
FUSED: dict[str, tuple[list[str], str]] = {
    "mode_noise_fisher": (ENSEMBLES["mode_noise"], "fisher"),
    "mode_noise_top2": (ENSEMBLES["mode_noise"], "top2"),
}
QUALITY = ("missing", "stuck")
RAW_ROW = (*ONLINE, *RAW_MEMBERS, *QUALITY)  # members that score the raw sensor rows
NAMES = [*MEMBERS, *RAW_MEMBERS, *ONLINE, *QUALITY, *ENSEMBLES, *FUSED]


def members_of(name: str) -> list[str]:
    """The members of a detector, ensemble or fused ensemble name."""
    if name in FUSED:
        return FUSED[name][0]
    return ENSEMBLES.get(name, [name])
MAX_SURPRISE = -np.log10(SF_FLOOR)


def run_lengths(raw: np.ndarray) -> np.ndarray:
    """Per row and sensor: how many consecutive rows (this one included) hold this value."""
    raw = np.asarray(raw, dtype=np.float64)
    out = np.ones(raw.shape, dtype=np.int64)
    same = (raw[1:] == raw[:-1]) & np.isfinite(raw[1:])
    for i in range(1, len(raw)):
        out[i] = np.where(same[i - 1], out[i - 1] + 1, 1)
    return out


class QualityCheck:
    """``missing``: share of sensors without a value; ``stuck``: longest run of identical
    values. Surprise 0 up to the training limit, the cap (12) above it. Fitted and applied
    on the RAW rows (not on window features), so the check is exact."""

    def __init__(self, name: str):
        if name not in QUALITY:
            raise ModelError(f"quality check must be one of {QUALITY}, got {name!r}")
        self.name = name

    def _stat(self, raw: np.ndarray) -> np.ndarray:
        raw = np.asarray(raw, dtype=np.float64)
        if self.name == "missing":
            return np.isnan(raw).mean(axis=1)
        return run_lengths(raw).max(axis=1).astype(np.float64)

    def fit(self, raw: np.ndarray) -> "QualityCheck":
        st = self._stat(raw)
        top = float(st.max()) if st.size else 0.0
        self.limit = top if self.name == "missing" else max(5.0, 2.0 * top)
        return self

    def surprise(self, raw: np.ndarray) -> np.ndarray:
        return np.where(self._stat(raw) > self.limit + 1e-9, MAX_SURPRISE, 0.0)


def needed(names: list[str]) -> list[str]:
    """The members a list of detector/ensemble names needs."""
    out: list[str] = []
    for n in names:
        if n not in NAMES:
            raise ModelError(f"unknown detector {n!r}; known: {NAMES}")
        for m in members_of(n):
            if m not in out:
                out.append(m)
    return out


class OnlineMember:
    """An online detector and the calibration of its own online scores over the training
    rows (one-step-ahead, so honest without out-of-fold refits). Scores RAW rows."""

    def __init__(self, name: str, raw: np.ndarray):
        from tocsin.detectors.calibration import fit_tail

        self.name = name
        self.detector = ONLINE[name]().fit(raw)
        self.calibration = fit_tail(self.detector.train_scores)

    def surprise(self, raw: np.ndarray, skip: int = 0) -> np.ndarray:
        """Uncapped surprise of every row of ``raw``: the first ``skip`` rows are the training
        rows (their online training scores), the rest continue from the end of training."""
        s = np.r_[self.detector.train_pass[:skip], self.detector.score(raw[skip:])]
        return self.calibration.surprise_uncapped(s)


Fitted = dict[str, Calibrated | QualityCheck | OnlineMember | FusedCalibration]


def train_surprise(f, r: np.ndarray) -> np.ndarray:
    """A fitted member's uncapped surprises of its own training rows, from scores of rows
    it did not train on (out-of-fold for the calibrated members, one-step-ahead for the
    online ones; the quality checks' limits lie beyond every training row: 0)."""
    if isinstance(f, QualityCheck):
        return f.surprise(r)
    if isinstance(f, OnlineMember):
        return f.calibration.surprise_uncapped(f.detector.train_scores)
    if f.cal_scores is None:
        raise ModelError(f"fused: member {f.name!r} kept no calibration scores")
    return f.calibration.surprise_uncapped(f.cal_scores)


def fit_suite(x: np.ndarray, names: list[str], raw: np.ndarray | None = None) -> Fitted:
    """Fit and calibrate (out-of-fold) every member the names need, on normal rows ``x``
    (features); the quality checks and the online members on ``raw`` (the sensor rows, in
    order; default ``x``)."""
    x = np.asarray(x, dtype=np.float64)
    r = x if raw is None else np.asarray(raw, dtype=np.float64)
    out: Fitted = {}
    for m in needed(names):
        if m in QUALITY:
            out[m] = QualityCheck(m).fit(r)
        elif m in ONLINE:
            out[m] = OnlineMember(m, r)
        elif m in RAW_MEMBERS:
            out[m] = fit_calibrated(RAW_MEMBERS[m], r)
        else:
            out[m] = fit_calibrated(MEMBERS[m], x)
    for n in names:
        if n in FUSED:
            members, how = FUSED[n]
            out[n] = FusedCalibration.fit(
                align_tail([train_surprise(out[m], r) for m in members]), how)
    return out


def _member(f, x: np.ndarray, raw: np.ndarray | None, skip: int) -> np.ndarray:
    if isinstance(f, Calibrated) and f.name in RAW_MEMBERS:
        return f.calibration.surprise_uncapped(f.detector.score(x if raw is None else raw))
    if isinstance(f, QualityCheck):
        return f.surprise(x if raw is None else raw)
    if isinstance(f, OnlineMember):
        return f.surprise(x if raw is None else raw, skip)
    return f.calibration.surprise_uncapped(f.detector.score(x))


def surprises(fitted: Fitted, x: np.ndarray, names: list[str],
              raw: np.ndarray | None = None, skip: int = 0, uncapped: bool = False,
              each: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Per name, the calibrated score (surprise) of every row of ``x`` (``raw``: the same
    rows' sensor values, for the quality checks and the online members; ``skip``: how many
    leading rows are the training rows the online members were fitted on). ``each``: a dict
    that receives (or, when filled, supplies) the members' uncapped surprises, so a second
    call for the other scale scores nothing again."""
    x = np.asarray(x, dtype=np.float64)
    if each is None:
        each = {}
    if not each:
        each.update({m: _member(f, x, raw, skip) for m, f in fitted.items()
                     if not isinstance(f, FusedCalibration)})
    use = each if uncapped else {m: np.minimum(v, MAX_SURPRISE) for m, v in each.items()}
    out = {}
    for n in names:
        members = members_of(n)
        f = fitted.get(n)
        if isinstance(f, FusedCalibration):
            out[n] = f.surprise(np.vstack([each[m] for m in members]), uncapped=uncapped)
        else:
            out[n] = use[members[0]] if len(members) == 1 else combine(
                {m: use[m] for m in members})
    return out
