"""EWMA charts on PCA residuals (tocsin.detectors.residual): they see a slow drift and a
noise change that a row-wise Q misses, and they come back after the fault ends."""

from __future__ import annotations

import numpy as np
import pytest

from tocsin.detectors.calibrated import fit_calibrated
from tocsin.detectors.pca import PCADetector
from tocsin.detectors.protocol import ModelError
from tocsin.detectors.residual import ResidualEWMA, ewma_rows


def _plant(n: int, seed: int) -> np.ndarray:
    mix = np.random.default_rng(99).normal(size=(2, 8))
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 2)) @ mix + 0.3 * rng.normal(size=(n, 8))


def test_ewma_rows_is_causal_and_starts_from_the_given_state():
    u = np.zeros((5, 2))
    u[2] = 1.0
    e = ewma_rows(u, 0.5, 0.0)
    assert np.allclose(e[:2], 0.0) and np.allclose(e[2:, 0], [0.5, 0.25, 0.125])
    assert np.allclose(ewma_rows(np.ones((3, 1)), 0.5, 1.0), 1.0)


@pytest.mark.parametrize("stat,fault", [("mean", "drift"), ("var", "noise")])
def test_sees_small_faults_that_rowwise_q_misses(stat, fault):
    train, test = _plant(400, 1), _plant(600, 2)
    bad = test.copy()
    t = np.arange(300)
    if fault == "drift":  # 0.5 noise sds per 100 rows on one sensor
        bad[300:, 3] += 0.3 * 0.5 * t / 100.0 * 3
    else:  # noise x2.5 on one sensor
        bad[300:, 3] += np.random.default_rng(5).normal(0.0, 0.3 * 2.3, 300)
    chart = fit_calibrated(lambda: ResidualEWMA(stat), train)
    q = fit_calibrated(lambda: PCADetector(stat="q"), train)
    rec_chart = (chart.surprise(bad)[300:] > 3).mean()
    rec_q = (q.surprise(bad)[300:] > 3).mean()
    fa_chart = (chart.surprise(test) > 3).mean()
    assert rec_chart > rec_q + 0.2, (rec_chart, rec_q)
    assert fa_chart < 0.02


def test_comes_back_after_the_fault_ends():
    train, test = _plant(400, 1), _plant(400, 3)
    test[100:200, 2] += 30.0  # a sensor gone wild, then back
    s = fit_calibrated(lambda: ResidualEWMA("var", lam=0.1), train).surprise(test)
    assert s[150] > 3
    assert (s[240:] < 3).all()  # clipped residuals: back within 40 rows


def test_bad_settings_are_refused():
    with pytest.raises(ModelError, match="stat"):
        ResidualEWMA("median")
    with pytest.raises(ModelError, match="lam"):
        ResidualEWMA(lam=0.0)
