"""Transaction.decode's msgspec fast path against the checked decoder: the same Transaction
for every record the checked decoder accepts, its exact error (and dead-letter reason) for
every record it refuses."""

from __future__ import annotations

import math

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tocsin.contracts.eventtime import NS, TimeGuard
from tocsin.contracts.payments import Transaction
from tocsin.errors import SchemaError
from tocsin.streams.deadletters import reason

NOW = 1_767_225_600 * NS
GUARD = TimeGuard()
FIELDS = ("schema", "txn_id", "ts", "card_id", "terminal_id", "amount", "currency",
          "merchant_id", "customer_id", "mcc", "pos_entry_mode", "ingest_ts", "source")
GOOD = {"schema": "tocsin.transaction/1", "txn_id": "T1", "ts": NOW - 10**9, "card_id": "tok_a",
        "terminal_id": "TRM1", "amount": 42.5, "currency": "978", "merchant_id": "MER1",
        "customer_id": "c-1", "mcc": 5411, "pos_entry_mode": "051", "ingest_ts": NOW,
        "source": "kafka"}


def same(raw: bytes | str, now: int = NOW, guard: TimeGuard = GUARD) -> Transaction | None:
    """Assert both decoders agree on ``raw``; the Transaction, or None if refused."""
    try:
        want = Transaction.decode_checked(raw, now, guard)
    except SchemaError as exc:
        with pytest.raises(SchemaError) as got:
            Transaction.decode(raw, now, guard)
        assert type(got.value) is type(exc) and str(got.value) == str(exc)
        assert reason(got.value) == reason(exc)
        return None
    got = Transaction.decode(raw, now, guard)
    assert got == want
    for f in FIELDS[1:]:  # types and the sign of -0.0, which == does not see
        assert repr(getattr(got, f)) == repr(getattr(want, f)), f
    return got


text = st.text(max_size=12) | st.text(st.characters(max_codepoint=0x7f), max_size=12) \
    | st.sampled_from(["", "é" * 8, "é" * 9, "\U0001f600" * 8, "\U0001f600" * 9, "a\x00",
                       "a\u202e", "\ufeff", "x" * 64, "x" * 65, "x" * 256, "x" * 257,
                       "x" * 1024, "x" * 1025])
number = st.integers(-2**64, 2**64) | st.floats(allow_nan=False, allow_infinity=False) \
    | st.sampled_from([0, -0.0, 1e9, 1e9 + 1e-7, 2**63 - 1, 2**63, -2**63, -2**63 - 1, 9999,
                       10000, NOW, NOW + 300 * NS, NOW + 300 * NS + 1, NOW // NS,
                       NOW // 10**6, NOW // 10**3, 946_684_800 * NS, 946_684_800 * NS - 1])
odd = st.none() | st.booleans() | number | text | st.lists(st.integers(), max_size=2) \
    | st.dictionaries(text, st.integers(), max_size=1)


@settings(max_examples=1500, deadline=None)
@given(st.dictionaries(st.sampled_from(FIELDS + ("extra", "pan")), odd, max_size=3),
       st.lists(st.sampled_from(FIELDS), max_size=2, unique=True))
def test_fast_path_agrees_with_the_checked_decoder(patch, missing):
    obj = {**GOOD, **patch}
    for k in missing:
        obj.pop(k, None)
    try:
        raw = orjson.dumps(obj)
    except TypeError:  # integers beyond 64 bits: no such JSON from orjson
        return
    same(raw)


@settings(max_examples=500, deadline=None)
@given(st.fixed_dictionaries({k: (st.just(GOOD["schema"]) if k == "schema" else
                                  st.integers(946_684_800 * NS, NOW) if k == "ts" else
                                  st.integers(0, 2**63 - 1) if k == "ingest_ts" else
                                  st.integers(0, 9999) if k == "mcc" else
                                  st.floats(0, 1e9) | st.integers(0, 10**9) if k == "amount"
                                  else text) for k in FIELDS}))
def test_good_records_over_every_field(obj):
    """Every field drawn from its whole valid range (and text near every length limit)."""
    same(orjson.dumps(obj))


def _raw(**kw) -> bytes:
    parts = [f'"{k}":{v}' for k, v in {**{k: orjson.dumps(v).decode() for k, v in GOOD.items()},
                                        **kw}.items()]
    return ("{" + ",".join(parts) + "}").encode()


@pytest.mark.parametrize("raw", [
    orjson.dumps(GOOD), orjson.dumps(GOOD).decode(),
    _raw(amount="NaN"), _raw(amount="Infinity"), _raw(amount="-Infinity"), _raw(amount="1e400"),
    _raw(amount="-1e-400"), _raw(amount="1e9"), _raw(amount="1000000000.0000001"),
    _raw(amount="-0.0"), _raw(amount="5"), _raw(amount="true"), _raw(amount='"5"'),
    _raw(ts="0"), _raw(ts="-1"), _raw(ts=str(NOW // NS)), _raw(ts=str(NOW // 10**6)),
    _raw(ts=str(NOW // 1000)), _raw(ts=str(NOW + 301 * NS)), _raw(ts=str(NOW + 300 * NS)),
    _raw(ts=str(NOW + 300 * NS + 1)), _raw(ts=str(946_684_800 * NS)),
    _raw(ts=str(946_684_800 * NS - 1)),
    _raw(ts=f"{float(NOW)}"), _raw(ts=str(2**63)), _raw(ts=str(2**64)), _raw(ts=str(2**70)),
    _raw(ts="1e18"), _raw(ts="null"), _raw(mcc="null"), _raw(mcc="1.0"), _raw(mcc="-1"),
    _raw(ingest_ts="-1"), _raw(ingest_ts="null"), _raw(currency="null"),
    _raw(card_id='"\\ud800"'), _raw(card_id='"\\ud83d\\ude00"'), _raw(card_id='"a\\u0000"'),
    _raw(card_id='"a\\u200b"'), _raw(source='"\\u0085"'), _raw(txn_id='""'),
    _raw(extra='"\\ud800"'), _raw(extra="[[[[1]]]]"), _raw(extra='"ok"'),
    _raw(schema='"tocsin.transaction/0"'), _raw(schema='"tocsin.transaction/2"'),
    _raw(schema='"tocsin.readings/1"'), _raw(schema='"tocsin.transaction/x"'), _raw(schema="1"),
    orjson.dumps(GOOD)[:-1] + b',"card_id":"tok_b"}', orjson.dumps(GOOD)[:-1] + b',"ts":true}',
    b"\xef\xbb\xbf" + orjson.dumps(GOOD), orjson.dumps(GOOD) + b"x", b" " + orjson.dumps(GOOD),
    orjson.dumps(GOOD).replace(b"tok_a", b"tok\xff"), b"[]", b"null", b"", b"{}", b"{",
])
def test_table_of_records(raw):
    same(raw)


def test_the_guard_and_clock_are_honoured():
    raw = orjson.dumps({**GOOD, "ts": NOW + 60 * NS})
    assert same(raw) is not None
    assert same(raw, guard=TimeGuard(max_future_s=30)) is None
    assert same(raw, now=NOW + 60 * NS - 300 * NS) is not None
    assert same(orjson.dumps({**GOOD, "ts": 1_500_000_000 * NS}), guard=TimeGuard(min_year=2020)) \
        is None
    assert math.isclose(Transaction.decode(orjson.dumps(GOOD)).amount, 42.5)  # wall clock


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255),
                          st.sampled_from(["set", "insert", "delete"])), min_size=1, max_size=3))
def test_byte_mutations(edits):
    """Flipped, inserted and deleted bytes: broken JSON, broken UTF-8, changed digits."""
    raw = bytearray(orjson.dumps(GOOD))
    for pos, byte, op in edits:
        i = pos % len(raw)
        if op == "set":
            raw[i] = byte
        elif op == "insert":
            raw.insert(i, byte)
        elif len(raw) > 1:
            del raw[i]
    same(bytes(raw))


@pytest.mark.parametrize("obj", [
    GOOD, {k: GOOD[k] for k in ("schema", "txn_id", "ts", "card_id", "terminal_id", "amount")},
    {**GOOD, "currency": None, "mcc": None, "ingest_ts": None, "source": None, "amount": 0},
    {**GOOD, "amount": -0.0, "card_id": "\U0001f600" * 256, "currency": "é" * 8},
])
def test_good_records_take_the_fast_path(obj, monkeypatch):
    """The comparisons above are not vacuous: these never reach the checked decoder."""
    want = Transaction.decode_checked(orjson.dumps(obj), NOW)

    def refuse(*a, **kw):
        raise AssertionError("took the checked path")

    monkeypatch.setattr(Transaction, "decode_checked", refuse)
    assert Transaction.decode(orjson.dumps(obj), NOW) == want
