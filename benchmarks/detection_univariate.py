"""Univariate, non-stationary streams (GENERATED data): the old default of ``tocsin eval csv``
(q_quality) against the online detectors, on the code path of ``tocsin eval csv DIR
--timestamp-col timestamp --label-col label --train-fraction 0.15`` (CSV files written and
read back, the same window spec, training part and decision rule).

Streams: :mod:`tocsin.connectors.simulator.univariate`, 30 per seed (5- and 1-minute rows,
daily/weekly cycles, trends, AR(1) noise, spikes, level shifts, variance and trend changes,
seasonal breaks, flat lines). Per detector, on the rows after each stream's training part:

- ROC AUC and PR AUC per stream (mean over streams) of the continuous score (the uncapped
  surprise, the ``score`` column of ``--out-dir``);
- event-wise: detection rate (any alarm within a labelled window) and median delay in rows
  from the window's first row; per anomaly kind;
- point-wise false-alarm rate on normal rows;
- window score: windows detected, and false positives = alarm runs with no row inside a
  labelled window (each run counts once).

Defaults were chosen on seeds 1-2; seed 3 is the check. No threshold is fitted on labels.

Usage: python -m benchmarks.detection_univariate [--seeds 1,2,3] [--streams 30]
       [--json benchmarks/results/detection_univariate.json] [--sweep]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np

from tocsin.connectors.csv_import import CsvSpec
from tocsin.connectors.model_sources import load_table
from tocsin.connectors.simulator import univariate as uv
from tocsin.detectors import suite
from tocsin.detectors.decision import RULES
from tocsin.detectors.evaluation import events
from tocsin.detectors.online import OnlineLikelihood, OnlineZ
from tocsin.offline.plant_eval import eval_table_suite, short_spec
from tocsin.offline.table_eval import clock, train_count

NAMES = ["q_quality", "online_z", "online_lik", "online"]
RULE = "s2_2of3"  # the CLI's default rule
RESULTS = Path(__file__).resolve().parent / "results"


def add_variants() -> list[str]:
    """Development sweep (seeds 1-2 only): window lengths of the online members."""
    out = []
    for w in (96, 144, 576):
        for stat, cls in (("z", OnlineZ), ("lik", OnlineLikelihood)):
            name = f"online_{stat}_w{w}"
            suite.ONLINE[name] = partial(cls, window=w, long=w)
            suite.NAMES.append(name)
            out.append(name)
        ens = f"online_w{w}"
        suite.ENSEMBLES[ens] = [f"online_z_w{w}", f"online_lik_w{w}", "missing", "stuck"]
        suite.NAMES.append(ens)
        out.append(ens)
    suite.RAW_ROW = (*suite.ONLINE, *suite.RAW_MEMBERS, *suite.QUALITY)
    return out


def stream_metrics(labels: np.ndarray, pred: np.ndarray, m: dict, spans: list[dict]) -> dict:
    lab = labels.astype(bool)
    pred = pred.astype(bool)
    fp_runs = sum(1 for a, b in events(pred) if not lab[a:b].any())
    ev = []
    for sp in spans:
        a, b = sp["a"], sp["b"]
        hit = np.flatnonzero(pred[a:b])
        ev.append({"kind": sp["kind"], "detected": bool(hit.size),
                   "delay_rows": int(hit[0]) if hit.size else None})
    normal = ~lab
    return {"roc_auc": m.get("roc_auc"), "pr_auc": m.get("pr_auc"),
            "false_alarm_rate": float(pred[normal].mean()) if normal.any() else 0.0,
            "alarm_rate": float(pred.mean()), "fp_runs": fp_runs, "events": ev,
            "normal_rows": int(normal.sum())}


def summarise(per: list[dict]) -> dict:
    ev = [e for p in per for e in p["events"]]
    det = [e for e in ev if e["detected"]]
    kinds = sorted({e["kind"] for e in ev})
    by_kind = {}
    for k in kinds:
        ek = [e for e in ev if e["kind"] == k]
        dk = [e["delay_rows"] for e in ek if e["detected"]]
        by_kind[k] = {"events": len(ek), "detected": len(dk),
                      "median_delay_rows": float(np.median(dk)) if dk else None}
    normal = sum(p["normal_rows"] for p in per)

    def mean(key):
        v = [p[key] for p in per if p[key] is not None]
        return float(np.mean(v)) if v else None

    return {"streams": len(per), "roc_auc_mean": mean("roc_auc"), "pr_auc_mean": mean("pr_auc"),
            "events": len(ev), "events_detected": len(det),
            "event_detection_rate": len(det) / len(ev) if ev else None,
            "median_delay_rows": float(np.median([e["delay_rows"] for e in det])) if det
            else None,
            "false_alarm_rate": sum(p["false_alarm_rate"] * p["normal_rows"] for p in per)
            / normal if normal else 0.0,
            "fp_runs": int(sum(p["fp_runs"] for p in per)),
            "fp_runs_per_stream": float(np.mean([p["fp_runs"] for p in per])),
            "by_kind": by_kind}


def run_seed(seed: int, count: int, names: list[str], say=print) -> dict[str, list[dict]]:
    per: dict[str, list[dict]] = {n: [] for n in names}
    spec_csv = CsvSpec(asset="csv", timestamp_col="timestamp", label_cols=["label"])
    with tempfile.TemporaryDirectory(prefix="tocsin-univar-") as tmp:
        paths = uv.write_library(tmp, seed, count)
        docs = {d["file"]: d for d in json.loads((Path(tmp) / "streams.json").read_text())}
        for p in paths:
            t = load_table(p, spec_csv, label_col="label")
            k = train_count(len(t.ts), None, 0.15, str(p))
            step = clock(t.ts).period_s or 1.0
            res = eval_table_suite(t, p.name, short_spec(step), names, {RULE: RULES[RULE]}, k)
            spans = [{"kind": a["kind"], "a": a["label"][0] - k, "b": a["label"][1] - k}
                     for a in docs[p.name]["anomalies"]]
            for n in names:
                r = res[(n, RULE)]
                per[n].append(stream_metrics(t.labels[k:], r.rows["pred"][k:], r.metrics,
                                             spans))
            say(f"  seed {seed} {p.name} done")
    return per


def table(summary: dict[str, dict]) -> str:
    head = ("| detector | ROC AUC | PR AUC | events found | median delay (rows) | false alarms "
            "% (normal rows) | FP runs (per stream) |\n|---|---|---|---|---|---|---|")
    rows = []
    for n, s in summary.items():
        rows.append(f"| {n} | {s['roc_auc_mean']:.3f} | {s['pr_auc_mean']:.3f} | "
                    f"{s['events_detected']}/{s['events']} | {s['median_delay_rows']} | "
                    f"{100 * s['false_alarm_rate']:.2f} | {s['fp_runs']} "
                    f"({s['fp_runs_per_stream']:.1f}) |")
    return "\n".join([head, *rows])


def kinds_table(summary: dict[str, dict]) -> str:
    kinds = sorted({k for s in summary.values() for k in s["by_kind"]})
    head = "| detector | " + " | ".join(kinds) + " |\n|---|" + "---|" * len(kinds)
    rows = [f"| {n} | " + " | ".join(
        f"{s['by_kind'][k]['detected']}/{s['by_kind'][k]['events']}" if k in s["by_kind"]
        else "" for k in kinds) + " |" for n, s in summary.items()]
    return "\n".join([head, *rows])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--streams", type=int, default=30)
    ap.add_argument("--sweep", action="store_true", help="also the window variants")
    ap.add_argument("--json", default=str(RESULTS / "detection_univariate.json"))
    a = ap.parse_args()
    names = NAMES + (add_variants() if a.sweep else [])
    seeds = [int(s) for s in a.seeds.split(",")]
    t0 = time.time()
    import subprocess
    from datetime import datetime, timezone

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=Path(__file__).parent).stdout.strip()
    out = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "commit": commit,
           "data": "GENERATED (tocsin.connectors.simulator.univariate)", "rule": RULE,
           "train_fraction": 0.15, "streams_per_seed": a.streams, "detectors": names,
           "dev_seeds": [1, 2], "check_seed": 3, "load_average": os.getloadavg(), "seeds": {}}
    pooled: dict[str, list[dict]] = {n: [] for n in names}
    per_seed: dict[int, dict[str, list[dict]]] = {}
    for seed in seeds:
        per = per_seed[seed] = run_seed(seed, a.streams, names)
        summ = {n: summarise(v) for n, v in per.items()}
        out["seeds"][str(seed)] = summ
        for n in names:
            pooled[n] += per[n]
        print(f"\nseed {seed}\n" + table(summ) + "\n\n" + kinds_table(summ))
    dev = [s for s in seeds if s in (1, 2)]
    if dev and len(dev) < len(seeds):
        out["dev_seeds_pooled"] = {n: summarise([p for s in dev for p in per_seed[s][n]])
                                   for n in names}
    out["pooled"] = {n: summarise(v) for n, v in pooled.items()}
    out["seconds"] = round(time.time() - t0, 1)
    print("\npooled over seeds " + a.seeds + "\n" + table(out["pooled"]))
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(out, indent=1))
    print(f"wrote {a.json} ({out['seconds']} s, load {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
