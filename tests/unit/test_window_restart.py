"""The window engine's outputs depend on the frames alone: not on how they are batched, and
after a restart that replays :func:`replay_horizon_s` of input into a fresh engine, the rows
go on exactly as in an uninterrupted run (the features operator's Restore.replay)."""

from __future__ import annotations

import numpy as np
import pytest

from tocsin.contracts import features as fc
from tocsin.detectors.windows import NS, FeatureSpec, WindowEngine, replay_horizon_s

SPEC = FeatureSpec()  # 1 s, 10 s / 1 s, 60 s / 10 s, 2 s lateness: the plant default
TAGS = {"p1": ["a", "b"], "p2": ["a", "b", "c"]}
T0 = 1_760_000_000 * NS + 123_456_789  # not on a boundary
SIZES = {s.name: s.size_ns for s in SPEC.scales}


def frames(seed: int, seconds: int = 420):
    """(asset, tags, ts, values) frames of 0.5 s at 10 Hz, two assets interleaved with jitter,
    some frames arriving late (3-5 s behind), and p2 silent for 90 s in the middle."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(seconds * 2):
        for asset, tags in TAGS.items():
            if asset == "p2" and 150 <= k / 2 < 240:
                continue
            t = T0 + k * NS // 2 + np.arange(5) * NS // 10 + int(rng.integers(0, 20_000_000))
            ts = np.repeat(t, len(tags))
            vals = np.sin(ts / 3e9) + rng.normal(0, 0.1, ts.size)
            if rng.random() < 0.03:
                ts = ts - int(rng.integers(3, 6)) * NS  # a late frame
            out.append((asset, tags * 5, ts, vals))
    rng.shuffle(out[100:110])  # a little disorder
    return out


def run(engine: WindowEngine, fr, cuts: np.ndarray) -> list[tuple[str, bytes]]:
    rows, i, c = [], 0, 0
    while i < len(fr):
        n = int(cuts[c % len(cuts)])
        for f in fr[i:i + n]:
            engine.add(*f)
        i += n
        c += 1
        rows += engine.close_ready()
    return [(r.asset, fc.encode(r, engine.names, SIZES, "h")) for r in rows]


def per_asset(rows):
    out: dict[str, list[bytes]] = {}
    for asset, b in rows:
        out.setdefault(asset, []).append(b)
    return out


@pytest.mark.parametrize("seed", [1, 2])
def test_batching_changes_no_row(seed):
    fr = frames(seed)
    one = run(WindowEngine(SPEC, TAGS), fr, np.array([1]))
    rng = np.random.default_rng(seed)
    other = run(WindowEngine(SPEC, TAGS), fr, rng.integers(1, 60, 50))
    assert per_asset(one) == per_asset(other)
    assert sum(fc.decode(b)[0].late for _, b in one) > 0  # the late frames were counted


@pytest.mark.parametrize("seed,crash_at", [(3, 640), (4, 900), (5, 1250)])
def test_restart_with_replay_continues_exactly(seed, crash_at):
    """crash_at: frame index of the last committed batch's end (640 is inside p2's silence)."""
    fr = frames(seed)
    want = per_asset(run(WindowEngine(SPEC, TAGS), fr, np.array([7])))

    before = run(WindowEngine(SPEC, TAGS), fr[:crash_at], np.array([7]))
    # the runner seeks back horizon_s of record time (here the frames' newest event time)
    horizon = int(replay_horizon_s(SPEC) * NS)
    last_ts = int(fr[crash_at - 1][2].max())
    start = next(i for i, f in enumerate(fr) if int(f[2].max()) >= last_ts - horizon)
    assert start > 0  # a real replay from the middle of the stream, not from its beginning
    fresh = WindowEngine(SPEC, TAGS)
    run(fresh, fr[start:crash_at], np.array([13]))  # muted: outputs dropped
    after = run(fresh, fr[crash_at:], np.array([5, 11]))
    got = per_asset(before + after)
    assert got.keys() == want.keys()
    for asset in want:
        assert got[asset] == want[asset], asset
    # the windows right after the restart are full ones, not partial (NaN) ones
    first = fc.decode(after[0][1])[0]
    assert not np.isnan(first.scales["60s"]).all() if "60s" in first.scales else True
    assert all(not np.isnan(fc.decode(b)[0].scales["1s"]).any() for _, b in after[:20]
               if "1s" in fc.decode(b)[0].scales)


def test_a_short_replay_gives_partial_windows_not_wrong_ones():
    """With less replay than the horizon the first windows are marked partial (NaN), as after
    a cold start: never features computed over a window with its beginning missing."""
    fr = frames(6, seconds=200)
    fresh = WindowEngine(SPEC, TAGS)
    run(fresh, fr[300:320], np.array([5]))
    after = [fc.decode(b)[0] for _, b in run(fresh, fr[320:400], np.array([5]))]
    sixty = [r for r in after if "60s" in r.scales]
    assert sixty and all(np.isnan(r.scales["60s"]).all() for r in sixty)
