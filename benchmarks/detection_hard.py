"""The simulator's harder fault library (SIMULATED data): every detector and ensemble under
every decision rule, trained on each scenario's first 400 normal rows (short training).

Each scenario (``tocsin.connectors.simulator.hard``): a load that wanders, mode changes
(label 0: every alarm on them is a false alarm), then one fault (a process fault of the plant
library at 25-50 % of its size with a 60-180 s ramp, or a sensor drift, noise, stuck,
flatline or missing value) for 200-350 s, then normal rows and another mode change. One row
per second. Metrics on the rows after the training part only, pooled over scenarios.
No threshold is fitted on test rows: every member is calibrated on its own out-of-fold
scores of the training rows and the rules are fixed numbers on the surprise scale.

Usage: python -m benchmarks.detection_hard [--kinds pump,motor,press,plant] [--seeds 1,2]
       [--train-rows 400] [--names q_quality,mode_resid,...] [--json FILE] [--markdown FILE]

Also prints (and writes under "fa_causes") the false alarms by cause: after a fault ends,
by the time since the latest mode-change start.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from tocsin.connectors.model_sources import Table
from tocsin.connectors.simulator import hard
from tocsin.detectors.decision import RULES as RULES_BY_KEY
from tocsin.detectors.evaluation import pooled
from tocsin.offline.plant_eval import eval_table_suite, short_spec

RULE_NAMES = {k: r.name for k, r in RULES_BY_KEY.items()}
RULES = {RULE_NAMES[k]: RULES_BY_KEY[k] for k in ("raw", "s4", "s2_2of3", "3of5", "ewma25")}
NAMES = ["pca_t2", "pca_q", "knn", "residual_mean", "residual_var", "missing", "stuck",
         "pca_t2q", "q_quality", "q_resid", "ensemble", "mode_q", "mode_mean", "mode_var",
         "mode_resid", "diff_var", "mode_noise"]
# false alarms by where they fall (seconds): after a fault ends, after a mode-change start
CAUSES = ("after_fault_10", "after_fault_60", "mode_0_60", "mode_60_120", "mode_after_120",
          "other")


def fa_causes(pred: np.ndarray, labels: np.ndarray, t_s: np.ndarray, episodes: list[dict],
              skip: int) -> dict[str, int]:
    """Count the false alarms (alarm on a label-0 row after the training head) by cause:
    within 10 s / 10-60 s after a fault ends (window features and physical recovery), else
    by the time since the latest mode-change start (0-60 s, 60-120 s, later), else other."""
    out = dict.fromkeys(CAUSES, 0)
    ends = np.flatnonzero(np.diff(labels.astype(int)) == -1) + 1
    starts = sorted(e["start"] for e in episodes if e["type"] == "mode change")
    for i in np.flatnonzero(pred & (labels == 0)):
        if i < skip:
            continue
        past = ends[ends <= i]
        since_end = t_s[i] - t_s[past[-1]] if past.size else np.inf
        if since_end < 10:
            out["after_fault_10"] += 1
            continue
        if since_end < 60:
            out["after_fault_60"] += 1
            continue
        ms = [t_s[i] - m for m in starts if m <= t_s[i]]
        if not ms:
            out["other"] += 1
        else:
            dt = min(ms)
            out["mode_0_60" if dt < 60 else "mode_60_120" if dt < 120 else
                "mode_after_120"] += 1
    return out
SLOW = ["mahalanobis", "all"]  # MCD refits per fold: minutes per scenario on a loaded machine
RESULTS = Path(__file__).resolve().parent / "results"


def run(kinds: list[str], seeds: list[int], train_rows: int, lags: int = 0, say=print,
        names: list[str] = NAMES) -> dict:
    per: dict[tuple[str, str], list[dict]] = {}
    cases: dict[str, dict[tuple[str, str], dict]] = {}
    causes: dict[str, dict[str, int]] = {}
    for kind in kinds:
        for case in hard.cases(kind):
            for seed in seeds:
                r = hard.run(hard.random_scenario(kind, case, seed, train_rows))
                t = Table(r.columns, r.ts, r.values, r.labels)
                res = eval_table_suite(t, r.name, short_spec(1.0), names, RULES, train_rows,
                                       lags=lags)
                t_s = (r.ts - r.ts[0]) / 1e9
                normal = int((r.labels[train_rows:] == 0).sum())
                for key, v in res.items():
                    per.setdefault(key, []).append(v.metrics)
                    c = causes.setdefault(" | ".join(key), {"normal_rows": 0, **dict.fromkeys(CAUSES, 0)})
                    c["normal_rows"] += normal
                    for k, n in fa_causes(v.rows["pred"].astype(bool), r.labels, t_s,
                                          r.episodes, train_rows).items():
                        c[k] += n
                    cases.setdefault(f"{kind}/{case}", {}).setdefault(key, []).append(v.metrics)
            say(f"  {kind}/{case} done")
    grid = {f"{d} | {rn}": pooled(ms) for (d, rn), ms in per.items()}
    by_case = {c: {f"{d} | {rn}": pooled(ms) for (d, rn), ms in v.items()}
               for c, v in cases.items()}
    return {"grid": grid, "cases": by_case, "fa_causes": causes}


def cause_table(causes: dict) -> list[str]:
    """Percentage points of the normal rows, per cause, per detector | rule."""
    out = ["| detector | rule | " + " | ".join(CAUSES) + " |",
           "|---|---|" + "---|" * len(CAUSES)]
    for key, c in causes.items():
        d, rn = key.split(" | ")
        n = max(c["normal_rows"], 1)
        out.append(f"| {d} | {rn} | " + " | ".join(f"{100 * c[k] / n:.2f}" for k in CAUSES)
                   + " |")
    return out


def _auc(p: dict, k: str) -> str:
    return "" if p.get(k) is None else f"{p[k]:.3f}"


def grid_table(grid: dict) -> list[str]:
    out = ["| detector | rule | recall % | false alarms % | events found | ROC AUC | PR AUC |",
           "|---|---|---|---|---|---|---|"]
    for key, p in grid.items():
        d, rn = key.split(" | ")
        out.append(f"| {d} | {rn} | {100 * p['recall']:.1f} | {100 * p['false_alarm_rate']:.2f}"
                   f" | {p['events_detected']}/{p['events']} | {_auc(p, 'roc_auc')} | "
                   f"{_auc(p, 'pr_auc')} |")
    return out


def case_table(cases: dict, key: str) -> list[str]:
    out = [f"Per case, {key}:", "", "| case | recall % | false alarms % | events found |",
           "|---|---|---|---|"]
    for c, v in cases.items():
        p = v[key]
        rec = "–" if not p["fault_rows"] else f"{100 * p['recall']:.1f}"
        out.append(f"| {c} | {rec} | {100 * p['false_alarm_rate']:.2f} | "
                   f"{p['events_detected']}/{p['events']} |")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kinds", default="pump,motor,press,plant")
    ap.add_argument("--seeds", default="1,2")
    ap.add_argument("--train-rows", type=int, default=400)
    ap.add_argument("--lags", type=int, default=0, help="dynamic PCA: rows of past beside each")
    ap.add_argument("--show", default="q_quality | s>2, 2/3", help="the row shown per case")
    ap.add_argument("--slow", action="store_true", help="also mahalanobis (MCD) and all")
    ap.add_argument("--names", default=None, help="comma-separated detectors (default: all)")
    ap.add_argument("--json", type=Path, default=RESULTS / "detection_hard.json")
    ap.add_argument("--markdown", type=Path, default=None)
    a = ap.parse_args()
    t0 = time.perf_counter()
    res = run(a.kinds.split(","), [int(s) for s in a.seeds.split(",")], a.train_rows, a.lags,
              names=(a.names.split(",") if a.names else NAMES + (SLOW if a.slow else [])))
    lines = [f"### Hard library, kinds {a.kinds}, seeds {a.seeds}, first {a.train_rows} rows "
             f"train, lags {a.lags}", ""] + grid_table(res["grid"]) + [""] + case_table(res["cases"], a.show) + ["", "False alarms by cause (points of the normal rows):", ""] + cause_table(res["fa_causes"])
    print("\n".join(lines))
    print(f"({time.perf_counter() - t0:.0f} s)")
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps({"kinds": a.kinds, "seeds": a.seeds,
                                  "train_rows": a.train_rows, **res}, separators=(",", ":"), default=float) + "\n")
    if a.markdown:
        a.markdown.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
