"""Labeled CSV for `tocsin train fraud --csv`: round trip of simulated data, label times,
and errors that name the line and column."""

from __future__ import annotations

import pytest

from tocsin.connectors.payments_data import read_csv, write_csv
from tocsin.connectors.simulator.payswitch import SCENARIOS, PaymentSwitch
from tocsin.errors import SchemaError


def test_simulated_csv_round_trip(tmp_path):
    sim = PaymentSwitch(customers=60, terminals=15, seed=2, frauds_per_day=3).generate(6)
    assert sim.fraud.any() and set(s for s in sim.scenario if s) <= set(SCENARIOS)
    assert all(lab.reported_ts > lab.txn_ts for lab in sim.labels)
    path = tmp_path / "sim.csv"
    write_csv(path, sim.transactions, sim.fraud, sim.labels)
    txns, labels, y = read_csv(path)
    assert [t.txn_id for t in txns] == [t.txn_id for t in sim.transactions]
    assert y == sim.fraud.tolist()
    assert sorted((x.txn_id, x.reported_ts) for x in labels) == sorted(
        (x.txn_id, x.reported_ts) for x in sim.labels)


def test_minimal_csv_assumes_a_label_delay(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("timestamp,customer_id,merchant_id,amount,label\n"
                    "2026-01-02T10:00:00Z,c1,m1,12.5,0\n"
                    "1767348000,c1,m2,99,1\n")
    txns, labels, y = read_csv(path, label_delay_ns=2 * 86400 * 10**9)
    assert [t.card_id for t in txns] == ["c1", "c1"] and y == [False, True]
    assert labels[0].reported_ts - labels[0].txn_ts == 2 * 86400 * 10**9


@pytest.mark.parametrize("row, words", [("2026-01-02,c1,m1,abc,0", "line 2, column 'amount'"),
                                        ("yesterday,c1,m1,1,0", "line 2, column 'timestamp'")])
def test_bad_cells_name_line_and_column(tmp_path, row, words):
    path = tmp_path / "b.csv"
    path.write_text("timestamp,card_id,terminal_id,amount,label\n" + row + "\n")
    with pytest.raises(SchemaError, match=words):
        read_csv(path)


def test_missing_column_is_named(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("timestamp,card_id,amount,label\n")
    with pytest.raises(SchemaError, match="terminal_id"):
        read_csv(path)


def test_recording_of_the_payment_topics(tmp_path):
    """`tocsin train fraud --recording`: transactions and labels as `tocsin record` keeps
    them; a transaction is fraud when a label names it."""
    from tocsin.connectors.payments_data import read_recording
    from tocsin.connectors.recording import Message, RecordingWriter

    sim = PaymentSwitch(customers=30, terminals=8, seed=4, frauds_per_day=3).generate(3)
    path = tmp_path / "pay.rec"
    with RecordingWriter(path) as w:
        w.declare_topics(["x.payments.transactions", "x.payments.labels"])
        for i, t in enumerate(sim.transactions):
            w.write(Message("x.payments.transactions", 0, i, t.ts // 10**6,
                            t.card_id.encode(), t.encode()))
        for i, lab in enumerate(sim.labels):
            w.write(Message("x.payments.labels", 0, i, lab.reported_ts // 10**6,
                            lab.terminal_id.encode(), lab.encode()))
    txns, labels, y = read_recording(path)
    assert [t.txn_id for t in txns] == [t.txn_id for t in sim.transactions]
    assert y == sim.fraud.tolist() and len(labels) == len(sim.labels)
