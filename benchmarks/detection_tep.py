"""Tennessee Eastman (SIMULATED chemical-plant data): false alarms and per-fault recall of
every detector under every decision rule, beside the classical PCA T²/Q baseline.

Protocol (no test labels used for fitting or calibration): train on the first N rows of
``d00.dat`` (N = 500 and the short-training case N = 400); calibrate each detector on its
own out-of-fold scores of those rows (the LSTM-AE: the last 20 % held back); test on
``d00_te.dat`` (normal: every alarm is a false alarm) and ``dNN_te.dat`` (fault NN from row
161: recall = alarmed share of rows 161-960; delay = rows from 161 to the first alarm).
Rows are the raw 52 measurements, one per 3 minutes. Baseline: PCA on the standardised
training rows with 90 % variance, T² and Q against their textbook 99 % limits.

N = 500 is the full-training protocol (d00.dat has 500 rows), N = 400 the short one. Every
row of the grid (detector x decision rule), per fault, goes to the JSON file; the printed
per-fault tables show every detector under each rule, beside both baselines.

Usage: python -m benchmarks.detection_tep [--data DIR] [--rows 500,400] [--no-lstm]
       [--no-iforest] [--json benchmarks/results/detection_tep.json] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from tocsin.detectors.calibrated import Calibrated, fit_calibrated
from tocsin.detectors.calibration import combine
from tocsin.detectors.covariance import MahalanobisDetector
from tocsin.detectors.decision import DecisionRule
from tocsin.detectors.knn import KNNDetector
from tocsin.detectors.pca import PCADetector

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "tennessee-eastman"
ONSET = 160  # 0-based first fault row
RULES = [DecisionRule(2.0), DecisionRule(3.0), DecisionRule(2.0, k=2, n=3),
         DecisionRule(2.0, alpha=0.3), DecisionRule(2.5, alpha=0.3)]
RESULTS = Path(__file__).resolve().parent / "results"
HARD = (3, 9, 15)
STATS: dict[int, dict] = {}  # the baseline PCA's statistics per test file (for matched rows)  # known to be (nearly) undetectable from these measurements


def load(path: Path) -> np.ndarray:
    x = np.loadtxt(path)
    return x.T if x.shape[0] == 52 and x.shape[1] != 52 else x  # some copies are transposed


def load_all(data: Path):
    train = load(data / "d00.dat")
    tests = {i: load(data / f"d{i:02d}_te.dat") for i in range(22)}
    return train, tests


def summarise(alarm: dict[int, np.ndarray]) -> dict:
    faults = [i for i in alarm if i]
    rec = {i: float(alarm[i][ONSET:].mean()) for i in faults}
    delay = {}
    for i in faults:
        hit = np.flatnonzero(alarm[i][ONSET:])
        delay[i] = int(hit[0]) if hit.size else None
    return {"fa": float(alarm[0].mean()), "recall": rec, "delay": delay,
            "mean": float(np.mean(list(rec.values()))),
            "easy": float(np.mean([rec[i] for i in (1, 2, 4, 6, 7)])),
            "hard": float(np.mean([rec[i] for i in HARD]))}


def matched_baseline(st: dict[int, dict], fa: float) -> dict:
    """PCA T² or Q with both limits moved to the same false-alarm rate as a contender:
    each statistic's limit at its own (1 - fa/2) quantile on the NORMAL test file d00_te
    (so the union alarms on at most ``fa`` of those rows). This uses the normal test file
    for the baseline only: an advantage to the baseline, so a contender that matches it
    per fault does so at equal false alarms (the textbook Q limit does not hold on these
    files, and a baseline with 18-24 % false alarms is not a fair yardstick)."""
    q = 1.0 - max(fa, 1e-4) / 2.0
    lt, lq = (float(np.quantile(st[0][k], q)) for k in ("t2_ratio", "q_ratio"))
    return summarise({i: (s["t2_ratio"] > lt) | (s["q_ratio"] > lq) for i, s in st.items()})


def baselines(x: np.ndarray, tests) -> dict[str, dict]:
    base = PCADetector(variance=0.9, alpha=0.99).fit(x)
    st = {i: base.statistics(t) for i, t in tests.items()}
    STATS.clear()
    STATS.update(st)
    return {"PCA T² or Q at 5 % false alarms": matched_baseline(st, 0.05), "PCA T² (99 % limit)": summarise({i: s["t2_ratio"] > 1 for i, s in st.items()}),
            "PCA Q (99 % limit)": summarise({i: s["q_ratio"] > 1 for i, s in st.items()}),
            "PCA T² or Q (99 %)": summarise({i: (s["t2_ratio"] > 1) | (s["q_ratio"] > 1)
                                             for i, s in st.items()})}


def detectors(x: np.ndarray, lstm: bool, say, iforest: bool = True) -> dict[str, Calibrated]:
    makers = {"pca_t2": (lambda: PCADetector(stat="t2"), "oof"),
              "pca_q": (lambda: PCADetector(stat="q"), "oof"),
              "mahalanobis": (lambda: MahalanobisDetector(), "oof"),
              "knn": (lambda: KNNDetector(), "oof")}
    from tocsin.models.detectors import IsolationForestDetector, LSTMAEDetector

    if iforest:
        makers["iforest"] = (lambda: IsolationForestDetector(), "oof")
    if lstm:
        makers["lstm_ae"] = (lambda: LSTMAEDetector(seq_len=10, hidden=32), "holdout")
    out = {}
    for name, (make, how) in makers.items():
        t0 = time.perf_counter()
        out[name] = fit_calibrated(make, x, how)
        extra = ""
        curve = getattr(out[name].detector, "curve", None)
        if curve is not None:
            extra = (f", {len(curve.train)} epochs (best {curve.best_epoch}, {curve.stopped}),"
                     f" train loss {curve.train[0]:.3f} -> {curve.train[-1]:.3f}, validation"
                     f" {curve.val[0]:.3f} -> {min(curve.val):.3f}")
        say(f"  {name}: fitted + calibrated in {time.perf_counter() - t0:.1f} s "
            f"(GPD xi {out[name].calibration.xi:.2f}){extra}")
    return out


def run(x, tests, lstm: bool, say, iforest: bool = True) -> dict[str, dict]:
    rows = baselines(x, tests)
    cal = detectors(x, lstm, say, iforest)
    combos = {n: [n] for n in cal}
    combos["pca_t2+pca_q"] = ["pca_t2", "pca_q"]
    combos["pca_t2+pca_q+mahalanobis"] = ["pca_t2", "pca_q", "mahalanobis"]
    combos["pca_t2+pca_q+knn"] = ["pca_t2", "pca_q", "knn"]
    combos["all"] = list(cal)
    sur = {n: {i: c.surprise(t) for i, t in tests.items()} for n, c in cal.items()}
    for cname, members in combos.items():
        s = {i: sur[members[0]][i] if len(members) == 1 else
             combine({m: sur[m][i] for m in members}) for i in tests}
        for rule in RULES:
            rows[f"{cname} — {rule.name}"] = summarise({i: rule.apply(v) for i, v in s.items()})
    return rows


def table(rows: dict[str, dict], ref: str) -> list[str]:
    out = ["| detector — decision rule | false alarms d00_te | mean recall 21 faults | "
           "faults 1,2,4,6,7 | faults 3,9,15 | faults >= T² baseline | "
           "faults >= T² or Q at the same false alarms | median delay (rows) |",
           "|---|---|---|---|---|---|---|---|"]
    base = rows[ref]["recall"]
    for name, r in rows.items():
        ge = sum(r["recall"][i] >= base[i] - 1e-9 for i in base)
        same = matched_baseline(STATS, r["fa"])["recall"] if STATS else {}
        ge2 = sum(r["recall"][i] >= same[i] - 1e-9 for i in same)
        ds = [d for d in r["delay"].values() if d is not None]
        out.append(f"| {name} | {100 * r['fa']:.1f} % | {100 * r['mean']:.1f} % | "
                   f"{100 * r['easy']:.1f} % | {100 * r['hard']:.1f} % | {ge}/21 | {ge2}/21 | "
                   f"{np.median(ds) if ds else '-'} |")
    return out


def per_fault(rows: dict[str, dict], names: list[str]) -> list[str]:
    out = ["| fault | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for i in range(1, 22):
        out.append(f"| {i} | " + " | ".join(f"{100 * rows[n]['recall'][i]:.1f}"
                                            for n in names) + " |")
    out.append("| false alarms d00_te | " + " | ".join(f"{100 * rows[n]['fa']:.1f}"
                                                       for n in names) + " |")
    return out


def per_fault_by_rule(rows: dict[str, dict], rule: str) -> list[str]:
    """Per fault, every detector under one decision rule, beside the two baselines."""
    names = ["PCA T² (99 % limit)", "PCA T² or Q (99 %)"]
    names += [n for n in rows if n.endswith(f" — {rule}")]
    short = [n.replace(f" — {rule}", "") for n in names]
    out = [f"Per fault, rule {rule} (recall %, last row: false alarms % on d00_te):", "",
           "| fault | " + " | ".join(short) + " |", "|---|" + "---|" * len(names)]
    out += per_fault(rows, names)[2:]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--rows", default="500,400")
    ap.add_argument("--no-lstm", action="store_true")
    ap.add_argument("--no-iforest", action="store_true")
    ap.add_argument("--json", type=Path, default=RESULTS / "detection_tep.json")
    ap.add_argument("--default", default="pca_t2+pca_q+mahalanobis — s>2, 2/3",
                    help="the row shown per fault beside the baselines")
    ap.add_argument("--markdown", type=Path, default=None)
    a = ap.parse_args()
    train, tests = load_all(a.data)
    lines, doc = [], {}
    for n in [int(v) for v in a.rows.split(",")]:
        print(f"training rows: first {n} of d00.dat")
        rows = run(train[:n], tests, not a.no_lstm, print, not a.no_iforest)
        doc[f"train_rows_{n}"] = rows
        block = [f"### Training on the first {n} rows of d00.dat", ""]
        block += table(rows, "PCA T² (99 % limit)") + [""]
        names = ["PCA T² (99 % limit)", "PCA T² or Q (99 %)", a.default]
        block += per_fault(rows, [m for m in names if m in rows]) + [""]
        for rule in RULES:
            block += per_fault_by_rule(rows, rule.name) + [""]
        print("\n".join(block))
        lines += block
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(doc, separators=(",", ":"), default=float) + "\n")
    if a.markdown:
        a.markdown.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
