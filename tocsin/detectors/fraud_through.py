"""Records of the through topic ``payments.by-terminal`` (card stage -> terminal stage).

Three kinds, keyed by terminal id: a transaction with its card-part features and sequence
tokens, a label (forwarded from ``payments.labels``), and an event-time watermark of one card
stage source (``t<partition>`` of the transactions, ``l<partition>`` of the labels). JSON
(orjson): floats round-trip exactly, so the terminal stage assembles bit for bit the row an
offline replay computes.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from tocsin.contracts.payments import FraudLabel, Transaction
from tocsin.errors import SchemaError

TXN, LABEL, MARK = "t", "l", "w"


@dataclass(slots=True)
class Through:
    kind: str
    source: str
    ts: int  # event time: the transaction's ts, the label's reported_ts, the watermark
    txn: Transaction | None = None
    card_row: list | None = None
    toks: list | None = None
    count: bool = True  # False: a redelivered txn_id (scored, not counted again)
    label: FraudLabel | None = None


def encode_txn(source: str, t: Transaction, card_row: list, toks: list, count: bool) -> bytes:
    return orjson.dumps({"k": TXN, "s": source, "x": [
        t.txn_id, t.ts, t.card_id, t.terminal_id, t.amount, t.currency, t.pos_entry_mode,
        t.ingest_ts], "c": card_row, "q": toks, "n": count})


def encode_label(source: str, lab: FraudLabel) -> bytes:
    return orjson.dumps({"k": LABEL, "s": source, "l": [
        lab.txn_id, lab.card_id, lab.terminal_id, lab.txn_ts, lab.reported_ts, lab.fraud]})


def encode_mark(source: str, ts: int) -> bytes:
    return orjson.dumps({"k": MARK, "s": source, "w": ts})


def decode(raw: bytes) -> Through:
    try:
        o = orjson.loads(raw)
        k, src = o["k"], o["s"]
        if k == TXN:
            i, ts, card, term, amount, cur, pem, ing = o["x"]
            t = Transaction(i, ts, card, term, amount, currency=cur, pos_entry_mode=pem,
                            ingest_ts=ing)
            return Through(TXN, src, ts, t, o["c"], o["q"], bool(o["n"]))
        if k == LABEL:
            i, card, term, tts, rep, fraud = o["l"]
            return Through(LABEL, src, rep, label=FraudLabel(i, card, term, tts, rep, fraud))
        if k == MARK:
            return Through(MARK, src, int(o["w"]))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise SchemaError(f"bad payments.by-terminal record: {exc}") from exc
    raise SchemaError(f"bad payments.by-terminal record kind {k!r}")
