"""Wire contracts: round trips, JSON Schema agreement, and errors that name the field."""

from __future__ import annotations

import jsonschema
import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tocsin.contracts import Alert, AlertEvent, DeadLetter, ReadingsFrame, Severity
from tocsin.contracts._codec import json_schema
from tocsin.contracts.alerts import alert_id
from tocsin.errors import SchemaError

READINGS_SCHEMA = json_schema("readings.v1.json")
ALERT_SCHEMA = json_schema("alert.v1.json")
DL_SCHEMA = json_schema("deadletter.v2.json")

# ids are printable: control and formatting characters are refused (test_poison_units.py)
ids = st.text(st.characters(blacklist_categories=("Cc", "Cf", "Cs", "Zl", "Zp")), min_size=1,
              max_size=12)
sample = st.tuples(
    ids,
    st.integers(0, 2**62),
    st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False, width=64)),
    st.sampled_from([0, 1, 2]),
).map(lambda s: (s[0], s[1], s[2], 2 if s[2] is None else s[3]))


@settings(max_examples=200, deadline=None)
@given(ids, st.lists(sample, max_size=50), st.integers(0, 10**9))
def test_readings_round_trip_and_schema(asset, samples, seq):
    frame = ReadingsFrame.from_samples(asset, samples, source="opc.tcp://x", seq=seq)
    data = frame.encode()
    jsonschema.validate(orjson.loads(data), READINGS_SCHEMA)
    back = ReadingsFrame.decode(data)
    assert back.asset == asset and back.tags == frame.tags and back.seq == seq
    np.testing.assert_array_equal(back.ts, frame.ts)
    np.testing.assert_array_equal(back.values, frame.values)  # NaN == NaN here
    np.testing.assert_array_equal(back.quality, frame.quality)


def _frame(**over) -> bytes:
    base = {"schema": "tocsin.readings/1", "asset": "pump-1", "tag": ["flow", "temp"],
            "ts": [1, 2], "value": [1.5, 2.5], "quality": [0, 0]}
    base.update(over)
    return orjson.dumps({k: v for k, v in base.items() if v is not ...})


@pytest.mark.parametrize("data, words, schema_too", [
    (b"{not json", ["not valid JSON"], True),
    (b"[1,2]", ["JSON object"], True),
    (_frame(schema=...), ["'schema'"], True),
    (_frame(schema="tocsin.alert/1"), ["another message kind"], True),
    (_frame(schema="tocsin.readings/2"), ["newer", "upgrade"], True),
    (_frame(asset=...), ["missing field 'asset'"], True),
    (_frame(asset=""), ["'asset'", "empty"], True),
    (_frame(ts=[1]), ["differ in length"], False),
    (_frame(value=[1.5, "hot"]), ["value[1]", "'temp'", "pump-1"], True),
    (_frame(value=[None, 2.5]), ["value[0]", "'flow'", "quality"], False),
    (_frame(ts=[1, 2.5]), ["ts[1]", "integer"], True),
    (_frame(quality=[0, 7]), ["quality"], True),
    (_frame(tag=["flow", ""]), ["tag[1]"], True),
])
def test_readings_errors_name_the_field(data, words, schema_too):
    """schema_too: the JSON Schema rejects it as well (equal array lengths and "null only
    when bad" are cross-field rules a JSON Schema cannot state; the decoder enforces them)."""
    with pytest.raises(SchemaError) as exc:
        ReadingsFrame.decode(data)
    for w in words:
        assert w in str(exc.value)
    # and the published JSON Schema rejects the same documents
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError:
        return
    if not schema_too:
        jsonschema.validate(doc, READINGS_SCHEMA)
        return
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, READINGS_SCHEMA)


def test_alert_round_trip_schema_and_deterministic_id():
    aid = alert_id("pump-1", "threshold", "high", "bearing_temp", 123)
    assert aid == alert_id("pump-1", "threshold", "high", "bearing_temp", 123)
    assert aid != alert_id("pump-1", "threshold", "high", "bearing_temp", 124)
    a = Alert(aid, AlertEvent.RAISED, "pump-1", "threshold", "high", "bearing_temp",
              Severity.CRITICAL, 96.4, 90.0, 123, 123, 456, "hot", {"unit": "degC"})
    data = a.encode()
    jsonschema.validate(orjson.loads(data), ALERT_SCHEMA)
    assert Alert.decode(data) == a
    for example in ALERT_SCHEMA["examples"]:
        Alert.decode(orjson.dumps(example))
    with pytest.raises(SchemaError, match="event"):
        Alert.decode(data.replace(b'"raised"', b'"exploded"'))


def test_deadletter_keeps_payload_whole():
    payload = bytes(range(256))
    d = DeadLetter.wrap(source_topic="plant.readings", partition=1, offset=42, key=b"k",
                        payload=payload, error="bad", stage="decode", worker="w", ts=1)
    data = d.encode()
    jsonschema.validate(orjson.loads(data), DL_SCHEMA)
    back = DeadLetter.decode(data)
    assert back == d and back.raw_payload() == payload


_odd = st.one_of(st.none(), st.booleans(), st.integers(-2**64, 2**64), st.floats(
    allow_nan=False, allow_infinity=False), st.text(max_size=3), st.lists(st.integers(), max_size=2))


@settings(max_examples=400, deadline=None)
@given(st.integers(0, 3), st.dictionaries(st.sampled_from(
    ["schema", "asset", "tag", "ts", "value", "quality", "seq", "source"]), _odd, max_size=2),
    st.data())
def test_readings_fast_path_agrees_with_the_checked_decoder(n, patch, data):
    """msgspec's fast path accepts exactly what the field-by-field decoder accepts, with the
    same frame; what it refuses gets the checked decoder's message."""
    obj = {"schema": "tocsin.readings/1", "asset": "p", "seq": 3, "source": "s",
           "tag": [f"t{i}" for i in range(n)], "ts": list(range(n)),
           "value": [1.5] * n, "quality": [0] * n}
    for k, v in patch.items():
        if k in ("tag", "ts", "value", "quality") and n and data.draw(st.booleans()):
            obj[k] = list(obj[k])
            obj[k][data.draw(st.integers(0, n - 1))] = v  # one bad item
        else:
            obj[k] = v
    try:
        raw = orjson.dumps(obj)
    except TypeError:  # integers beyond 64 bits
        return
    try:
        want = ReadingsFrame.decode_checked(raw)
    except SchemaError as exc:
        with pytest.raises(SchemaError) as got:
            ReadingsFrame.decode(raw)
        assert str(got.value) == str(exc)
        return
    got = ReadingsFrame.decode(raw)
    assert (got.asset, got.tags, got.seq, got.source) == (want.asset, want.tags, want.seq,
                                                          want.source)
    for a, b in [(got.ts, want.ts), (got.values, want.values), (got.quality, want.quality)]:
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
