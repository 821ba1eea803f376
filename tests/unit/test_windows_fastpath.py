"""The window engine's per-frame fast paths (cached tag indices, the min/max late and silence
checks, the block-wise row assembly, the buffer kept sorted) give exactly the rows of the
engine before them (tests/windows_reference.py), on randomized multi-asset input with every
unusual case mixed in: unconfigured assets and tags, the tag and asset bounds, NaN and bad
quality, late and reordered frames, duplicate timestamps, silences, changing tag lists."""

from __future__ import annotations

import numpy as np
import pytest

from tests.windows_reference import WindowEngine as Reference
from tocsin.detectors.windows import NS, FeatureSpec, WindowEngine

T0 = 1_760_000_000 * NS + 987_654_321
CONFIGURED = {"p1": ["a", "b", "c"], "p2": ["a", "b"]}


def frames(seed: int, seconds: int = 240):
    rng = np.random.default_rng(seed)
    assets = ["p1", "p2", "u1", "u2", "u3", "u4"]  # u*: not configured (tags learned)
    silent = {"p2": (60, 140), "u1": (100, 110)}  # longer than the longest window, and not
    out = []
    for k in range(seconds * 2):
        for a in assets:
            lo, hi = silent.get(a, (-1, -1))
            if lo <= k / 2 < hi or rng.random() < 0.05:
                continue
            if a.startswith("p"):
                tags = CONFIGURED[a] + (["zz"] if rng.random() < 0.05 else [])  # unknown tag
            else:
                tags = ["a", "b"] if rng.random() < 0.7 else ["a", "b", f"t{rng.integers(8)}"]
            n = int(rng.integers(1, 6))
            t = T0 + k * NS // 2 + np.sort(rng.integers(0, NS // 2, n))
            if rng.random() < 0.1:
                t[-1] = t[0]  # a duplicate timestamp
            ts = np.repeat(t, len(tags))
            names = tags * n
            vals = np.sin(ts / 7e9) * (1 + len(a)) + rng.normal(0, 0.2, ts.size)
            vals[rng.random(ts.size) < 0.03] = np.nan
            q = np.where(rng.random(ts.size) < 0.03, 2, 0).astype(np.int8)
            if rng.random() < 0.04:
                ts = ts - int(rng.integers(2, 8)) * NS  # late, or just within the lateness
            if rng.random() < 0.02:
                ts = ts[::-1].copy()  # out of order within the frame
                vals, q, names = vals[::-1].copy(), q[::-1].copy(), names[::-1]
            out.append((a, names, ts, vals, q if rng.random() < 0.8 else None))
    order = np.arange(len(out))
    for i in range(0, len(out) - 8, 97):  # a little disorder between frames
        rng.shuffle(order[i:i + 8])
    return [out[i] for i in order]


def run(engine, fr, cuts):
    rows, i, c = [], 0, 0
    while i < len(fr):
        n = int(cuts[c % len(cuts)])
        for f in fr[i:i + n]:
            engine.add(*f)
        i += n
        c += 1
        rows += engine.close_ready()
    return rows + engine.close_ready(flush=True)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fast_paths_give_the_rows_of_the_engine_before_them(seed):
    spec = FeatureSpec(scales=[{"name": "1s", "size_s": 1.0},
                               {"name": "5s", "size_s": 5.0, "hop_s": 1.0},
                               {"name": "20s", "size_s": 20.0, "hop_s": 5.0}],
                       acf_lags=[1, 3], allowed_lateness_s=1.5)
    fr = frames(seed)
    cuts = np.random.default_rng(seed).integers(1, 60, 20)
    kw = dict(max_unknown_assets=3, max_tags=4)  # u4 refused, u* learn at most 4 tags
    new, old = WindowEngine(spec, CONFIGURED, **kw), Reference(spec, CONFIGURED, **kw)
    got, want = run(new, fr, cuts), run(old, fr, cuts)
    assert len(want) > 500, "test has no power: too few rows"
    assert any(np.isnan(m).all() for r in want for m in r.scales.values()), "no partial window"
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert (g.asset, g.end, g.tags, g.source_ts, g.late) == \
            (w.asset, w.end, w.tags, w.source_ts, w.late)
        assert list(g.scales) == list(w.scales) and list(g.counts) == list(w.counts)
        for name in w.scales:
            np.testing.assert_array_equal(g.scales[name], w.scales[name])  # bit for bit
            np.testing.assert_array_equal(g.counts[name], w.counts[name])
            assert g.counts[name].dtype == w.counts[name].dtype
    assert new.refused == old.refused > 0
    assert list(new._assets) == list(old._assets) and len(old._assets) == 5
    for a in old._assets:
        assert new.stats(a) == old.stats(a)
        assert new.tags(a) == old.tags(a)
    assert sum(new.stats(a)["late"] for a in CONFIGURED) > 0
    assert sum(new.stats(a)["bad"] + new.stats(a)["unknown_tags"] for a in CONFIGURED) > 0
