"""Simulator (SIMULATED plant, documented as such): per model, the share of normal ticks at
or above the threshold and the per-fault recall, for a trained model folder.

Normal: ``--normal-seconds`` of seed ``--seed`` (the demo runs seed 7), every asset, after a
65 s warm-up (the 60 s windows and the sequences fill), the last 5 s dropped (a flush closes
partial windows). Faults: each (fault, asset) of the fault library, seed ``--seed`` + 1,
fault from 120 s to the end at 300 s; recall = share of ticks from 125 s on at or above the
threshold. "either" = Isolation Forest or LSTM-AE (the scores the fusion network reads).

Usage: python -m benchmarks.plant_sim MODEL_DIR [MODEL_DIR ...]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from tocsin.config.plant import load_plant
from tocsin.connectors.model_sources import simulated_frames
from tocsin.connectors.simulator.plant import DEFAULT_ASSETS, FAULTS
from tocsin.models.offline import score_frames

P = load_plant(None)
MODELS = ("lstm_ae", "iforest", "pca")
NS = 1_000_000_000


def flags(root: Path, seconds: float, seed: int, assets, faults=()) -> dict:
    sc = score_frames(simulated_frames(seconds, seed=seed, assets=list(assets),
                                       faults=list(faults)),
                      spec=P.features, asset_tags=P.asset_tags(),
                      asset_types=P.asset_types(), model_root=root)
    t0 = min(s.ts for s in sc)
    out: dict = {}
    for s in sc:
        rel = (s.ts - t0) / NS
        if rel < 65 or rel > seconds - 5 or s.models.get("lstm_ae") is None:
            continue
        row = {m: s.models[m].ratio >= 1.0 for m in MODELS if s.models.get(m)}
        row["either"] = row["lstm_ae"] or row["iforest"]
        out.setdefault(s.asset, []).append((rel, row))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("roots", nargs="+", type=Path)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--normal-seconds", type=float, default=600.0)
    a = ap.parse_args()
    cols = list(MODELS) + ["either"]
    for root in a.roots:
        print(f"\n### {root}\n\n| case | " + " | ".join(cols) + " |\n|---|" + "---|" * len(cols))
        normal = flags(root, a.normal_seconds, a.seed, DEFAULT_ASSETS)
        for asset, rows in normal.items():
            print(f"| normal {asset}: ticks >= thr ({len(rows)}) | " + " | ".join(
                f"{100 * np.mean([r[c] for _, r in rows]):.2f} %" for c in cols) + " |")
        for fault, by in FAULTS.items():
            for asset, kind in DEFAULT_ASSETS.items():
                if kind not in by:
                    continue
                got = flags(root, 300, a.seed + 1, [asset],
                            [{"asset": asset, "fault": fault, "start": 120}])[asset]
                rows = [r for t, r in got if t >= 125]
                print(f"| {fault} on {asset} | " + " | ".join(
                    f"{100 * np.mean([r[c] for r in rows]):.0f} %" for c in cols) + " |")


if __name__ == "__main__":
    main()
