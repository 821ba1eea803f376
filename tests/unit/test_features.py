"""Window features: the vectorised definitions against plain per-sample Python, and the
event-time window engine against a brute-force reference over arbitrary frame splits."""

from __future__ import annotations

import cmath
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tocsin.detectors import features as F
from tocsin.detectors.windows import NS, FeatureSpec, ScaleSpec, WindowEngine

NAMES = F.feature_names([1, 3, 5])


def reference(xs: list[float], ts: list[float], name: str, fft_bins: int = 4) -> float:
    """One feature of one window, the textbook way, one sample at a time."""
    n = len(xs)
    m = sum(xs) / n
    m2 = sum((x - m) ** 2 for x in xs) / n
    flat = m2 <= 1e-12 * max(1.0, m * m)
    if name == "mean":
        return m
    if name == "std":
        return math.sqrt(m2)
    if name == "min":
        return min(xs)
    if name == "max":
        return max(xs)
    rms = math.sqrt(sum(x * x for x in xs) / n)
    if name == "rms":
        return rms
    if name == "p2p":
        return max(xs) - min(xs)
    if name == "crest":
        return max(abs(x) for x in xs) / rms if rms > 0 else 0.0
    if name == "skew":
        return 0.0 if flat else (sum((x - m) ** 3 for x in xs) / n) / m2 ** 1.5
    if name == "kurt":
        return 0.0 if flat else (sum((x - m) ** 4 for x in xs) / n) / m2 ** 2 - 3
    if name == "slope":
        tm = sum(ts) / n
        vt = sum((t - tm) ** 2 for t in ts)
        return sum((t - tm) * (x - m) for t, x in zip(ts, xs)) / vt if vt > 0 else 0.0

    def bin_amp(j: int) -> float:
        s = sum((x - m) * cmath.exp(-2j * math.pi * j * i / n) for i, x in enumerate(xs))
        return 2 * abs(s) / n

    if name == "fft_mean":
        k = min(fft_bins, n // 2)
        return sum(bin_amp(j) for j in range(1, k + 1)) / k if k >= 1 else 0.0
    if name == "dom_freq":
        if n < 3 or flat:
            return 0.0
        span = ts[-1] - ts[0]
        fs = (n - 1) / span if span > 0 else 0.0
        amps = [bin_amp(j) for j in range(1, n // 2 + 1)]
        return (amps.index(max(amps)) + 1) * fs / n
    if name.startswith("acf_"):
        lag = int(name[4:])
        if lag >= n or flat:
            return 0.0
        return sum((xs[i] - m) * (xs[i + lag] - m) for i in range(n - lag)) / (m2 * n)
    raise AssertionError(name)


windows = st.integers(1, 40).flatmap(lambda n: st.tuples(
    st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=n, max_size=n),
    st.lists(st.integers(1, 10_000_000), min_size=n, max_size=n)))


@settings(max_examples=200, deadline=None)
@given(st.lists(windows, min_size=1, max_size=4))
def test_definitions_match_reference(batch):
    n = len(batch[0][0])
    batch = [(xs[:n] + [0.0] * (n - len(xs)), gaps[:n] + [1] * (n - len(gaps)))
             for xs, gaps in batch]
    x = np.array([b[0] for b in batch])
    t = np.array([np.cumsum(b[1]) / 1e6 for b in batch])  # strictly increasing seconds
    got = F.compute(x, t, NAMES)
    for r, (xs, _) in enumerate(batch):
        for j, name in enumerate(NAMES):
            want = reference(xs, t[r].tolist(), name)
            if name == "dom_freq":
                # ties between equal bins may pick either: check it is a top bin's frequency
                if _top_bins_tie(xs):
                    continue
            assert got[r, j] == pytest.approx(want, rel=1e-6, abs=1e-6), (name, xs)


def test_known_sine():
    fs, f0, amp = 100.0, 5.0, 2.0
    t = np.arange(200) / fs
    x = 3.0 + amp * np.sin(2 * np.pi * f0 * t)
    got = dict(zip(NAMES, F.compute(x[None], t[None], NAMES, fft_bins=10)[0]))
    assert got["mean"] == pytest.approx(3.0)
    assert got["std"] == pytest.approx(amp / math.sqrt(2))
    assert got["dom_freq"] == pytest.approx(f0)
    assert got["fft_mean"] == pytest.approx(amp / 10, rel=1e-6)  # all energy in bin 10 of 10
    assert got["kurt"] == pytest.approx(-1.5, abs=1e-6)


def test_constant_window_is_finite():
    got = F.compute(np.full((1, 8), 4.0), np.arange(8.0)[None], NAMES)
    assert np.isfinite(got).all()
    assert dict(zip(NAMES, got[0]))["std"] == 0.0


# ------------------------------------------------------------------ the window engine
SPEC = FeatureSpec(scales=[ScaleSpec(name="1s", size_s=1), ScaleSpec(name="3s", size_s=3, hop_s=1),
                           ScaleSpec(name="4s", size_s=4, hop_s=2)],
                   acf_lags=[2], allowed_lateness_s=0.5)
T0 = 1_750_000_000 * NS


def _top_bins_tie(xs) -> bool:
    amps = np.abs(np.fft.rfft(np.array(xs) - np.mean(xs)))[1:]
    return bool(amps.size and np.isclose(amps, amps.max(), rtol=1e-9).sum() > 1)


def brute_force(samples, spec: FeatureSpec, tags):
    """Every window that holds data, from all samples at once."""
    out = {}
    all_ts = [s[1] for s in samples]
    lo, hi = min(all_ts), max(all_ts)
    for sc in spec.scales:
        b = (lo // sc.hop_ns + 1) * sc.hop_ns
        while b - sc.size_ns <= hi:
            for _ti, tag in enumerate(tags):
                win = sorted(((t, v) for g, t, v in samples if g == tag and b - sc.size_ns <= t < b),
                             key=lambda p: p[0])  # ties keep arrival order
                if win:
                    ts = [(t - win[0][0]) / NS for t, _ in win]
                    xs = [v for _, v in win]
                    vals = [reference(xs, ts, n) for n in spec.names]
                    if "dom_freq" in spec.names and _top_bins_tie(xs):
                        # equal top bins: either frequency is right (as in the test above)
                        vals[spec.names.index("dom_freq")] = float("nan")
                    out[(b, sc.name, tag)] = vals
            b += sc.hop_ns
    return out


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a", "b"]), st.integers(0, 12 * NS),
                          st.floats(-100, 100, allow_nan=False)), min_size=1, max_size=80),
       st.lists(st.integers(1, 20), min_size=1, max_size=10))
def test_engine_matches_brute_force_for_any_frame_split(raw, cuts):
    samples = sorted(((g, T0 + t, v) for g, t, v in raw), key=lambda s: s[1])
    eng = WindowEngine(SPEC, {"pump": ["a", "b"]})
    rows, i, c = [], 0, 0
    while i < len(samples):
        part = samples[i:i + cuts[c % len(cuts)]]
        i += len(part)
        c += 1
        eng.add("pump", [p[0] for p in part], np.array([p[1] for p in part]),
                np.array([p[2] for p in part]))
        rows += eng.close_ready()
    rows += eng.close_ready(flush=True)
    got = {}
    sizes = {s.name: s.size_ns for s in SPEC.scales}
    longest = max(sizes.values())
    # a stream starts at the first sample and after every silence longer than the longest window
    starts = [t for i, (_, t, _) in enumerate(samples)
              if i == 0 or t - samples[i - 1][1] > longest]

    def begun(end):
        return max(t for t in starts if t < end)

    for r in rows:
        for name, mat in r.scales.items():
            for ti, tag in enumerate(r.tags):
                if r.counts[name][ti]:
                    got[(r.end, name, tag)] = mat[ti]
                    # partial windows (begun before their stream) carry no features
                    assert np.isnan(mat[ti]).all() == (r.end - sizes[name] < begun(r.end))
    want = brute_force(samples, SPEC, ["a", "b"])
    # flush closes every base window; larger windows ending after the last sample stay open
    last_base = max(k[0] for k in want if k[1] == "1s")
    want = {k: v for k, v in want.items() if k[0] <= last_base}
    assert set(got) == set(want)
    for k in want:
        if k[0] - sizes[k[1]] >= begun(k[0]):
            known = ~np.isnan(np.asarray(want[k], dtype=float))
            assert np.allclose(np.asarray(got[k])[known], np.asarray(want[k])[known],
                               rtol=1e-6, atol=1e-6), k
    assert eng.stats("pump")["late"] == 0


def test_late_samples_are_counted_and_never_change_a_closed_window():
    eng = WindowEngine(SPEC, {"pump": ["a"]})
    ts = T0 + np.arange(0, 5 * NS, NS // 10)
    eng.add("pump", ["a"] * ts.size, ts, np.ones(ts.size))
    # (T0 is on a boundary, so the 1 s windows are complete from the first one on)
    first = eng.close_ready()
    closed = max(r.end for r in first)
    assert closed == T0 + 4 * NS  # watermark 4.9 - 0.5 s lateness
    eng.add("pump", ["a", "a"], np.array([T0 + NS // 2, closed + 1]), np.array([99.0, 2.0]))
    assert eng.stats("pump")["late"] == 1
    rows = eng.close_ready(flush=True)
    assert all(r.end > closed for r in rows)
    one_s = [r for r in rows if r.end == closed + NS][0]
    assert one_s.counts["1s"][0] == 11 and one_s.scales["1s"][0][NAMES.index("max")] == 2.0


def test_bad_quality_and_unknown_tags_are_counted():
    eng = WindowEngine(SPEC, {"pump": ["a"]})
    eng.add("pump", ["a", "a", "zz"], np.array([T0, T0 + 1, T0 + 2]),
            np.array([1.0, np.nan, 3.0]), np.array([0, 2, 0], dtype=np.uint8))
    assert eng.stats("pump") == {"late": 0, "bad": 1, "unknown_tags": 1}


def test_a_gap_closes_only_windows_with_data():
    eng = WindowEngine(SPEC, {"pump": ["a"]})
    eng.add("pump", ["a"], np.array([T0]), np.array([1.0]))
    eng.add("pump", ["a"], np.array([T0 + 86_400 * NS]), np.array([1.0]))
    rows = eng.close_ready()
    assert rows and all(r.end <= T0 + 5 * NS for r in rows)


def test_spec_errors_name_the_field():
    with pytest.raises(ValueError, match="unknown features"):
        FeatureSpec(features=["mean", "median"])
    with pytest.raises(ValueError, match="scales.b: hop"):
        FeatureSpec(scales=[ScaleSpec(name="a", size_s=1, hop_s=1),
                            ScaleSpec(name="b", size_s=3, hop_s=1.5)])
