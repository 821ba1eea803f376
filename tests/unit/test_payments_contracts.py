"""Payment contracts: round trips, published JSON Schemas, errors that name the field."""

from __future__ import annotations

import jsonschema
import orjson
import pytest

from tocsin.contracts._codec import json_schema
from tocsin.contracts.payments import FraudLabel, FraudScore, Transaction
from tocsin.errors import SchemaError

TXN = Transaction("T1", 1_767_225_600 * 10**9, "tok_ab", "TRM00001", 42.5, "978", "MER1",
                  "cust-1", 5411, "051", 1_767_225_600 * 10**9 + 5, "kafka")


def test_round_trips_validate_against_schemas():
    lab = FraudLabel("T1", "tok_ab", "TRM00001", TXN.ts, TXN.ts + 10**12, True, "card_testing")
    sc = FraudScore("T1", "tok_ab", "TRM00001", 0.93, "decline", "light", "fraud-x", TXN.ts,
                    TXN.ingest_ts, TXN.ingest_ts + 10**6, 1.0, 12, None)
    for rec, cls, schema in ((TXN, Transaction, "transaction.v1.json"),
                             (lab, FraudLabel, "fraud_label.v1.json"),
                             (sc, FraudScore, "fraud_score.v1.json")):
        raw = rec.encode()
        jsonschema.validate(orjson.loads(raw), json_schema(schema))
        assert cls.decode(raw) == rec


def test_minimal_transaction_gets_defaults():
    t = Transaction.decode(orjson.dumps({"schema": "tocsin.transaction/1", "txn_id": "a",
                                         "ts": 1_767_225_600 * 10**9, "card_id": "c", "terminal_id": "t",
                                         "amount": 3}))
    assert (t.amount, t.currency, t.mcc, t.ingest_ts) == (3.0, "EUR", 0, 0)


@pytest.mark.parametrize("patch, field", [
    ({"amount": "lots"}, "amount"), ({"amount": -1}, "amount"), ({"ts": 0}, "ts"),
    ({"card_id": ""}, "card_id"), ({"mcc": 12345}, "mcc"), ({"terminal_id": None}, "terminal_id"),
    ({"schema": "tocsin.transaction/2"}, "newer"),
])
def test_bad_transactions_name_the_field(patch, field):
    obj = orjson.loads(TXN.encode())
    obj.update(patch)
    with pytest.raises(SchemaError, match=field):
        Transaction.decode(orjson.dumps(obj))


def test_label_cannot_precede_its_transaction():
    bad = FraudLabel("T1", "c", "t", 100, 50)
    with pytest.raises(SchemaError, match="reported_ts"):
        FraudLabel.decode(bad.encode())


def test_score_refuses_unknown_branch():
    obj = orjson.loads(FraudScore("T", "c", "t", 0.1, "approve", "full", "v", 1, 1, 2, 0.0)
                       .encode())
    obj["branch"] = "medium"
    with pytest.raises(SchemaError, match="branch"):
        FraudScore.decode(orjson.dumps(obj))
