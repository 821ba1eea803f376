"""Online fraud features: windows against a brute-force reference, late labels never used
before their arrival, state that survives a bytes round trip (a restart) unchanged."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tocsin.connectors.simulator.payswitch import PaymentSwitch
from tocsin.contracts.payments import FraudLabel, Transaction
from tocsin.detectors.fraud_card import from_bytes as card_from_bytes
from tocsin.detectors.fraud_card import to_bytes as card_to_bytes
from tocsin.detectors.fraud_features import DAY, FEATURES, HOUR, FraudFeatures
from tocsin.detectors.fraud_terminal import TermState

T0 = 1_767_225_600 * 10**9
IDX = {n: i for i, n in enumerate(FEATURES)}


def _t(i, ts, card="c1", term="T1", amount=10.0, pem="051"):
    return Transaction(f"x{i}", ts, card, term, amount, pos_entry_mode=pem)


def test_card_windows_match_brute_force():
    rng = np.random.default_rng(1)
    ts = np.sort(T0 + rng.integers(0, 40 * DAY, 300))
    amounts = np.round(rng.uniform(1, 200, 300), 2)
    ff = FraudFeatures()
    rows = [ff.one(_t(i, int(t), amount=float(a)))[0] for i, (t, a) in
            enumerate(zip(ts, amounts))]
    for k in (10, 150, 299):
        t = ts[k]
        prev_t, prev_a = ts[:k], amounts[:k]
        spans = {"1h": (prev_t > t - HOUR),
                 "1d": (prev_t // HOUR > t // HOUR - 24),
                 "7d": (prev_t // DAY > t // DAY - 7),
                 "30d": (prev_t // DAY > t // DAY - 30)}
        for w, m in spans.items():
            assert rows[k][IDX[f"card_count_{w}"]] == m.sum(), (k, w)
            assert rows[k][IDX[f"card_log_sum_{w}"]] == pytest.approx(math.log1p(prev_a[m].sum()))
        assert rows[k][IDX["log_amount"]] == pytest.approx(math.log1p(amounts[k]))
        assert rows[k][IDX["log_secs_since_prev"]] == pytest.approx(
            math.log1p((t - ts[k - 1]) / 1e9))


def test_label_counts_only_from_its_arrival_time():
    """A chargeback reported at T0+3d must not change features of transactions before it,
    even when the label is known to the state long before (read out of order)."""
    ff = FraudFeatures()
    ff.add_label(FraudLabel("old", "c9", "T1", T0, T0 + 3 * DAY))
    before = ff.one(_t(1, T0 + 3 * DAY - 1))[0]
    assert before[IDX["term_frauds_known_30d"]] == 0.0
    assert before[IDX["term_fraud_ratio_30d"]] == 0.0
    at = ff.one(_t(2, T0 + 3 * DAY))[0]
    assert at[IDX["term_frauds_known_30d"]] == pytest.approx(math.log1p(1))
    assert at[IDX["term_days_since_known_fraud"]] == pytest.approx(3.0)
    # another terminal is unaffected
    other = ff.one(_t(3, T0 + 4 * DAY, term="T2"))[0]
    assert other[IDX["term_frauds_known_30d"]] == 0.0


def test_state_survives_a_json_round_trip_midway():
    sim = PaymentSwitch(customers=40, terminals=10, seed=5).generate(5)
    txns, labels = sim.transactions, sim.labels
    half = len(txns) // 2

    def run(restart: bool):
        ff = FraudFeatures()
        for lab in labels:
            ff.add_label(lab)
        out = []
        for i, t in enumerate(txns):
            if restart and i == half:  # what the stages' changelogs restore
                ff = FraudFeatures(
                    {k: card_from_bytes(card_to_bytes(v)) for k, v in ff.cards.items()},
                    {k: TermState.from_bytes(v.to_bytes()) for k, v in ff.terms.items()})
            out.append(ff.one(t))
        return out

    a, b = run(False), run(True)
    assert [r for r, _ in a] == [r for r, _ in b]
    assert [s for _, s in a] == [s for _, s in b]


def test_transform_isolates_a_failing_transaction():
    ff = FraudFeatures()
    bad = _t(2, T0 + 10, amount=float("nan"))
    bad.amount = None  # a poisoned record that got past decoding
    tab, seq, pad, errors = ff.transform([_t(1, T0), bad, _t(3, T0 + 20)])
    assert [i for i, _ in errors] == [1] and "TypeError" in errors[0][1]
    assert tab[2, IDX["card_count_1h"]] == 1.0  # the good ones went on
    assert pad[0].sum() == pad.shape[1] - 1  # one real token: the transaction itself


def test_redelivered_transaction_counts_once():
    ff = FraudFeatures()
    first = ff.one(_t(1, T0, amount=5.0))[0]
    again = ff.one(_t(1, T0, amount=5.0))[0]  # same txn_id, redelivered after a crash
    nxt = ff.one(_t(2, T0 + 60 * 10**9))[0]
    assert first[IDX["card_count_1h"]] == 0.0 and again[IDX["card_count_1h"]] == 1.0
    assert nxt[IDX["card_count_1h"]] == 1.0  # not 2


def test_late_arrival_is_windowed_by_event_time():
    """A transaction that arrives after a later one still lands in its own hour and day."""
    ff = FraudFeatures()
    ff.one(_t(1, T0 + 5 * DAY, amount=7.0))
    ff.one(_t(2, T0 + 1 * DAY, amount=3.0))  # late
    row = ff.one(_t(3, T0 + 5 * DAY + 60 * 10**9))[0]
    assert row[IDX["card_count_1h"]] == 1.0 and row[IDX["card_count_7d"]] == 2.0
    card = ff.cards["c1"]
    assert [b[0] for b in card["d"]] == sorted(b[0] for b in card["d"])
