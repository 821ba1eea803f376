"""Fraud quality measures and thresholds (hand-computed cases), the out-of-range guard, and
chargeback validation."""

from __future__ import annotations

import numpy as np
import pytest

from tocsin.connectors.payments_labels import label_from_obj
from tocsin.detectors import fraud_metrics as fm
from tocsin.detectors.fraud_drift import FeatureRange
from tocsin.errors import SchemaError

DAY = fm.DAY


def test_card_precision_at_k_per_day():
    # day 0: cards a (fraud, 0.9), b (0.8), c (0.1, fraud); day 1: a (0.2), d (fraud, 0.7)
    cards = np.array(["a", "a", "b", "c", "a", "d"], dtype=object)
    p = np.array([0.9, 0.3, 0.8, 0.1, 0.2, 0.7])
    y = np.array([1, 0, 0, 1, 0, 1])
    ts = np.array([0, 1, 2, 3, DAY, DAY + 1])
    mean, days = fm.card_precision_at_k(y, p, ts, cards, k=2)
    assert days == [0.5, 0.5] and mean == 0.5  # day 0: {a, b} -> a; day 1: {d, a} -> d
    assert fm.card_precision_at_k(y, p, ts, cards, k=1)[1] == [1.0, 1.0]


def test_recall_at_fpr_and_known_compromised_mask():
    y = np.array([0] * 100 + [1, 1])
    p = np.concatenate([np.linspace(0, 0.5, 100), [0.9, 0.4]])
    assert fm.recall_at_fpr(y, p, 0.01) == 0.5  # 0.4 ranks below some legit ones
    keep = fm.known_compromised_mask(np.array([DAY - 1, DAY, 2 * DAY]),
                                     np.array(["a", "a", "b"], dtype=object), {"a": DAY - 5})
    assert keep.tolist() == [True, False, True]  # reported on day 0: dropped from day 1 on


def test_thresholds_keep_the_alert_budget_and_reach_the_precision():
    rng = np.random.default_rng(1)
    n = 10 * 1000
    ts = np.sort(rng.integers(0, 10 * DAY, n))
    y = (rng.random(n) < 0.02).astype(int)
    p = np.clip(rng.normal(0.2, 0.1, n) + 0.5 * y, 0, 1).astype(np.float32)
    t = fm.choose_thresholds(y, p, ts, alerts_per_day=50, decline_precision=0.9)
    days = (ts.max() - ts.min()) / DAY
    assert (p >= t["review"]).sum() <= 50 * days
    assert (p >= t["review"]).sum() >= 50 * days - 5  # not needlessly below the budget
    sel = p >= t["decline"]
    assert y[sel].mean() >= 0.9 and t["decline"] >= t["review"]
    assert t["validation"]["decline"]["precision"] == pytest.approx(y[sel].mean())


def test_feature_range_counts_far_and_changed_constant_features():
    fr = FeatureRange(["a", "b", "c"], mean=[0.0, 5.0, 30.0], std=[1.0, 2.0, 0.0])
    tab = np.array([[49.0, 5.0, 30.0], [51.0, 5.0, 30.0], [0.0, -200.0, 29.0]])
    assert fr.check(tab).tolist() == [1, 1, 1]
    worst = fr.worst(tab)
    assert worst["a"] == pytest.approx(51.0) and worst["b"] == pytest.approx(102.5)
    assert worst["c"] == float("inf")
    assert fr.check(np.zeros((0, 3))).tolist() == [0, 0, 0]


NOW = 1_767_225_600 * 10**9


@pytest.mark.parametrize("obj, field", [
    ({"card_id": "c", "terminal_id": "t", "txn_ts": NOW, "reported_ts": NOW}, "txn_id"),
    ({"txn_id": "x", "card_id": "c", "terminal_id": "t", "txn_ts": NOW, "reported_ts": NOW - 1},
     "reported_ts"),
    ({"txn_id": "x", "card_id": "", "terminal_id": "t", "txn_ts": NOW, "reported_ts": NOW},
     "card_id"),
    ({"txn_id": "x", "card_id": "c", "terminal_id": "t", "txn_ts": 5, "reported_ts": NOW},
     "txn_ts"),
    ({"txn_id": "x", "card_id": "c", "terminal_id": "t", "txn_ts": NOW,
      "reported_ts": NOW + 3600 * 10**9}, "reported_ts"),
    ({"txn_id": "x", "card_id": "c", "terminal_id": "t", "txn_ts": "soon",
      "reported_ts": NOW}, "txn_ts"),
])
def test_chargebacks_are_validated_naming_the_field(obj, field):
    with pytest.raises(SchemaError, match=f"'{field}'"):
        label_from_obj(obj, NOW)


def test_a_good_chargeback_defaults_to_fraud():
    lab = label_from_obj({"txn_id": "x", "card_id": "c", "terminal_id": "t", "txn_ts": NOW,
                          "reported_ts": NOW + 10}, NOW)
    assert lab.fraud and lab.reported_ts == NOW + 10
