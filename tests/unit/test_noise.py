"""Row-to-row variability chart (tocsin.detectors.noise): it sees extra noise and a jumping
valve that a slow load leaves alone, carries missing values forward, and comes back after
the fault ends."""

from __future__ import annotations

import numpy as np
import pytest

from tocsin.detectors.calibrated import fit_calibrated
from tocsin.detectors.noise import DiffNoise, carried, diff_scale, differences
from tocsin.detectors.protocol import ModelError


def _plant(n: int, seed: int, load_sd: float = 0.3) -> np.ndarray:
    """A slow AR(1) load that moves every sensor, plus white measurement noise 0.1."""
    rng = np.random.default_rng(seed)
    load = np.zeros(n)
    for i in range(1, n):
        load[i] = 0.99 * load[i - 1] + load_sd * np.sqrt(1 - 0.99 ** 2) * rng.normal()
    gains = np.array([1.0, 2.0, -1.5, 0.5])
    return load[:, None] * gains + 0.1 * rng.normal(size=(n, 4))


def test_carried_and_differences():
    x = np.array([[np.nan, 1.0], [2.0, np.nan], [np.nan, 4.0], [5.0, np.nan]])
    assert np.allclose(carried(x), [[2.0, 1.0], [2.0, 1.0], [2.0, 4.0], [5.0, 4.0]])
    assert np.allclose(differences(x), [[0, 0], [0, 0], [0, 3], [3, 0]])
    assert np.allclose(carried(np.full((3, 1), np.nan)), 0.0)


def test_diff_scale_leaves_out_the_largest_and_floors_constant_columns():
    d = np.c_[np.r_[np.ones(99), 1e6], np.zeros(100)]
    assert np.allclose(diff_scale(d), [1.0, 1.0])


def test_sees_extra_noise_and_not_a_slow_load_change():
    train, test = _plant(400, 1), _plant(800, 2)
    bad = test.copy()
    bad[400:600, 2] += np.random.default_rng(5).normal(0.0, 0.3, 200)  # noise x3 on one tag
    moved = test.copy()
    moved[400:] += np.linspace(0.0, 2.0, 400)[:, None] * np.array([1.0, 2.0, -1.5, 0.5])
    chart = fit_calibrated(DiffNoise, train)
    s_bad, s_moved, s_ok = (chart.surprise(v) for v in (bad, moved, test))
    assert (s_bad[420:600] > 3).mean() > 0.9
    assert (s_ok > 3).mean() < 0.02
    assert (s_moved > 3).mean() < 0.02  # 7 load spreads away, slowly: no alarm


def test_a_jumping_valve_and_the_return_after_the_fault():
    train, test = _plant(400, 1), _plant(500, 3)
    # holds (no noise), then jumps by 1.0 (10 noise sds) every 4 rows
    jumps = np.repeat(np.tile([0.0, 1.0], 25), 4)
    test[100:300, 0] = np.repeat(test[100:300:4, 0], 4) + jumps
    s = fit_calibrated(DiffNoise, train).surprise(test)
    assert (s[110:300] > 3).mean() > 0.8
    assert (s[300:330] > 3).any()
    assert (s[340:] > 3).mean() < 0.02  # clipped at 5: back within 40 rows


def test_score_is_causal_and_rows_are_checked():
    train, test = _plant(300, 1), _plant(100, 4)
    det = DiffNoise().fit(train)
    a = det.score(test)
    b = test.copy()
    b[60:] += 5.0
    assert np.allclose(det.score(b)[:60], a[:60])
    with pytest.raises(ModelError, match="diff_var"):
        DiffNoise(lam=0.0)
    with pytest.raises(ModelError, match="training rows"):
        DiffNoise().fit(train[:5])
    with pytest.raises(ModelError, match="columns"):
        det.score(test[:, :2])
