"""Pure parts of replay: timestamp rebasing of readings frames, and the golden diff."""

from __future__ import annotations

import numpy as np
import orjson

from tocsin.connectors.replayer import _count_samples, _shift_readings
from tocsin.contracts import ReadingsFrame
from tocsin.streams.isolated import diff_alerts, shadow_report


def test_rebase_shifts_source_timestamps_of_frames_only():
    f = ReadingsFrame("p", ["a", "b"], np.array([10, 20]), np.array([1.0, 2.0]),
                      np.zeros(2, np.uint8))
    out, n = _shift_readings(f.encode(), 1000)
    assert n == 2
    assert ReadingsFrame.decode(out).ts.tolist() == [1010, 1020]
    other = orjson.dumps({"schema": "tocsin.alert/1", "ts": [1]})
    assert _shift_readings(other, 1000) == (other, 0)
    garbage = b'\x00"tocsin.readings/ not json'
    assert _shift_readings(garbage, 1000) == (garbage, 0)  # replayed as recorded


def test_count_samples():
    f = ReadingsFrame("p", ["a"] * 7, np.arange(7), np.zeros(7), np.zeros(7, np.uint8))
    assert _count_samples(f.encode()) == 7
    assert _count_samples(b"{}") == 0


def _a(alert_id, event, value=1.0, ts=1, tag="t", rule="high"):
    return {"alert_id": alert_id, "event": event, "asset": "p", "tag": tag, "rule": rule,
            "value": value, "source_ts": ts}


def test_diff_finds_missing_extra_and_changed():
    exp = [_a("x", "raised"), _a("x", "cleared", ts=5), _a("y", "raised")]
    act = [_a("x", "raised"), _a("x", "cleared", value=2.0, ts=5), _a("z", "raised")]
    d = diff_alerts(exp, act)
    assert [m["alert_id"] for m in d.missing] == ["y"]
    assert [m["alert_id"] for m in d.extra] == ["z"]
    assert [(a["value"], b["value"]) for a, b in d.changed] == [(1.0, 2.0)]
    assert diff_alerts(exp, list(reversed(exp))).same


def test_duplicates_count_as_extra():
    # a redelivered input must never produce a second copy of an event
    d = diff_alerts([_a("x", "raised")], [_a("x", "raised"), _a("x", "raised")])
    assert len(d.extra) == 1 and not d.missing and not d.changed


def test_shadow_report_counts_and_first_raise():
    a = [_a("1", "raised", ts=10), _a("2", "raised", ts=30)]
    b = [_a("3", "raised", ts=5)]
    assert shadow_report(a, b) == [("p", "t", "high", 2, 1, 10, 5)]
