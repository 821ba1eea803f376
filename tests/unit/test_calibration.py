"""Tail calibration (peaks over threshold) and the decision steps."""

from __future__ import annotations

import numpy as np
import pytest

from tocsin.detectors.calibration import TailCalibration, combine, fit_tail
from tocsin.detectors.decision import DecisionRule, ewma, k_of_n
from tocsin.detectors.protocol import ModelError


@pytest.mark.parametrize("dist", ["gamma", "lognormal", "chi2_52"])
def test_false_alarm_rate_holds_on_new_normal_scores(dist):
    """Limits fitted on 500 scores hold on 200,000 new ones, beyond the largest calibration
    score (where an empirical quantile has nothing to say)."""
    rng = np.random.default_rng(1)
    draw = {"gamma": lambda n: rng.gamma(2.0, 1.0, n),
            "lognormal": lambda n: rng.lognormal(0.0, 0.5, n),
            "chi2_52": lambda n: rng.chisquare(52, n) / 52}[dist]
    cal = fit_tail(draw(500))
    new = draw(200_000)
    for surprise in (2.0, 3.0):
        rate = (cal.surprise(new) > surprise).mean()
        target = 10 ** -surprise
        assert rate < 2.5 * target, (surprise, rate)  # never far above the target ...
        assert rate > target / 20  # ... and not uselessly conservative


def test_surprise_is_monotone_and_threshold_inverts_it():
    rng = np.random.default_rng(2)
    cal = fit_tail(rng.exponential(1.0, 1000))
    s = np.linspace(-1, 30, 500)
    sur = cal.surprise(s)
    assert (np.diff(sur) >= -1e-12).all()
    assert sur.min() >= 0 and sur.max() <= 12
    for level in (1.5, 2.0, 3.0, 5.0):
        assert cal.surprise(np.array([cal.threshold(level)]))[0] == pytest.approx(level, 1e-6)
    assert np.allclose(cal.probability(s), 1 - cal.sf(s))
    assert np.isnan(cal.surprise(np.array([np.nan]))[0])


def test_calibration_round_trips_and_refuses_too_few_scores():
    cal = fit_tail(np.random.default_rng(3).normal(size=300))
    again = TailCalibration.from_dict(cal.to_dict())
    assert again == cal
    with pytest.raises(ModelError, match="at least 30"):
        fit_tail(np.arange(10.0))
    with pytest.raises(ModelError, match="malformed"):
        TailCalibration.from_dict({"u": 1})
    const = fit_tail(np.ones(100))  # a detector that never moves on normal data
    assert const.surprise(np.array([1.0]))[0] < 1.5 and const.surprise(np.array([2.0]))[0] > 6


def test_short_heavy_tail_is_not_walled_off():
    """A light-tailed sample fitted with a negative shape would put a hard limit right above
    the data; the clamp to xi >= 0 keeps new normal maxima at a finite surprise."""
    rng = np.random.default_rng(4)
    cal = fit_tail(rng.uniform(0, 1, 400))
    assert cal.xi >= 0.0
    assert cal.surprise(np.array([1.05]))[0] < 12


def test_combine_bonferroni_keeps_the_false_alarm_rate():
    rng = np.random.default_rng(5)
    m = {f"d{i}": -np.log10(rng.uniform(size=100_000)) for i in range(4)}
    ens = combine(m)
    assert (ens > 2).mean() <= 0.0105  # at most the target for independent members
    assert (combine(m, "mean") >= 0).all()
    with pytest.raises(ModelError, match="how must be"):
        combine(m, "sum")
    with pytest.raises(ModelError, match="no detector"):
        combine({})


def test_ewma_is_causal_and_skips_missing_rows():
    x = np.array([0.0, 0.0, 10.0, np.nan, 0.0])
    y = ewma(x, 0.5)
    assert y.tolist() == [0.0, 0.0, 5.0, 5.0, 2.5]
    assert ewma(x, 1.0)[2] == 10.0
    with pytest.raises(ModelError, match="alpha"):
        ewma(x, 0.0)


def test_k_of_n_counts_the_last_n_rows():
    a = np.array([1, 0, 1, 0, 0, 1, 1, 1, 0, 0, 0], dtype=bool)
    assert k_of_n(a, 2, 3).astype(int).tolist() == [0, 0, 1, 0, 0, 0, 1, 1, 1, 0, 0]
    assert (k_of_n(a, 1, 1) == a).all()
    with pytest.raises(ModelError, match="k <= n"):
        k_of_n(a, 3, 2)


def test_rule_clears_within_the_stated_rows():
    rule = DecisionRule(threshold=3.0, alpha=0.3, k=2, n=3)
    peak, s = 8.0, np.r_[np.zeros(20), np.full(30, 8.0), np.zeros(40)]
    alarm = rule.apply(s)
    assert alarm[20:50].any() and not alarm[:20].any()
    last = np.flatnonzero(alarm)[-1]
    assert last - 49 <= rule.clear_rows(peak)
    assert rule.name == "ewma 0.3, s>3, 2/3"
