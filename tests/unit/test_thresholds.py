"""The vectorised threshold detector against a plain per-sample reference, plus the cases an
operator cares about: hysteresis, bad quality, unknown tags, frame boundaries."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tocsin.detectors.thresholds import RULES, TagLimits, ThresholdDetector

LIMITS = {
    "temp": TagLimits(high=90.0, low=10.0, rate=5.0, deadband=2.0, severity="critical"),
    "flow": TagLimits(low=50.0, deadband=5.0),
    "vib": TagLimits(high=7.0),
}


def reference(limits, samples):
    """Per-sample loop, written for clarity: samples are (tag, ts, value, quality) in order."""
    active = {}
    opened = {}
    last = {}
    out = []
    for tag, ts, v, q in sorted(samples, key=lambda s: (s[1],)):
        lim = limits.get(tag)
        if lim is None or q == 2 or v != v:
            continue
        rate = None
        if tag in last and ts > last[tag][0]:
            rate = abs(v - last[tag][1]) / ((ts - last[tag][0]) / 1e9)
        last[tag] = (ts, v)
        checks = {
            "high": (lim.high, lim.high is not None and v > lim.high,
                     lim.high is not None and v < lim.high - lim.deadband, v),
            "low": (lim.low, lim.low is not None and v < lim.low,
                    lim.low is not None and v > lim.low + lim.deadband, v),
            "rate": (lim.rate, rate is not None and lim.rate is not None and rate > lim.rate,
                     rate is not None and lim.rate is not None
                     and rate <= lim.rate * (1 - lim.rate_clear_fraction), rate),
        }
        for rule in RULES:
            limit, set_, reset, shown = checks[rule]
            was = active.get((tag, rule), False)
            if not was and set_:
                active[(tag, rule)] = True
                opened[(tag, rule)] = ts
                out.append((tag, rule, True, ts, ts))
            elif was and reset and not set_:
                active[(tag, rule)] = False
                out.append((tag, rule, False, ts, opened[(tag, rule)]))
    return sorted(out, key=lambda t: (t[3], t[0], t[1]))


def run(det, samples, cuts):
    """Feed `samples` (time-ordered) to the detector split into frames at `cuts`."""
    out = []
    bounds = [0, *sorted(set(cuts)), len(samples)]
    for a, b in zip(bounds, bounds[1:]):
        chunk = samples[a:b]
        if not chunk:
            continue
        tags = [s[0] for s in chunk]
        ts = np.array([s[1] for s in chunk], dtype=np.int64)
        vals = np.array([s[2] for s in chunk], dtype=np.float64)
        q = np.array([s[3] for s in chunk], dtype=np.uint8)
        out += [(t.tag, t.rule, t.raised, t.ts, t.opened_ts) for t in det.update(tags, ts, vals, q)]
    return sorted(out, key=lambda t: (t[3], t[0], t[1]))


sample_st = st.tuples(
    st.sampled_from(["temp", "flow", "vib", "other"]),
    st.floats(min_value=-20, max_value=130, allow_nan=False),
    st.sampled_from([0, 0, 0, 1, 2]),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(sample_st, min_size=1, max_size=80), st.lists(st.integers(0, 80), max_size=6))
def test_matches_reference_for_any_framing(raw, cuts):
    # one sample per 100 ms, strictly increasing source time
    samples = [(tag, 1_000_000_000 + i * 100_000_000, v, q) for i, (tag, v, q) in enumerate(raw)]
    got = run(ThresholdDetector(LIMITS), samples, cuts)
    assert got == reference(LIMITS, samples)


def test_hysteresis_one_alarm_for_noise_around_the_limit():
    det = ThresholdDetector({"temp": TagLimits(high=90.0, deadband=2.0)})
    vals = [85, 91, 89.5, 90.5, 89, 91, 88.9, 85]  # hovers in the deadband, then drops
    ts = np.arange(len(vals), dtype=np.int64) * 10**9
    out = det.update(["temp"] * len(vals), ts, np.array(vals, float), np.zeros(len(vals), np.uint8))
    assert [t.raised for t in out] == [True, False]
    assert out[0].value == 91.0 and out[1].value == 85.0
    assert out[1].opened_ts == out[0].ts == 10**9


def test_bad_quality_and_nan_neither_raise_nor_clear():
    det = ThresholdDetector({"temp": TagLimits(high=90.0)})
    ts = np.array([1, 2, 3, 4], dtype=np.int64) * 10**9
    vals = np.array([95.0, 20.0, np.nan, 20.0])
    q = np.array([0, 2, 2, 0], dtype=np.uint8)
    out = det.update(["temp"] * 4, ts, vals, q)
    assert [(t.raised, t.ts) for t in out] == [(True, 10**9), (False, 4 * 10**9)]


def test_rate_uses_previous_frame_and_unknown_tags_are_counted():
    det = ThresholdDetector({"temp": TagLimits(rate=5.0)})
    one = np.zeros(1, np.uint8)
    assert det.update(["temp"], np.array([0]), np.array([50.0]), one) == []
    out = det.update(["temp", "x"], np.array([10**9, 10**9]), np.array([60.0, 1.0]),
                     np.zeros(2, np.uint8))
    assert [(t.rule, t.raised, t.value) for t in out] == [("rate", True, 10.0)]
    assert det.unknown_tags == 1


def test_samples_out_of_order_inside_a_frame_are_evaluated_in_source_time():
    det = ThresholdDetector({"temp": TagLimits(high=90.0)})
    ts = np.array([3, 1, 2], dtype=np.int64) * 10**9
    out = det.update(["temp"] * 3, ts, np.array([50.0, 95.0, 60.0]), np.zeros(3, np.uint8))
    assert [(t.raised, t.ts) for t in out] == [(True, 10**9), (False, 2 * 10**9)]
