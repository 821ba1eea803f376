"""Chargebacks name cards as the transactions do: a PAN in a label (``pan`` or ``card_id``,
over HTTP or in an imported file) becomes the same keyed token the ingest gives the
transaction's PAN, so labels, known-compromised cards and scores line up."""

from __future__ import annotations

import pytest

from tocsin.connectors import iso8583_codec as iso
from tocsin.connectors.payments_ingest import _protect_card
from tocsin.connectors.payments_labels import label_from_obj, protect_label
from tocsin.contracts.pan import tokenize
from tocsin.contracts.payments import FraudLabel
from tocsin.errors import SchemaError

NOW = 1_767_225_600 * 10**9
KEY = b"a-test-key-of-some-length"
PAN = "4111111111111111"


def _obj(**kw) -> dict:
    return {"txn_id": "x", "terminal_id": "t", "txn_ts": NOW, "reported_ts": NOW + 10, **kw}


@pytest.mark.parametrize("given", [{"pan": PAN}, {"card_id": PAN},
                                   {"card_id": "4111 1111 1111 1111"},
                                   {"pan": "4111-1111-1111-1111", "card_id": "ignored"}])
def test_a_pan_in_a_label_gets_the_transactions_token(given):
    lab = label_from_obj(_obj(**given), NOW, KEY)
    txn = {"pan": PAN}
    _protect_card(txn, KEY)  # what the HTTP transaction ingest does with the same card
    assert lab.card_id == txn["card_id"] == tokenize(PAN, KEY)
    assert PAN not in lab.encode().decode()


def test_a_token_stays_a_token_and_a_pan_elsewhere_is_refused():
    tok = tokenize(PAN, KEY)
    assert label_from_obj(_obj(card_id=tok), NOW, KEY).card_id == tok
    with pytest.raises(SchemaError, match="'terminal_id'"):
        label_from_obj(_obj(card_id=tok, terminal_id=PAN), NOW, KEY)
    with pytest.raises(SchemaError, match="'pan'"):
        label_from_obj(_obj(pan="12ab"), NOW, KEY)


def test_an_imported_label_matches_the_iso8583_token():
    lab = protect_label(FraudLabel("x", PAN, "t", NOW, NOW + 10), KEY)
    assert lab.card_id == iso.tokenize(PAN, KEY)
    with pytest.raises(SchemaError, match="'txn_id'"):
        protect_label(FraudLabel(PAN, "c", "t", NOW, NOW + 10), KEY)
