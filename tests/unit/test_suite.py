"""The pure-detector suite: quality checks on raw rows, ensembles of calibrated members,
dynamic-PCA lags, and the evaluation that fits on the training rows only."""

from __future__ import annotations

import numpy as np
import pytest

from tocsin.connectors.model_sources import Table
from tocsin.detectors import suite
from tocsin.detectors.decision import RULES
from tocsin.detectors.protocol import ModelError


def _rows(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n, 1))
    return latent @ np.ones((1, 4)) + 0.2 * rng.normal(size=(n, 4)) + [1, 2, 3, 4]


def test_quality_checks_fire_only_beyond_training():
    x = _rows(300)
    miss = suite.QualityCheck("missing").fit(x)
    stuck = suite.QualityCheck("stuck").fit(x)
    y = _rows(100, seed=1)
    assert miss.surprise(y).max() == 0 and stuck.surprise(y).max() == 0
    y[40:, 2] = np.nan
    y[10:30, 1] = y[10, 1]
    assert (miss.surprise(y)[40:] == suite.MAX_SURPRISE).all()
    s = stuck.surprise(y)
    assert s[:15].max() == 0 and (s[15:30] == suite.MAX_SURPRISE).all() and s[30:].max() == 0
    q = np.round(_rows(300), 0)  # a quantised sensor repeats values in normal operation
    assert suite.QualityCheck("stuck").fit(q).surprise(np.round(_rows(100, 2), 0)).max() == 0
    with pytest.raises(ModelError, match="quality check"):
        suite.QualityCheck("wobble")


def test_run_lengths():
    r = suite.run_lengths(np.array([[1.0], [1.0], [2.0], [2.0], [2.0], [np.nan], [np.nan]]))
    assert r.ravel().tolist() == [1, 2, 1, 2, 3, 1, 1]


def test_ensembles_combine_calibrated_members_and_names_are_checked():
    x = _rows(400)
    names = ["pca_q", "pca_t2q", "ensemble"]
    fitted = suite.fit_suite(x, names)
    assert set(fitted) == {"pca_t2", "pca_q", "knn", "missing", "stuck"}
    y = _rows(200, seed=3)
    y[100:, 0] += 3.0  # breaks the correlation: Q and the ensemble see it
    s = suite.surprises(fitted, y, names)
    for n in names:
        assert np.median(s[n][100:]) > 3 > np.quantile(s[n][:100], 0.5)
    with pytest.raises(ModelError, match="unknown detector"):
        suite.needed(["nope"])


def test_eval_fits_on_the_training_rows_only_and_lags_add_the_past():
    from tocsin.offline.plant_eval import eval_table_suite, lagged, short_spec

    lag = lagged(np.arange(6.0).reshape(3, 2), 1)
    assert np.isnan(lag[0, 2:]).all() and lag[2].tolist() == [4, 5, 2, 3]
    x = _rows(700, seed=4)
    lab = np.zeros(700, dtype=np.int64)
    lab[500:600] = 1
    x[500:600, 3] += 2.5
    ts = (1_767_225_600 + np.arange(700)) * 1_000_000_000
    t = Table(["a", "b", "c", "d"], ts, x, lab)
    res = eval_table_suite(t, "t", short_spec(1.0), ["q_quality"], {"3of5": RULES["3of5"]},
                           300, lags=1)
    m = res[("q_quality", "3of5")].metrics
    assert m["rows"] == 400 and m["fault_rows"] == 100
    assert m["recall"] > 0.8 and m["false_alarm_rate"] < 0.05


def test_raw_row_members_score_the_sensor_rows_not_the_features():
    """``diff_var`` is fitted and scored on the raw rows: with features that hide the noise
    (here: zeros), the ensemble still sees extra noise on one sensor."""
    def slow(n, seed):  # a slowly moving plant: the row-to-row change is the noise
        rng = np.random.default_rng(seed)
        return np.sin(np.arange(n) / 40.0)[:, None] * [1, 2, 3, 4] + 0.2 * rng.normal(
            size=(n, 4))

    raw = slow(400, 0)
    feats = np.zeros((400, 2))
    fitted = suite.fit_suite(feats + np.random.default_rng(1).normal(size=(400, 2)),
                             ["mode_noise"], raw)
    assert {"diff_var", "mode_q", "missing", "stuck"} <= set(fitted)
    y = slow(200, 5)
    y[100:, 2] += np.random.default_rng(6).normal(0.0, 1.0, 100)  # noise x5 on one sensor
    fx = np.random.default_rng(7).normal(size=(200, 2))
    s = suite.surprises(fitted, fx, ["mode_noise", "diff_var"], y)
    assert np.median(s["diff_var"][110:]) > 3 > np.quantile(s["diff_var"][:100], 0.9)
    assert np.median(s["mode_noise"][110:]) > 2
    assert "diff_var" in suite.RAW_ROW and "mode_noise" in suite.NAMES
