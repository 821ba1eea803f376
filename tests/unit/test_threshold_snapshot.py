"""Threshold state survives a restart: snapshot after any frame, restore into a fresh
detector, and the rest of the stream gives exactly the transitions (same opened_ts, so the
same alert ids) of an uninterrupted run; a changed tag set keeps the tags it still has."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tocsin.contracts.readings import ReadingsFrame
from tocsin.detectors.threshold_alerts import ThresholdAlerter
from tocsin.detectors.thresholds import TagLimits, ThresholdDetector, restore, snapshot

LIMITS = {
    "temp": TagLimits(high=90.0, low=10.0, rate=5.0, deadband=2.0, severity="critical"),
    "flow": TagLimits(low=50.0, deadband=5.0),
}


def frames(values: list[float], per: int = 4):
    tags = ["temp", "flow"] * per
    out = []
    for k in range(0, len(values) - per * 2 + 1, per * 2):
        v = np.array(values[k:k + per * 2])
        ts = (np.arange(k, k + per * 2) // 2 + 1).astype(np.int64) * 1_000_000_000
        out.append((tags, ts, v, np.zeros(v.size, dtype=np.int8)))
    return out


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0, 120, allow_nan=False), min_size=16, max_size=80),
       st.integers(0, 10))
def test_restored_detector_continues_like_an_uninterrupted_one(values, cut):
    fs = frames(values)
    whole = ThresholdDetector(LIMITS)
    expected = [t for f in fs for t in whole.update(*f)]
    first = ThresholdDetector(LIMITS)
    got = [t for f in fs[:cut] for t in first.update(*f)]
    again = ThresholdDetector(LIMITS)
    restore(again, snapshot(first))
    got += [t for f in fs[cut:] for t in again.update(*f)]
    assert got == expected


def test_restore_keeps_only_tags_still_configured():
    det = ThresholdDetector(LIMITS)
    det.update(["temp", "flow"], np.array([1, 1]) * 10**9, np.array([95.0, 20.0]),
               np.zeros(2, dtype=np.int8))
    assert det.active.any()
    other = ThresholdDetector({"temp": LIMITS["temp"], "new": TagLimits(high=1.0)})
    restore(other, snapshot(det))
    t = other.index["temp"]
    assert other.active[0, t] and other.opened[0, t] == 10**9 and other.last_value[t] == 95.0
    assert not other.active[:, other.index["new"]].any()


def test_alerter_snapshot_by_asset_keeps_the_alert_id_of_an_open_alarm():
    a = ThresholdAlerter({"pump": LIMITS})
    raised = a.process(ReadingsFrame("pump", ["temp"], np.array([5 * 10**9]),
                                     np.array([95.0]), np.zeros(1, dtype=np.int8)), 0)
    assert [x.event.value for x in raised] == ["raised"] and a.take_touched() == {"pump"}
    b = ThresholdAlerter({"pump": LIMITS})
    assert b.restore("pump", a.snapshot("pump")) and not b.restore("nope", b"{}")
    cleared = b.process(ReadingsFrame("pump", ["temp"], np.array([20 * 10**9]),
                                      np.array([87.0]), np.zeros(1, dtype=np.int8)), 0)
    assert [x.event.value for x in cleared] == ["cleared"]
    assert cleared[0].alert_id == raised[0].alert_id
