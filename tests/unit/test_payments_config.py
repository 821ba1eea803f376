"""Fraud settings: validated once, errors name the variable; the naive peer has no switch."""

from __future__ import annotations

import pytest

from tocsin.config.payments import load_fraud_settings
from tocsin.errors import ConfigError


def test_defaults_and_naive_peer():
    fs = load_fraud_settings()
    assert (fs.batch_max, fs.batch_wait_ms, fs.budget_ms, fs.force_branch) == (1024, 2.0, 120.0,
                                                                                 None)
    assert load_fraud_settings(naive=True).force_branch == "full"


@pytest.mark.parametrize("kw, words", [
    ({"batch_max": 0}, "TOCSIN_FRAUD_BATCH_MAX"), ({"budget_ms": -1}, "TOCSIN_FRAUD_BUDGET_MS"),
    ({"switch_low": 0.9, "switch_high": 0.8}, "switch_low"),
    ({"alert_on": "approve"}, "alert_on"), ({"force_branch": "heavy"}, "force_branch"),
])
def test_bad_settings_name_the_field(kw, words):
    with pytest.raises(ConfigError, match=words):
        load_fraud_settings(**kw)


def test_environment_is_read(monkeypatch):
    monkeypatch.setenv("TOCSIN_FRAUD_BATCH_WAIT_MS", "5")
    assert load_fraud_settings().batch_wait_ms == 5.0
