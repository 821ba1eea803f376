"""The through-topic records (card stage -> terminal stage): msgspec arrays, exact float32
features, the older JSON format still read, bad records refused with SchemaError."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from tocsin.contracts.payments import FraudLabel, Transaction
from tocsin.detectors import fraud_through as thr
from tocsin.errors import SchemaError

T = Transaction("tx-1", 1_767_412_074_225_446_310, "card-1", "term-9", 42.5,
                currency="EUR", pos_entry_mode="051", ingest_ts=1_767_412_074_225_446_311)
ROW = [float(i) * 1.37 + 1e-9 for i in range(30)]
TOKS = [[0.1 * j + 1e-7 * k for k in range(8)] for j in range(5)]


def test_txn_round_trip_keeps_the_float32_cast_of_the_offline_matrix():
    raw = thr.encode_txn("t3", T, ROW, thr.tokens_f32(TOKS), False)
    rec = thr.decode(raw)
    assert (rec.kind, rec.source, rec.ts, rec.count, rec.raw) == (thr.TXN, "t3", T.ts, False,
                                                                  raw)
    assert (rec.txn.txn_id, rec.txn.card_id, rec.txn.terminal_id, rec.txn.amount,
            rec.txn.pos_entry_mode, rec.txn.ingest_ts) == ("tx-1", "card-1", "term-9", 42.5,
                                                           "051", T.ingest_ts)
    assert np.array_equal(np.frombuffer(rec.card_row, np.float32), np.array(ROW, np.float32))
    toks = np.frombuffer(rec.toks, np.float32).reshape(-1, 8)
    assert np.array_equal(toks, np.array(TOKS, np.float32))


def test_integer_amounts_stay_integers():
    t = Transaction("tx-2", T.ts, "c", "term", 7)
    assert thr.decode(thr.encode_txn("t0", t, ROW, b"", True)).txn.amount == 7
    assert isinstance(thr.decode(thr.encode_txn("t0", t, ROW, b"", True)).txn.amount, int)


def test_labels_and_marks():
    lab = FraudLabel("tx-1", "card-1", "term-9", T.ts, T.ts + 5, True)
    rec = thr.decode(thr.encode_label("l1", lab))
    assert (rec.kind, rec.source, rec.ts, rec.label) == (thr.LABEL, "l1", T.ts + 5, lab)
    rec = thr.decode(thr.encode_mark("t2", 123))
    assert (rec.kind, rec.source, rec.ts) == (thr.MARK, "t2", 123)


def test_the_json_records_of_older_versions_are_read():
    old = orjson.dumps({"k": "t", "s": "t1", "x": [T.txn_id, T.ts, T.card_id, T.terminal_id,
                                                    T.amount, T.currency, T.pos_entry_mode,
                                                    T.ingest_ts], "c": ROW, "q": TOKS,
                        "n": True})
    rec = thr.decode(old)
    new = thr.decode(thr.encode_txn("t1", T, ROW, thr.tokens_f32(TOKS), True))
    assert (rec.card_row, rec.toks, rec.txn, rec.count) == (new.card_row, new.toks, new.txn,
                                                            True)
    assert thr.decode(rec.raw).txn == T  # persisted again in the new format
    assert thr.decode(orjson.dumps({"k": "w", "s": "l0", "w": 9})).ts == 9


@pytest.mark.parametrize("raw", [b"", b"\x93\xa1t\x01\x02", b"garbage", b'{"k": "z", "s": "x"}',
                                 b"{not json", b"\x92\xa1w\xa2t1"])
def test_bad_records_raise_schema_error(raw):
    with pytest.raises(SchemaError):
        thr.decode(raw)


def test_the_card_stage_tokens_equal_the_offline_sequence():
    """The card stage appends one token per transaction to the card's float32 bytes; the
    result must be the offline sequence, redeliveries and restarts included."""
    from tocsin.config.worker import Settings
    from tocsin.connectors.simulator.payswitch import PaymentSwitch
    from tocsin.detectors.fraud_features import FraudFeatures
    from tocsin.streams.fraud_card_stage import CardStage
    from tocsin.streams.runtime.operator import Record

    class Out:
        def __init__(self):
            self.sent = []

        def send(self, topic, key, value):
            self.sent.append(value)

        def dead_letter(self, record, why, stage):
            raise AssertionError(why)

    sim = PaymentSwitch(customers=150, terminals=10, seed=5).generate(4)
    txns = sim.transactions[:1500]
    s = Settings(partitions=1, topic_prefix="u.")
    state: dict = {}
    stage = CardStage(s, b"k" * 32)
    stage.open(0, state)
    out = Out()
    recs = [Record("x", 0, i, t.card_id.encode(), t.encode()) for i, t in enumerate(txns)]
    recs.insert(700, recs[650])  # a redelivery
    for i in range(0, len(recs), 97):
        if i == 970:  # a restart: memory gone, card states from the state
            stage = CardStage(s, b"k" * 32)
            stage.open(0, state)
        stage.process(recs[i:i + 97], out)
    got = [r for r in map(thr.decode, out.sent) if r.kind == thr.TXN]
    ff = FraudFeatures()
    want = {}
    for t in txns:
        want.setdefault(t.txn_id, thr.tokens_f32(ff.one(t)[1]))
    assert len(got) == len(txns) + 1
    for r in got:
        if r.count:
            assert r.toks == want[r.txn.txn_id], r.txn.txn_id
    redelivered = [r for r in got if not r.count]
    assert len(redelivered) == 1
