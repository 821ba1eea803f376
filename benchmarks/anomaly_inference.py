"""Batched model inference against one call per asset, side by side (ONNX Runtime, CPU).

Per tick, every asset needs an Isolation Forest score (one vector) and an LSTM-AE score (one
60-step sequence). Two levels, each a batched contender and its per-asset peer (same model
objects, so the same ONNX Runtime sessions and settings; rounds alternate):

- models: ``score_vectors`` / ``score_sequences`` on all assets of a tick in one call per
  model ("batched") against one call per asset ("per-asset"), on the same inputs.
- scorer: the anomaly operator's own path, :meth:`AnomalyScorer.process` (tick assembly,
  standardising, sequence windows, both models, PCA, the Scores records) on all feature rows
  of a tick ("scorer batched") against the same scorer called once per row ("scorer
  per-asset"); both are fed the same rows and their scores are compared.

Reported: asset-scores per wall second and per CPU second of the benchmark thread (the
machine is shared: wall time under load includes waiting for a core, CPU time does not), and
the p50/p99 wall time to score a whole tick (the latency a tick's last asset sees).
``--torch`` adds the LSTM-AE on the torch backend for reference (slow: opt-in).

The model is the newest ``centrifugal-pump`` artifact under the model root, else one trained
once on the simulated plant (400 s, 2 epochs: a benchmark model, not a deployed one) and kept
under ``$TOCSIN_CACHE/bench-models``.

Usage: python -m benchmarks.anomaly_inference [--assets 64] [--ticks 200] [--rounds 3]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from benchmarks.report import Report, add_arguments
from tocsin.contracts.features import FeatureRow
from tocsin.models import artifacts
from tocsin.models.scoring import AnomalyModel, AnomalyScorer, ModelRegistry

TYPE = "centrifugal-pump"


def artifact_for_bench() -> artifacts.Artifact:
    art = artifacts.newest(artifacts.default_root(), TYPE)
    if art is not None:
        return art
    from tocsin.services.kafka import cache_dir

    root = cache_dir() / "bench-models"
    art = artifacts.newest(root, TYPE)
    if art is not None:
        return art
    from tocsin.config.plant import load_plant
    from tocsin.connectors.model_sources import simulated_frames
    from tocsin.models.training import TrainConfig, collect_ticks, train_asset_type

    plant = load_plant(None)
    tags = plant.asset_tags()["pump-1"]
    ticks = collect_ticks(simulated_frames(400, seed=1, assets=["pump-1"]), plant.features,
                          {"pump-1": tags})
    return train_asset_type(TYPE, ticks, plant.features, tags, TrainConfig(epochs=2), root,
                            "benchmark model (simulated plant, 400 s, seed 1)")


def feature_ticks(m: AnomalyModel, assets: list[str], n: int, seed: int = 0
                  ) -> list[list[FeatureRow]]:
    """``n`` ticks of feature rows for every asset: the base scale every tick, a larger
    scale whenever its hop comes round (as the window engine closes them)."""
    rng = np.random.default_rng(seed)
    base = m.spec.scales[0].hop_ns
    nt, nf = len(m.tags), m.nf
    out = []
    for k in range(1, n + 1):
        end = k * base
        rows = []
        for a in assets:
            names = [s.name for s in m.spec.scales if end % s.hop_ns == 0]
            rows.append(FeatureRow(a, end, list(m.tags),
                                   {s: rng.normal(size=(nt, nf)) for s in names},
                                   {s: np.full(nt, 10) for s in names}, source_ts=end))
        out.append(rows)
    return out


def timed(fn: Callable[[], object], ticks: int) -> tuple[np.ndarray, float]:
    """-> (wall seconds per tick, thread CPU seconds in all)."""
    lat = np.empty(ticks)
    c0 = time.thread_time()
    for i in range(ticks):
        t0 = time.perf_counter()
        fn()
        lat[i] = time.perf_counter() - t0
    return lat, time.thread_time() - c0


def same_scores(a: list, b: list) -> float:
    """The largest difference between two score streams (they must cover the same rows)."""
    if [(s.asset, s.ts) for s in a] != [(s.asset, s.ts) for s in b]:
        raise AssertionError("batched and per-asset scorers scored different rows")
    worst = 0.0
    for x, y in zip(a, b):
        for name, mx in x.models.items():
            my = y.models[name]
            if (mx is None) != (my is None):
                raise AssertionError(f"{x.asset}: {name} scored by only one contender")
            if mx is not None:
                worst = max(worst, abs(mx.score - my.score),
                            *(abs(v - my.contributions[t]) for t, v in mx.contributions.items()))
    return worst


def add_checks(rep: Report, torch: bool) -> None:
    for label, metric in (("", "asset_scores_per_s"), (" (CPU s)", "asset_scores_per_cpu_s")):
        rep.check(f"batched vs per-asset calls{label}", metric, "batched", peer="per-asset",
                  op=">=", target=5.0)
        rep.check(f"scorer batched vs per-asset{label}", metric, "scorer batched",
                  peer="scorer per-asset", op=">=", target=5.0)
    rep.check("batched tick p99 not worse than per-asset", "tick_p99_ms", "batched",
              peer="per-asset", op="<=", target=1.0)
    rep.check("scorer batched tick p99 not worse than per-asset", "tick_p99_ms",
              "scorer batched", peer="scorer per-asset", op="<=", target=1.0)
    if torch:
        rep.check("torch backend vs ONNX batched", "asset_scores_per_s",
                  "batched, torch backend", peer="batched")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--assets", type=int, default=64)
    ap.add_argument("--ticks", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--torch", action="store_true", help="also the torch backend (slow)")
    args = add_arguments(ap).parse_args()
    art = artifact_for_bench()
    m = AnomalyModel(art)
    rng = np.random.default_rng(0)
    d_all = len(m.mean)
    vec = rng.normal(size=(args.assets, d_all)).astype(np.float32)
    seq = rng.normal(size=(args.assets, m.seq_len, m.d_step)).astype(np.float32)
    mt = AnomalyModel(art, backend="torch") if args.torch else None

    def batched(model):
        model.score_vectors(vec)
        model.score_sequences(seq)

    def per_asset(model):
        for i in range(args.assets):
            model.score_vectors(vec[i:i + 1])
            model.score_sequences(seq[i:i + 1])

    # the scorer level: two scorers on one registry (the same sessions), fed the same rows
    assets = [f"pump-{i}" for i in range(args.assets)]
    reg = ModelRegistry(art.path.parent.parent)
    reg.models[TYPE] = m
    sc_b = AnomalyScorer(reg, {a: TYPE for a in assets})
    sc_p = AnomalyScorer(reg, {a: TYPE for a in assets})
    for s in (sc_b, sc_p):
        s.adopt([(TYPE, None, m.version)])
    warm = m.seq_len + 5
    # one tick stream; each scorer walks it at its own pace (the per-asset one is timed on
    # fewer ticks), so both see the same ticks in the same order and the per-asset scores
    # are a prefix of the batched ones
    stream = feature_ticks(m, assets, warm + args.rounds * args.ticks + 3)
    pos = {"b": 0, "p": 0}
    got: dict[str, list] = {"b": [], "p": []}

    def scorer_batched():
        got["b"].extend(sc_b.process(stream[pos["b"]]))
        pos["b"] += 1

    def scorer_per_asset():
        for r in stream[pos["p"]]:
            got["p"].extend(sc_p.process([r]))
        pos["p"] += 1

    for _ in range(warm):  # fill the sequences: every asset has an LSTM-AE score from here on
        scorer_batched()
        scorer_per_asset()

    contenders = {"batched": lambda: batched(m), "per-asset": lambda: per_asset(m),
                  "scorer batched": scorer_batched, "scorer per-asset": scorer_per_asset}
    if mt is not None:
        contenders["batched, torch backend"] = lambda: batched(mt)
    for name, fn in contenders.items():  # warm-up of the model-level contenders
        if not name.startswith("scorer"):
            for _ in range(3):
                fn()
    rep = Report("anomaly_inference", vars(args))
    for _ in range(args.rounds):
        for k, fn in contenders.items():
            slow = k in ("per-asset", "scorer per-asset") or "torch" in k
            ticks = max(10, args.ticks // 8) if slow else args.ticks
            lat, cpu = timed(fn, ticks)
            rep.add(k, asset_scores_per_s=args.assets / lat.mean(),
                    asset_scores_per_cpu_s=args.assets * ticks / cpu,
                    tick_p50_ms=float(np.percentile(lat, 50)) * 1e3,
                    tick_p99_ms=float(np.percentile(lat, 99)) * 1e3)
    diff = same_scores(got["b"][:len(got["p"])], got["p"])
    rep.note(f"{args.assets} assets per tick, IF on {d_all} inputs + LSTM-AE on "
             f"{m.seq_len}x{m.d_step} (model {m.version}); ONNX Runtime "
             f"{__import__('onnxruntime').__version__}, 1 intra-op thread for both")
    rep.note(f"scorer batched vs per-asset: {len(got['p'])} scores compared, largest "
             f"difference {diff:.3g}")
    add_checks(rep, mt is not None)
    rep.finish(args)


if __name__ == "__main__":
    main()
