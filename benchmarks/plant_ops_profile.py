"""The features and anomaly operators in-process, without Kafka: where a frame's CPU goes.

The same frames part C of benchmarks/features.py sends (simulated pumps, one frame per asset
and second, 50 samples at 10 Hz x 5 tags), encoded once, fed to ``FeaturesOperator.process``
in batches of ``--batch`` records (the runner's ``batch_max``) spread over ``--partitions``
partitions by asset; the feature messages it emits are fed to ``AnomalyOperator.process`` the
same way. Reports CPU per input frame for each stage (the least of ``--repeat`` runs: the
machine is shared) and samples per CPU-second for both together; ``--profile
features|anomaly`` prints that stage's cProfile top 25.

``--dump FILE`` writes every feature message as sent and every score message (emitted_ts
dropped), so two trees can be compared for identical outputs: run this file with
``PYTHONPATH=OTHER_TREE`` to measure another tree's operators on the same input, e.g.
``cd /tmp/main && PYTHONPATH=/tmp/main python $OLDPWD/benchmarks/plant_ops_profile.py
--dump /tmp/main.pkl``. Models are trained once (600 s of one simulated pump, 4 epochs) into
``--models``.

Usage: python -m benchmarks.plant_ops_profile [--assets 50] [--seconds 120] [--profile anomaly]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pickle
import pstats
import resource
import time
from pathlib import Path

import orjson

from benchmarks.features import plant_yaml
from benchmarks.gc_clock import GcClock, apply, label, setups
from tocsin.config.plant import load_plant
from tocsin.config.worker import load_settings
from tocsin.connectors.model_sources import simulated_frames
from tocsin.contracts import topics
from tocsin.contracts.readings import ReadingsFrame
from tocsin.streams.plant_ops import AnomalyOperator, FeaturesOperator
from tocsin.streams.runtime.emitter import BatchEmitter
from tocsin.streams.runtime.operator import Record
from tocsin.streams.runtime.state import KeyedState

PREFIX = "p."


def make_frames(assets: int, seconds: int, rate: float) -> list[ReadingsFrame]:
    base = list(simulated_frames(seconds, seed=3, assets=["pump-1"], rate=rate))
    return [ReadingsFrame(f"pump-{a + 1}", f.tags, f.ts, f.values, f.quality)
            for f in base for a in range(assets)]


def models(root: Path, rate: float) -> Path:
    if (root / "centrifugal-pump").exists():
        return root
    from tocsin.models.training import TrainConfig, collect_ticks, train_asset_type

    plant = load_plant(None)
    tags = plant.asset_tags()["pump-1"]
    ticks = collect_ticks(simulated_frames(600, seed=1, assets=["pump-1"], rate=rate),
                          plant.features, {"pump-1": tags})
    train_asset_type("centrifugal-pump", ticks, plant.features, tags,
                     TrainConfig(epochs=4, threads=1), root, "plant_ops_profile")
    return root


GC = GcClock()


def run_stage(op, recs: list[Record], batch: int, prof: cProfile.Profile | None):
    out = BatchEmitter(PREFIX + topics.DEADLETTER, "prof")
    sent = []
    GC.take()
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    c0 = time.process_time()
    if prof:
        prof.enable()
    for i in range(0, len(recs), batch):
        op.process(recs[i:i + batch], out)
        sent += out.take()
    if prof:
        prof.disable()
    cpu = time.process_time() - c0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    longest, freed = GC.longest_s, GC.collected
    _gc_wall, gc_s, gc_n = GC.take()  # the collecting thread's CPU, like ``cpu``
    return sent, cpu, (r1.ru_minflt - r0.ru_minflt, r1.ru_stime - r0.ru_stime, gc_s, gc_n,
                       longest, freed)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--assets", type=int, default=50)
    ap.add_argument("--seconds", type=int, default=120)
    ap.add_argument("--rate", type=float, default=10.0)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--models", type=Path, default=Path("/tmp/plant_ops_profile_models"))
    ap.add_argument("--profile", choices=["features", "anomaly"])
    ap.add_argument("--dump", type=Path)
    ap.add_argument("--repeat", type=int, default=3, help="runs; the least CPU of each stage")
    ap.add_argument("--gc", default="python,runtime", help="GC set-ups measured in turn each "
                    "repeat: python (defaults) and/or runtime (the worker's gc.freeze() + "
                    "threshold; see --gc-gen0)")
    ap.add_argument("--gc-gen0", default="10000", help="runtime: gen0 threshold(s), comma "
                    "list: each is one more set-up (runtime@N)")
    args = ap.parse_args()
    import tocsin

    cfg = plant_yaml(args.assets, Path(f"/tmp/plant_ops_profile_{os.getpid()}.yaml"))
    plant = load_plant(cfg)
    root = models(args.models, args.rate)
    s = load_settings(broker="127.0.0.1:1", topic_prefix=PREFIX, partitions=args.partitions,
                      data_dir=Path("/tmp") / f"pop-{os.getpid()}", agents="features,anomaly",
                      model_dir=root, plant_config=cfg)
    frames = make_frames(args.assets, args.seconds, args.rate)
    n_samples = sum(len(f) for f in frames)
    part = {f"pump-{a + 1}": a % args.partitions for a in range(args.assets)}
    recs = [Record(PREFIX + topics.READINGS, part[f.asset], i, f.asset.encode(), f.encode())
            for i, f in enumerate(frames)]
    best: dict = {}
    pf = pa = None
    for _rep in range(args.repeat):  # fresh operators each time; the fastest repeat counts
        for mode, gen0 in setups(args.gc, args.gc_gen0):  # in turn: the same machine load
            fop, aop = FeaturesOperator(s, plant), AnomalyOperator(s, plant)
            for p in range(args.partitions):
                fop.open(p, KeyedState(p, logged=False))
                aop.open(p, KeyedState(p, logged=False))
            apply(mode, gen0)  # as the worker does: after start-up, before the batches
            pf = cProfile.Profile() if args.profile == "features" else None
            feats, c_f, pg_f = run_stage(fop, recs, args.batch, pf)
            frecs = [Record(PREFIX + topics.FEATURES, part[k.decode()], i, k, v)
                     for i, (_t, k, v) in enumerate(feats)]
            pa = cProfile.Profile() if args.profile == "anomaly" else None
            scores, c_a, pg_a = run_stage(aop, frecs, args.batch, pa)
            b = best.setdefault((mode, gen0), {"f": (float("inf"),), "a": (float("inf"),)})
            if c_f < b["f"][0]:
                b["f"] = (c_f, pg_f)
            if c_a < b["a"][0]:
                b["a"] = (c_a, pg_a)
    apply("python", 0)
    nf = len(frames)
    print(f"tree {Path(tocsin.__file__).parents[1]}: {nf:,} frames ({n_samples / nf:.0f} "
          f"samples), {len(feats):,} feature rows, {len(scores):,} scores, {args.batch} "
          f"records per batch")
    for (mode, gen0), b in best.items():
        (cpu_f, pg_f), (cpu_a, pg_a) = b["f"], b["a"]
        gc_s = pg_f[2] + pg_a[2]
        print(f"gc {label(mode, gen0)}:")
        print(f"  features {cpu_f / nf * 1e6:.0f} us CPU per frame, anomaly "
              f"{cpu_a / nf * 1e6:.0f} us per frame ({cpu_a / max(1, len(feats)) * 1e6:.0f} "
              f"us per feature row); both: {n_samples / (cpu_f + cpu_a):,.0f} samples per "
              f"CPU-second (load {os.getloadavg()[0]:.1f})")
        print(f"  cyclic GC: {gc_s / (cpu_f + cpu_a) * 100:.1f} % of the CPU ({gc_s * 1e3:.0f} "
              f"ms; features {pg_f[2] * 1e3:.0f} ms in {pg_f[3]} collections (gen0/1/2), "
              f"anomaly {pg_a[2] * 1e3:.0f} ms in {pg_a[3]}); per batch "
              f"{gc_s / -(-(nf + len(feats)) // args.batch) * 1e3:.2f} ms, longest "
              f"{max(pg_f[4], pg_a[4]) * 1e3:.1f} ms, {pg_f[5] + pg_a[5]} objects freed")
        print(f"  page faults per frame: features {pg_f[0] / nf:.1f}, anomaly "
              f"{pg_a[0] / nf:.1f}; system CPU per frame: features {pg_f[1] / nf * 1e6:.0f} "
              f"us, anomaly {pg_a[1] / nf * 1e6:.0f} us")
    if args.dump:
        def norm(v: bytes) -> bytes:
            d = orjson.loads(v)
            d.pop("emitted_ts", None)
            return orjson.dumps(d, option=orjson.OPT_SORT_KEYS)

        args.dump.write_bytes(pickle.dumps({"features": [(k, v) for _t, k, v in feats],
                                            "scores": [(k, norm(v)) for _t, k, v in scores]}))
    for prof in (pf, pa):
        if prof:
            pstats.Stats(prof).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
