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
    raw = thr.encode_txn("t3", T, ROW, TOKS, False)
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
    assert thr.decode(thr.encode_txn("t0", t, ROW, [], True)).txn.amount == 7
    assert isinstance(thr.decode(thr.encode_txn("t0", t, ROW, [], True)).txn.amount, int)


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
    new = thr.decode(thr.encode_txn("t1", T, ROW, TOKS, True))
    assert (rec.card_row, rec.toks, rec.txn, rec.count) == (new.card_row, new.toks, new.txn,
                                                            True)
    assert thr.decode(rec.raw).txn == T  # persisted again in the new format
    assert thr.decode(orjson.dumps({"k": "w", "s": "l0", "w": 9})).ts == 9


@pytest.mark.parametrize("raw", [b"", b"\x93\xa1t\x01\x02", b"garbage", b'{"k": "z", "s": "x"}',
                                 b"{not json", b"\x92\xa1w\xa2t1"])
def test_bad_records_raise_schema_error(raw):
    with pytest.raises(SchemaError):
        thr.decode(raw)
