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


def test_column_mapping_and_parquet(tmp_path):
    """A switch export with its own column names (--map), as CSV and as Parquet."""
    from tocsin.connectors.payments_data import parse_mapping

    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    rows = [("2026-01-02T10:00:00", "C1", "T1", 12.5, 0), ("2026-01-03T11:00:00", "C1", "T2",
                                                           99.0, 1)]
    path = tmp_path / "export.csv"
    path.write_text("TX_DATETIME,CUSTOMER_ID,TERMINAL_ID,TX_AMOUNT,TX_FRAUD\n"
                    + "".join(",".join(map(str, r)) + "\n" for r in rows))
    m = parse_mapping("tx_datetime=timestamp, customer_id=card_id,tx_amount=amount,"
                      "tx_fraud=label")
    a = read_csv(path, mapping=m)
    with pytest.raises(SchemaError, match="--map"):
        read_csv(path)  # the names are not Tocsin's
    from datetime import datetime

    table = pa.table({"TX_DATETIME": [datetime.fromisoformat(r[0]) for r in rows],
                      "CUSTOMER_ID": [r[1] for r in rows], "TERMINAL_ID": [r[2] for r in rows],
                      "TX_AMOUNT": [r[3] for r in rows], "TX_FRAUD": [r[4] for r in rows]})
    pq.write_table(table, tmp_path / "export.parquet")
    b = read_csv(tmp_path / "export.parquet", mapping=m)
    for x in (a, b):
        txns, labels, y = x
        assert [(t.ts, t.card_id, t.terminal_id, t.amount) for t in txns] == [
            (1767348000 * 10**9, "C1", "T1", 12.5), (1767438000 * 10**9, "C1", "T2", 99.0)]
        assert y == [False, True] and labels[0].txn_ts == txns[1].ts
    from tocsin.errors import DataError

    with pytest.raises(DataError, match="does not have"):
        read_csv(path, mapping={"nope": "amount"})
    with pytest.raises(DataError, match="FILE_COLUMN=TOCSIN_COLUMN"):
        parse_mapping("tx_amount")


def test_chargeback_file_is_validated_with_its_line(tmp_path):
    from tocsin.connectors.payments_data import read_labels

    path = tmp_path / "cb.csv"
    path.write_text("txn_id,card_id,terminal_id,txn_ts,reported_ts\n"
                    "a,c1,t1,2026-01-02T10:00:00Z,2026-01-09T00:00:00Z\n")
    (lab,) = read_labels(path)
    assert lab.fraud and lab.reported_ts - lab.txn_ts == (6 * 86400 + 14 * 3600) * 10**9
    path.write_text("txn_id,card_id,terminal_id,txn_ts,reported_ts\n"
                    "a,c1,t1,2026-01-02T10:00:00Z,2026-01-09T00:00:00Z\n"
                    "b,c1,t1,2026-01-09T10:00:00Z,2026-01-02T00:00:00Z\n")
    with pytest.raises(SchemaError, match="line 3.*reported_ts"):
        read_labels(path)
