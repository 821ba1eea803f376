"""The demo's models on normal simulator data: no tick of any model (Isolation Forest and
LSTM-AE, the fusion's inputs, and PCA) at or above its threshold, at clock phases the training
never saw (a live server starts its sample clock whenever it is started), and the LSTM-AE
back under its threshold soon after a fault ends. Unit-level: offline, event time, no services (the fresh-demo benchmark,
benchmarks/demo_false_alerts.py, runs the whole slice)."""

from __future__ import annotations

import numpy as np
import pytest

from tocsin.config.plant import load_plant
from tocsin.connectors.model_sources import simulated_frames, simulated_runs
from tocsin.connectors.simulator.scenario import EPOCH_2026
from tocsin.models.offline import score_frames
from tocsin.models.training import TrainConfig, collect_run_ticks, train_asset_type

PLANT = load_plant(None)
NS = 1_000_000_000


@pytest.fixture(scope="module")
def demo_models(tmp_path_factory):
    """The demo's training (`tocsin train plant` defaults: seed 0, simulator seed 1, 1,800 s
    in 10 runs at spread clock phases) for the press and the pump, one thread. The slowest
    unit test (about a minute of CPU per asset type): a shorter training (60 epochs, 10 x
    120 s) left the pump's LSTM-AE at 1.1x its threshold at one phase."""
    root = tmp_path_factory.mktemp("demo-models")
    cfg = TrainConfig(threads=1)
    tags = PLANT.asset_tags()
    types = PLANT.asset_types()
    ticks = collect_run_ticks(simulated_runs(1800, runs=10, seed=1, assets=["pump-1", "press-1"]),
                              PLANT.features, {a: tags[a] for a in ("pump-1", "press-1")})
    arts = {a: train_asset_type(types[a], {a: ticks[a]}, PLANT.features, tags[a], cfg, root,
                                "simulated plant, 10 x 180 s, seed 1 (test)")
            for a in ("pump-1", "press-1")}
    return root, arts


def _ratios(root, seconds, faults=(), start_s=None):
    scores = score_frames(simulated_frames(seconds, seed=7, assets=["pump-1", "press-1"],
                                           faults=list(faults), start_s=start_s),
                          spec=PLANT.features, asset_tags=PLANT.asset_tags(),
                          asset_types=PLANT.asset_types(), model_root=root)
    t0 = min(s.ts for s in scores)
    out = {}
    for s in scores:
        for name in ("iforest", "lstm_ae", "pca"):
            m = s.models.get(name)
            if m is not None:
                out.setdefault((s.asset, name), []).append(((s.ts - t0) / NS, m.ratio))
    return {k: np.array(v) for k, v in out.items()}


def test_no_tick_above_threshold_in_normal_operation(demo_models):
    root, arts = demo_models
    for art in arts.values():  # the LSTM-AE learned more than the mean
        assert art.manifest["training"]["lstm_ae_curve"]["learned"] > 0.3
    # the demo's simulator seed (7), a normal period longer than the demo's before the fault,
    # at the training's own phase (a whole minute) and at phases no training run had (before
    # #21's fix the press's LSTM-AE and PCA were above threshold on 40-97 % of these ticks)
    for off in (0.0, 7.55, 29.98, 51.86):
        for (asset, name), r in _ratios(root, 200, start_s=EPOCH_2026 + 3600 + off).items():
            normal = r[r[:, 0] < 195]  # the last ticks of a flush are partial
            assert normal[:, 1].max() < 1.0, (off, asset, name, normal[:, 1].max())


def test_lstm_ae_comes_back_within_60_s_of_the_fault_end(demo_models):
    root, _ = demo_models
    r = _ratios(root, 260, [{"asset": "pump-1", "fault": "over_temperature", "start": 90,
                              "end": 130}])[("pump-1", "lstm_ae")]
    during = r[(r[:, 0] > 95) & (r[:, 0] < 130), 1]
    assert np.median(during) > 3.0  # the fault is seen
    # (the last ticks of the flush at 260 s are partial windows: not judged)
    above = r[(r[:, 0] >= 130) & (r[:, 0] < 255) & (r[:, 1] >= 1.0), 0]
    assert above.size == 0 or above.max() - 130 <= 60
    assert r[(r[:, 0] > 190) & (r[:, 0] < 255), 1].max() < 1.0
