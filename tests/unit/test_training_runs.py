"""Training on several runs at spread clock phases (#21: the demo's press-1 false alerts came
from offline training data that only ever showed the press's noise-free valve cycle at the
phases of a run started on a whole minute)."""

from __future__ import annotations

import numpy as np
import pytest

from tocsin.config.plant import load_plant
from tocsin.connectors.model_sources import run_offsets, simulated_runs
from tocsin.errors import ModelError
from tocsin.models.training import (
    AssetTicks,
    TrainConfig,
    _runs,
    _split,
    collect_run_ticks,
)

NS = 1_000_000_000
PLANT = load_plant(None)


def test_run_offsets_cover_every_tenth_and_spread_over_a_minute():
    offs = run_offsets(10, seed=1)
    assert sorted(int(o * 10) % 10 for o in offs) == list(range(10))  # each 0.1 s lattice once
    assert [int(o) // 6 for o in offs] == list(range(10))  # one run per 6 s of the minute
    assert offs == run_offsets(10, seed=1) and offs != run_offsets(10, seed=2)


def test_simulated_runs_are_apart_and_start_at_their_phase():
    runs = [list(r) for r in simulated_runs(60, runs=3, seed=1, assets=["press-1"])]
    firsts = [int(r[0].ts.min()) for r in runs]
    lasts = [int(r[-1].ts.max()) for r in runs]
    for j in (1, 2):
        assert firsts[j] - lasts[j - 1] > 120 * NS  # silence longer than any window
    offs = run_offsets(3, seed=1)
    for first, off in zip(firsts, offs):  # first sample 0.1 s after the run's start
        d = (first - round((off + 0.1) * NS)) % (60 * NS)
        assert min(d, 60 * NS - d) < 1000  # ns (float seconds)


def test_each_run_starts_fresh_and_ends_without_forced_closes():
    tags = PLANT.asset_tags()
    tk = collect_run_ticks(simulated_runs(300, runs=2, seed=1, assets=["press-1"]),
                           PLANT.features, {"press-1": tags["press-1"]})["press-1"]
    spans = _runs(tk.ends, 60 * NS)
    assert len(spans) == 2
    d = len(tk.steps[0])
    for a, b in spans:
        assert np.isnan(tk.vectors[a]).all()  # a fresh start: no window full yet
        assert np.isnan(tk.vectors[a + 5, d:]).any()  # the 10 s / 60 s windows still filling
        assert not np.isnan(tk.vectors[b - 1]).any()  # the last tick: complete windows
        assert b - a < 150  # 150 s runs, the last windows never forced closed


def _ticks(lengths, gap_s=200):
    ends, t = [], 0
    for n in lengths:
        ends += [t + i * NS for i in range(n)]
        t = ends[-1] + gap_s * NS
    n = len(ends)
    return AssetTicks(np.array(ends, dtype=np.int64), np.zeros((n, 3)), np.zeros((n, 1)))


def test_split_holds_back_the_end_of_every_run_and_drops_runs_too_short():
    cfg = TrainConfig(seq_len=5, calib_fraction=0.3)
    parts = _split("a", _ticks([100, 4, 50]), cfg, 60 * NS, "t")
    assert parts == [(0, 70, 100), (104, 139, 154)]  # the 4-tick run left out
    assert _split("a", _ticks([100]), cfg, 60 * NS, "t") == [(0, 70, 100)]  # one run: as before
    with pytest.raises(ModelError, match="need a run"):
        _split("a", _ticks([6, 6]), cfg, 60 * NS, "t")
