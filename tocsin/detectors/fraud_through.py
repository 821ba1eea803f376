"""Records of the through topic ``payments.by-terminal`` (card stage -> terminal stage).

Three kinds, keyed by terminal id: a transaction with its card-part features and sequence
tokens, a label (forwarded from ``payments.labels``), and an event-time watermark of one card
stage source (``t<partition>`` of the transactions, ``l<partition>`` of the labels).

Wire format: MessagePack arrays via ``msgspec`` structs (``array_like``, the kind as the first
element), because decoding these records was 9 % of the terminal stage's time as orjson
objects. The card features and the sequence tokens travel as float32 bytes: they only ever go
into the model's float32 inputs, and a float64 -> float32 cast here is the same cast the offline
feature matrix makes, so the terminal stage assembles bit for bit the row an offline replay
computes (and the terminal stage copies them into its batch arrays without a Python float each). Records written by older versions (JSON objects, first byte ``{``,
possibly still held as ``B:`` keys in a terminal stage's changelog) are still read.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from itertools import chain

import msgspec
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
    card_row: bytes = b""  # float32 card features
    toks: bytes = b""  # float32 sequence tokens, oldest first (k x TOKEN_DIM)
    count: bool = True  # False: a redelivered txn_id (scored, not counted again)
    label: FraudLabel | None = None
    raw: bytes = b""  # the record as it was read (persisted as is while held)


class _Txn(msgspec.Struct, array_like=True, tag=TXN):
    source: str
    txn_id: str
    ts: int
    card_id: str
    terminal_id: str
    amount: int | float
    currency: str
    pos_entry_mode: str
    ingest_ts: int
    card_row: bytes
    toks: bytes
    count: bool


class _Label(msgspec.Struct, array_like=True, tag=LABEL):
    source: str
    txn_id: str
    card_id: str
    terminal_id: str
    txn_ts: int
    reported_ts: int
    fraud: bool


class _Mark(msgspec.Struct, array_like=True, tag=MARK):
    source: str
    ts: int


_enc = msgspec.msgpack.Encoder().encode
_dec = msgspec.msgpack.Decoder(_Txn | _Label | _Mark).decode


def f32(values: list) -> bytes:
    """Python floats as float32 bytes (the C cast numpy's float32 arrays make)."""
    return struct.pack(f"<{len(values)}f", *values)


def tokens_f32(toks: list) -> bytes:
    """Sequence tokens (lists of TOKEN_DIM floats, oldest first) as float32 bytes."""
    return f32(list(chain.from_iterable(toks)))


def encode_txn(source: str, t: Transaction, card_row: list, toks: bytes, count: bool) -> bytes:
    """``toks``: the tokens as :func:`tokens_f32` bytes (the card stage keeps them per card
    and appends one token per transaction instead of converting 16 each time)."""
    return _enc(_Txn(source, t.txn_id, t.ts, t.card_id, t.terminal_id, t.amount, t.currency,
                     t.pos_entry_mode, t.ingest_ts, f32(card_row), toks, count))


def encode_label(source: str, lab: FraudLabel) -> bytes:
    return _enc(_Label(source, lab.txn_id, lab.card_id, lab.terminal_id, lab.txn_ts,
                       lab.reported_ts, lab.fraud))


def encode_mark(source: str, ts: int) -> bytes:
    return _enc(_Mark(source, ts))


def decode(raw: bytes) -> Through:
    if raw[:1] == b"{":
        return _decode_json(raw)
    try:
        o = _dec(raw)
    except msgspec.MsgspecError as exc:
        raise SchemaError(f"bad payments.by-terminal record: {exc}") from exc
    if type(o) is _Txn:
        t = Transaction(o.txn_id, o.ts, o.card_id, o.terminal_id, o.amount,
                        currency=o.currency, pos_entry_mode=o.pos_entry_mode,
                        ingest_ts=o.ingest_ts)
        return Through(TXN, o.source, o.ts, t, o.card_row, o.toks, o.count, raw=raw)
    if type(o) is _Label:
        return Through(LABEL, o.source, o.reported_ts, label=FraudLabel(
            o.txn_id, o.card_id, o.terminal_id, o.txn_ts, o.reported_ts, o.fraud))
    return Through(MARK, o.source, o.ts)


def _decode_json(raw: bytes) -> Through:
    """The format before msgspec (JSON objects)."""
    try:
        o = orjson.loads(raw)
        k, src = o["k"], o["s"]
        if k == TXN:
            i, ts, card, term, amount, cur, pem, ing = o["x"]
            t = Transaction(i, ts, card, term, amount, currency=cur, pos_entry_mode=pem,
                            ingest_ts=ing)
            q = tokens_f32(o["q"])
            return Through(TXN, src, ts, t, f32(o["c"]), q, bool(o["n"]),
                           raw=encode_txn(src, t, o["c"], q, bool(o["n"])))
        if k == LABEL:
            i, card, term, tts, rep, fraud = o["l"]
            return Through(LABEL, src, rep, label=FraudLabel(i, card, term, tts, rep, fraud))
        if k == MARK:
            return Through(MARK, src, int(o["w"]))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise SchemaError(f"bad payments.by-terminal record: {exc}") from exc
    raise SchemaError(f"bad payments.by-terminal record kind {k!r}")
