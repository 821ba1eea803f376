"""The mode-aware PCA residual (tocsin.detectors.modechange): a new operating point along the
load direction is not a fault, a broken correlation still is, and a sensor gone wild cannot
hide behind the widened limit."""

from __future__ import annotations

import numpy as np
import pytest

from tocsin.detectors.calibrated import fit_calibrated
from tocsin.detectors.modechange import ModeAwareResidual, integrated_time, velocities
from tocsin.detectors.pca import PCADetector
from tocsin.detectors.protocol import ModelError

SENS = np.array([1.0, 0.8, -0.6, 0.15, 0.5, 0.0])  # load sensitivity (one weak, one none)
NOISE = np.array([0.02, 0.02, 0.02, 0.02, 0.02, 0.02])
TAU = np.array([0.5, 1.0, 1.0, 2.0, 10.0, 1.0])  # rows; tag 4 lags like a temperature


def _plant(load: np.ndarray, seed: int) -> np.ndarray:
    """Every tag follows its load target through a first-order lag, plus noise."""
    rng = np.random.default_rng(seed)
    a = 1.0 - np.exp(-1.0 / TAU)
    state = SENS * load[0]
    out = np.empty((len(load), len(SENS)))
    for i, ld in enumerate(load):
        state = state + a * (SENS * ld - state)
        out[i] = state + rng.normal(0.0, NOISE)
    return out


def _wander(n: int, seed: int, start: float = 1.0) -> np.ndarray:
    """AR(1) load wander, time constant 90 rows, sd 0.04."""
    rng = np.random.default_rng(seed)
    phi = np.exp(-1.0 / 90.0)
    w = np.empty(n)
    w[0] = 0.0
    for i in range(1, n):
        w[i] = phi * w[i - 1] + 0.04 * np.sqrt(1 - phi * phi) * rng.normal()
    return start + w


def test_helpers():
    t = np.random.default_rng(0).normal(size=2000)
    assert integrated_time(t) < 1.5  # white noise: about 1
    ar = np.zeros(4000)
    for i in range(1, 4000):
        ar[i] = 0.95 * ar[i - 1] + np.random.default_rng(i).normal()
    assert 20 < integrated_time(ar) < 60  # AR(1) 0.95: (1 + phi) / (1 - phi) = 39
    v = velocities(np.r_[np.zeros(5), np.ones(50)][:, None], (3.0,))
    assert v[0, 0] == 0.0 and v[5, 0] > 0.6 and v[-1, 0] < 1e-6  # a step, then settled


def test_a_new_operating_point_is_not_a_fault_but_a_broken_sensor_is():
    train = _plant(_wander(400, 1), 11)
    load = _wander(1200, 2)
    load[300:] += 0.2  # a mode change: 5 wander sds, a level never seen in training
    test = _plant(load, 12)
    mode = fit_calibrated(lambda: ModeAwareResidual("q"), train)
    q = fit_calibrated(lambda: PCADetector(stat="q"), train)
    fa_mode = (mode.surprise(test)[350:] > 3).mean()
    fa_q = (q.surprise(test)[350:] > 3).mean()
    assert fa_mode < 0.05 and fa_mode < fa_q, (fa_mode, fa_q)
    bad = test.copy()
    bad[100:300, 0] += 8 * NOISE[0]  # a bias on one sensor, at the trained operating point
    assert (mode.surprise(bad)[110:300] > 3).mean() > 0.8
    # the price (documented): far from the training load the limit is (1 + h) times wider,
    # h = 5² / n_eff here, so the same bias after the mode change is not seen by Q alone
    bad = test.copy()
    bad[600:, 0] += 8 * NOISE[0]
    assert (q.surprise(bad)[620:] > 3).mean() > (mode.surprise(bad)[620:] > 3).mean()


def test_a_sensor_gone_wild_cannot_hide_behind_the_leverage():
    """The widening comes from a robust (Huber) operating-point estimate: one flatlined
    sensor does not pass for a plant-wide move, and its score grows with its size."""
    train = _plant(_wander(400, 1), 11)
    det = ModeAwareResidual("q").fit(train)
    assert det.slow_idx.size >= 1  # the load direction was found as a slow component
    test = _plant(_wander(200, 3), 13)
    scores = []
    for k in (5.0, 50.0, 500.0):
        bad = test.copy()
        bad[:, 0] = test[:, 0].mean() - k * train[:, 0].std()  # tag 0 reads far away
        scores.append(np.median(det.score(bad)))
    assert scores[0] < scores[1] < scores[2]
    assert scores[2] > 100 * scores[0]


@pytest.mark.parametrize("stat", ["mean", "var"])
def test_charts_round_trip_and_stay_quiet_after_a_mode_change(stat):
    train = _plant(_wander(400, 1), 11)
    load = _wander(800, 4)
    load[200:] -= 0.2
    test = _plant(load, 14)
    chart = fit_calibrated(lambda: ModeAwareResidual(stat), train)
    assert (chart.surprise(test)[300:] > 3).mean() < 0.05
    det = chart.detector
    again = ModeAwareResidual.from_dict(det.to_dict())
    assert np.allclose(again.score(test[:50]), det.score(test[:50]))


def test_bad_settings_are_refused():
    with pytest.raises(ModelError, match="stat"):
        ModeAwareResidual("median")
    with pytest.raises(ModelError, match="lam"):
        ModeAwareResidual(lam=0.0)
    with pytest.raises(ModelError, match="taus"):
        ModeAwareResidual(taus=(0.0,))
