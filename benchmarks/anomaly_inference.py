"""Batched model inference against one call per asset, side by side (ONNX Runtime, CPU).

Per tick, every asset needs an Isolation Forest score (one vector) and an LSTM-AE score (one
60-step sequence). "batched" scores all assets of a tick in one call per model, the way the
anomaly agent does; "per-asset" calls each model once per asset. Both score the same inputs;
rounds alternate. Reported: asset-scores/s and the p50/p99 time to score a whole tick (the
latency a tick's last asset sees). Also the LSTM-AE on the torch backend for reference.

Usage: python -m benchmarks.anomaly_inference [--assets 64] [--ticks 200]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.report import Report, add_arguments
from tocsin.models import artifacts
from tocsin.models.scoring import AnomalyModel


def artifact_for_bench() -> artifacts.Artifact:
    art = artifacts.newest(artifacts.default_root(), "centrifugal-pump")
    if art is not None:
        return art
    from tocsin.config.plant import load_plant
    from tocsin.connectors.model_sources import simulated_frames
    from tocsin.models.training import TrainConfig, collect_ticks, train_asset_type

    plant = load_plant(None)
    root = Path(tempfile.mkdtemp(prefix="bench-models-"))
    tags = plant.asset_tags()["pump-1"]
    ticks = collect_ticks(simulated_frames(400, seed=1, assets=["pump-1"]), plant.features,
                          {"pump-1": tags})
    return train_asset_type("centrifugal-pump", ticks, plant.features, tags,
                            TrainConfig(epochs=2), root, "benchmark")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--assets", type=int, default=64)
    ap.add_argument("--ticks", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    args = add_arguments(ap).parse_args()
    art = artifact_for_bench()
    m = AnomalyModel(art)
    rng = np.random.default_rng(0)
    d_all = len(m.mean)
    vec = rng.normal(size=(args.assets, d_all)).astype(np.float32)
    seq = rng.normal(size=(args.assets, m.seq_len, m.d_step)).astype(np.float32)
    try:
        mt = AnomalyModel(art, backend="torch")
    except Exception as exc:  # torch absent: skip that line
        mt = None
        print(f"(torch backend skipped: {exc})")

    def batched(model):
        model.score_vectors(vec)
        model.score_sequences(seq)

    def per_asset(model):
        for i in range(args.assets):
            model.score_vectors(vec[i:i + 1])
            model.score_sequences(seq[i:i + 1])

    contenders = {"batched": lambda: batched(m), "per-asset": lambda: per_asset(m)}
    if mt is not None:
        contenders["batched, torch backend"] = lambda: batched(mt)
    res: dict[str, list] = {k: [] for k in contenders}
    for fn in contenders.values():  # warm-up
        for _ in range(3):
            fn()
    for _ in range(args.rounds):
        for k, fn in contenders.items():
            ticks = args.ticks if k != "per-asset" else max(10, args.ticks // 8)
            lat = []
            for _ in range(ticks):
                t0 = time.perf_counter()
                fn()
                lat.append(time.perf_counter() - t0)
            res[k].append(np.array(lat))
    rep = Report("anomaly_inference", vars(args))
    rep.note(f"{args.assets} assets per tick, IF on {d_all} inputs + LSTM-AE on "
             f"{m.seq_len}x{m.d_step} (model {m.version})")
    for k, runs in res.items():
        for r in runs:
            rep.add(k, asset_scores_per_s=args.assets / r.mean(),
                    tick_p50_ms=float(np.percentile(r, 50)) * 1e3,
                    tick_p99_ms=float(np.percentile(r, 99)) * 1e3)
    rep.check("batched vs per-asset calls", "asset_scores_per_s", "batched", peer="per-asset",
              op=">=", target=5.0)
    rep.check("batched tick p99 not worse than per-asset", "tick_p99_ms", "batched",
              peer="per-asset", op="<=", target=1.0)
    if mt is not None:
        rep.check("torch backend vs ONNX batched", "asset_scores_per_s",
                  "batched, torch backend", peer="batched")
    rep.finish(args)

if __name__ == "__main__":
    main()
