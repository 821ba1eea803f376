"""The demo's models at clock phases: normal operation of the demo's plant (simulator seed 7)
offline, its sample clock started at several offsets past a whole minute, scored by the
stream's own code (`score_frames`); per model and asset, the ticks at or above the threshold.

Why: the live OPC UA server starts its 10 Hz sample clock whenever it is started, and the
feature windows are aligned to the epoch, so the press's noise-free 20 s valve cycle meets
the windows at any phase. Models trained on one run started on a whole minute saw only a few
phases (#21: the demo's false press-1 alerts). No services: this isolates the phase effect
from the rest of the live path (benchmarks/demo_false_alerts.py runs the whole slice).

    python -m benchmarks.demo_phases --models DIR [--models-peer OLD_DIR] [--seconds 200]

Every tick counts (warm-up included); only the last 3 s are left out (the offline flush
closes partial windows there, which the live stream never does).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.report import Report, add_arguments

NS = 1_000_000_000
# phases (seconds past a whole minute) picked before any run, none a training run's offset
OFFSETS = (0.0, 3.33, 7.55, 13.71, 21.12, 29.98, 36.45, 44.07, 51.86, 58.29)


def frames(seconds: float, seed: int, base_ns: int, rate: float = 10.0):
    from tocsin.connectors.simulator.plant import DEFAULT_ASSETS, Plant
    from tocsin.contracts.readings import ReadingsFrame

    plant = Plant(dict(DEFAULT_ASSETS), seed=seed)
    dt, buf = 1 / rate, {a: [] for a in DEFAULT_ASSETS}
    for i in range(1, int(seconds * rate) + 1):
        t = i * dt
        ts = base_ns + round(t * 1e9)
        for a, v in plant.step(t, dt).items():
            buf[a].extend((tag, ts, x, 0) for tag, x in v.items())
        if i % int(rate) == 0:
            for a, s in buf.items():
                yield ReadingsFrame.from_samples(a, s, source="phases", seq=i)
            buf = {a: [] for a in DEFAULT_ASSETS}


def above(root: Path, seconds: float, offset: float, seed: int = 7) -> dict:
    from tocsin.config.plant import load_plant
    from tocsin.connectors.simulator.scenario import EPOCH_2026
    from tocsin.models.offline import score_frames

    plant = load_plant(None)
    base = (EPOCH_2026 + 3600) * NS + round(offset * NS)
    sc = score_frames(frames(seconds, seed, base), spec=plant.features,
                      asset_tags=plant.asset_tags(), asset_types=plant.asset_types(),
                      model_root=root)
    last = max(s.ts for s in sc)
    out: dict = {}
    for s in sc:
        if s.ts >= last - 3 * NS:
            continue
        for m, ms in s.models.items():
            if ms is not None:
                n, tot, mx = out.get((s.asset, m), (0, 0, 0.0))
                out[(s.asset, m)] = (n + (ms.ratio >= 1.0), tot + 1, max(mx, ms.ratio))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=Path, required=True, help="a `tocsin train plant` folder")
    ap.add_argument("--models-peer", type=Path, default=None, help="older models, side by side")
    ap.add_argument("--seconds", type=float, default=200.0)
    a = add_arguments(ap).parse_args()
    rep = Report("demo_phases", {k: str(v) for k, v in vars(a).items()})
    contenders = {"models": a.models, **({"peer": a.models_peer} if a.models_peer else {})}
    totals: dict = {}
    for off in OFFSETS:
        for name, root in contenders.items():
            res = above(root, a.seconds, off)
            print(f"{name} offset {off:5.2f}: " + "  ".join(
                f"{asset}/{m} {n}/{tot} (max {mx:.2f}x)"
                for (asset, m), (n, tot, mx) in sorted(res.items())), flush=True)
            for (asset, m), (n, tot, _) in res.items():
                t = totals.setdefault((name, asset, m), [0, 0])
                t[0] += n
                t[1] += tot
            rep.add(name, ticks_above=sum(n for n, _, _ in res.values()),
                    runs_with_ticks_above=float(any(n for n, _, _ in res.values())))
    for (name, asset, m), (n, tot) in sorted(totals.items()):
        rep.note(f"{name} {asset} {m}: {n} of {tot} normal ticks at or above the threshold "
                 f"over {len(OFFSETS)} phases")
    for name in contenders:
        rep.add(f"{name} all phases", ticks_above=sum(
            n for (c, _, _), (n, _) in totals.items() if c == name))
    rep.check(f"normal ticks at or above a threshold over {len(OFFSETS)} phases, every model",
              "ticks_above", "models all phases", op="<=", target=0)
    if a.models_peer:
        rep.check("the same, older models", "ticks_above", "peer all phases")
    rep.finish(a)


if __name__ == "__main__":
    main()
