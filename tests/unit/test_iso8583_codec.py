"""ISO 8583 mapping: request -> Transaction, and malformed messages answered with a format
error that names the data element."""

from __future__ import annotations

import iso8583
import pytest

from tocsin.connectors import iso8583_codec as iso

KEY = b"test-key"
NOW = 1_767_225_600 * 10**9 + 3_600 * 10**9  # 2026-01-01T01:00Z


def _req(**kw):
    args = dict(pan="4000123412341234", amount_minor=4250, ts_ns=NOW - 10**9, stan=77,
                rrn="123456789012", terminal="TRM00042", merchant="MER000000000042",
                mcc=5411, pos_entry_mode="051", currency="978")
    args.update(kw)
    return iso.request(**args)


def test_request_maps_the_usual_elements():
    txn, doc = iso.decode(_req(), KEY, NOW)
    assert txn.amount == 42.5 and txn.currency == "978" and txn.mcc == 5411
    assert txn.terminal_id == "TRM00042" and txn.merchant_id == "MER000000000042"
    assert txn.pos_entry_mode == "051" and txn.ts == NOW - 10**9
    assert txn.txn_id == "TRM00042-123456789012-000077"
    assert txn.card_id == iso.tokenize("4000123412341234", KEY)
    assert "4000123412341234" not in txn.encode().decode()  # no PAN on Kafka
    assert txn.ingest_ts == NOW and txn.source == "iso8583"
    resp, _ = iso8583.decode(iso.response(doc, "00"), iso.SPEC)
    assert resp["t"] == "0210" and resp["39"] == "00" and resp["11"] == "000077"


def test_year_is_the_one_nearest_now():
    # a December 31st transmission received on January 1st is last year's
    ts = NOW - 2 * 3600 * 10**9
    txn, _ = iso.decode(_req(ts_ns=ts), KEY, NOW)
    assert txn.ts == ts


def _tamper(raw: bytes, field: str, value: str) -> bytes:
    doc, _ = iso8583.decode(raw, iso.SPEC)
    doc[field] = value
    out, _ = iso8583.encode(doc, iso.SPEC)
    return bytes(out)


@pytest.mark.parametrize("field, value, words", [
    ("4", "00000000ABCD", "DE4"), ("2", "12AB", "DE2"), ("7", "1399250000", "DE7"),
    ("18", "54x1", "DE18"), ("t", "0800", "message type"),
])
def test_malformed_elements_are_named(field, value, words):
    raw = _tamper(_req(), field, value)
    with pytest.raises(iso.IsoFieldError, match=words) as ei:
        iso.decode(raw, KEY, NOW)
    resp, _ = iso8583.decode(iso.response(iso.iso8583.decode(raw, iso.SPEC)[0], "30",
                                          ei.value.field), iso.SPEC)
    assert resp["39"] == "30"


def test_undecodable_bytes_name_the_element():
    raw = _req()[:30]  # cut inside the data elements
    with pytest.raises(iso.IsoFieldError) as ei:
        iso.decode(raw, KEY, NOW)
    assert ei.value.field and ei.value.field != "t"
    resp, _ = iso8583.decode(iso.response({"t": "0200"}, "30", ei.value.field), iso.SPEC)
    assert resp["39"] == "30" and resp["44"] == f"DE{ei.value.field}"
