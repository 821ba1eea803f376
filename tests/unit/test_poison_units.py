"""The pure pieces of the poison rule (issue 14): dead letters that fit, event-time guards,
strict ids and numbers, capped keys, throttled reports, the strict YAML reader."""

from __future__ import annotations

import base64
import hashlib
import logging
import re

import jsonschema
import numpy as np
import orjson
import pytest

from tocsin.contracts import eventtime
from tocsin.contracts._codec import json_schema
from tocsin.contracts.deadletter import PAYLOAD_LIMIT, DeadLetter, Origin, envelope
from tocsin.contracts.readings import ReadingsFrame
from tocsin.contracts.strict import check_id, check_int, check_number
from tocsin.detectors.bounds import KeyCap, Throttled
from tocsin.detectors.intake import ReadingsIntake
from tocsin.errors import SchemaError

NS = 1_000_000_000
NOW = 1_764_000_000 * NS  # 2025-11-24


# ---------------------------------------------------------------- dead letters
def test_a_2mb_payload_becomes_a_dead_letter_that_fits_and_names_its_origin():
    payload = bytes(range(256)) * 8192  # 2 MiB
    dl = envelope(payload, "not valid JSON", Origin("plant.readings", 3, 1234, 5 * NS, b"k"),
                  stage="decode", worker="w", ts=7)
    data = dl.encode()
    assert len(data) < 100_000  # far below Kafka's 1 MB whatever came in
    jsonschema.validate(orjson.loads(data), json_schema("deadletter.v2.json"))
    back = DeadLetter.decode(data)
    assert back == dl and back.truncated and back.length == len(payload)
    assert back.raw_payload() == payload[:PAYLOAD_LIMIT]
    assert back.sha256 == hashlib.sha256(payload).hexdigest()
    assert (back.source_topic, back.partition, back.offset, back.origin_ts) == \
        ("plant.readings", 3, 1234, 5 * NS)
    assert base64.b64decode(back.key) == b"k"


def test_small_payload_is_kept_whole_and_long_reasons_are_cut():
    dl = envelope(b"abc", "x" * 10_000, Origin("ingest.http"), stage="decode", worker="w",
                  ts=1, limit=16)
    assert not dl.truncated and dl.raw_payload() == b"abc" and dl.length == 3
    assert len(dl.error) < 4100 and dl.error.endswith("(10000 characters)")
    with pytest.raises(ValueError):
        envelope(b"", "r", Origin("t"), stage="decode", worker="w", ts=1, limit=2 << 20)


def test_version_1_dead_letters_still_decode():
    v1 = {"schema": "tocsin.deadletter/1", "source_topic": "t", "partition": 0, "offset": 1,
          "key": None, "payload": base64.b64encode(b"hello").decode(), "error": "e",
          "stage": "decode", "worker": "w", "ts": 1}
    back = DeadLetter.decode(orjson.dumps(v1))
    assert back.length == 5 and not back.truncated and back.raw_payload() == b"hello"


# ---------------------------------------------------------------- event time
def test_event_time_guard_names_each_kind_of_implausible_time():
    ts = np.array([NOW, NOW + 299 * NS, NOW + 301 * NS, 1532476829, 1532476829000,
                   1532476829000000, 5, NOW + 365 * 86400 * NS], dtype=np.int64)
    codes = eventtime.classify(ts, NOW)
    assert [eventtime.REASONS[c] for c in codes] == [
        "ok", "ok", "future", "seconds_not_ns", "millis_not_ns", "micros_not_ns",
        "before_min_year", "future"]
    assert eventtime.check_one(NOW, NOW) is None
    assert eventtime.check_one(2**63 - 1, NOW) == "future"
    tight = eventtime.TimeGuard(max_future_s=1.0, min_year=2020)
    assert eventtime.check_one(NOW + 2 * NS, NOW, tight) == "future"
    assert eventtime.check_one(1_500_000_000 * NS, NOW, tight) == "before_min_year"


def test_intake_drops_only_the_implausible_samples_and_says_why():
    f = ReadingsFrame.from_samples("pump-1", [("a", NOW, 1.0, 0), ("b", NOW + 3600 * NS, 2.0, 0),
                                              ("c", 1532476829, 3.0, 0)])
    got = ReadingsIntake().check(f, NOW)
    assert got.frame.tags == ["a"] and got.refused == 2
    assert "1 future" in got.reason and "1 seconds_not_ns" in got.reason
    assert "'b'" in got.reason  # the first refused sample is named
    clean = ReadingsIntake().check(ReadingsFrame.from_samples("p", [("a", NOW, 1.0, 0)]), NOW)
    assert clean.refused == 0 and clean.reason == ""


# ---------------------------------------------------------------- strict fields
@pytest.mark.parametrize("value, words", [
    ("", "must not be empty"), ("a\x00b", "U+0000"), ("card\u202e1", "U+202E"),
    ("x" * 257, "at most 256"), (7, "must be a string"), (True, "must be a string")])
def test_ids_are_refused_with_the_field_named(value, words):
    with pytest.raises(SchemaError, match=f"'card_id'.*{re.escape(words)}"):
        check_id(value, "card_id", "tocsin.transaction")


@pytest.mark.parametrize("value", [True, 1e30, 1.0, "1", None, 2**64])
def test_integers_are_strict(value):
    with pytest.raises(SchemaError, match="'seq'"):
        check_int(value, "seq", "tocsin.readings", lo=0)


@pytest.mark.parametrize("value", [True, float("nan"), float("inf"), "1", None, 10**400])
def test_numbers_are_finite_and_not_booleans(value):
    with pytest.raises(SchemaError, match="'amount'"):
        check_number(value, "amount", "tocsin.transaction")
    assert check_number(3, "amount", "x") == 3.0


@pytest.mark.parametrize("patch, field", [
    ({"value": [True, 1.0]}, "value[0]"), ({"ts": [NOW, True]}, "ts[1]"),
    ({"seq": 1e30}, "seq"), ({"seq": True}, "seq"), ({"asset": "p\x00"}, "asset"),
    ({"tag": ["a", "b\u202e"]}, "tag[1]"), ({"ts": [[1, 2], [3]]}, "ts[0]"),
    ({"value": [[1.0], 2.0]}, "value[0]"), ({"quality": [True, 0]}, "quality[0]"),
    ({"source": 5}, "source")])
def test_readings_refuse_hostile_values_with_the_field_named(patch, field):
    obj = {"schema": "tocsin.readings/1", "asset": "p", "seq": 1, "source": "s",
           "tag": ["a", "b"], "ts": [NOW, NOW], "value": [1.0, 2.0], "quality": [0, 0]}
    obj.update(patch)
    with pytest.raises(SchemaError, match=re.escape(f"'{field}'")):
        ReadingsFrame.decode(orjson.dumps(obj))


# ---------------------------------------------------------------- bounds
def test_keycap_admits_the_first_keys_and_counts_the_rest():
    cap = KeyCap(2)
    assert [cap.admit(k) for k in "aabcb"] == [True, True, True, False, True]
    assert cap.refused == 1 and len(cap) == 2


def test_throttled_logs_one_line_per_reason_and_interval(caplog):
    now = [0.0]
    t = Throttled(logging.getLogger("t"), "unknown assets", 60.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, "t"):
        for i in range(30_000):
            t.note("unconfigured_asset", example=f"asset-{i}")
        now[0] = 61.0
        t.note("unconfigured_asset")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert "1 unconfigured_asset" in lines[0] and "asset-0" in lines[0]
    assert "30000 unconfigured_asset (total 30001)" in lines[1] and "asset-1" in lines[1]
    assert t.total == {"unconfigured_asset": 30_001}
