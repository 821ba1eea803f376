"""The load-aware switch: trips under load, holds with hysteresis, recovers when load falls."""

from __future__ import annotations

from tocsin.detectors.fraud_routing import LoadAwareSwitch, LoadSample, SwitchConfig


def _feed(sw, t, *, wait, lag=0, model_ms=1.0, batch=32, cpu=0.2):
    return sw.observe(LoadSample(t, batch, wait, lag, model_ms, sw.branch, cpu))


def test_trips_to_light_when_the_budget_is_threatened_and_recovers():
    sw = LoadAwareSwitch(SwitchConfig(budget_ms=100, trip_after=2, recover_s=1.0))
    t = 0.0
    for _ in range(20):
        t += 0.05
        assert _feed(sw, t, wait=5) == "full"
    assert _feed(sw, t + 0.05, wait=90) == "full"  # one batch over: not yet
    assert _feed(sw, t + 0.10, wait=95) == "light"
    t += 0.1
    # load falls: the slow batch leaves the 1 s window, then recover_s below the low mark
    low_from = t
    while sw.branch == "light" and t < low_from + 10:
        t += 0.05
        _feed(sw, t, wait=10)
    assert sw.branch == "full"
    assert 1.0 + 1.0 <= t - low_from <= 1.0 + 1.0 + 0.2
    assert [b for _, b in sw.history] == ["light", "full"]


def test_lag_alone_predicts_a_miss():
    sw = LoadAwareSwitch(SwitchConfig(budget_ms=50, trip_after=1))
    for t in range(5):  # learn the full model's cost: 2 ms per 32 transactions
        _feed(sw, t * 0.01, wait=1, model_ms=2.0)
    assert sw.branch == "full"
    _feed(sw, 1.0, wait=1, lag=2000, model_ms=2.0)
    assert sw.branch == "light" and sw.predicted_ms > 0.8 * 50


def test_no_flapping_around_the_threshold():
    sw = LoadAwareSwitch(SwitchConfig(budget_ms=100, high=0.8, low=0.5, trip_after=2,
                                      recover_s=2.0))
    t = 0.0
    for k in range(400):  # waits oscillating between 60 and 85 ms
        t += 0.01
        _feed(sw, t, wait=85 if k % 2 else 60)
    assert sw.switches <= 1


def test_saturated_cpu_raises_the_prediction():
    a, b = LoadAwareSwitch(), LoadAwareSwitch()
    s_idle = LoadSample(0, 64, 5, 100, 3, "full", cpu=0.1)
    s_busy = LoadSample(0, 64, 5, 100, 3, "full", cpu=1.0)
    assert b.predict(s_busy) > a.predict(s_idle)
