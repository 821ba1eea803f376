"""LSTM-AE before/after, side by side on Tennessee Eastman (SIMULATED chemical-plant data),
raw rows (each step of a window is one raw sample of the 52 measurements, 3 min apart).

Variants (same rows, windows of ``--seq-len`` rows, hidden 32, seed 0):

- ``before``: the shape and budget `tocsin train` had before #21: one code per window (the
  encoder's last hidden state, repeated), 12 epochs, Adam 3e-3, batches of 64;
- ``before + early stopping``: the same shape under the new loop (held-out part, LR halving
  on plateaus, best epoch restored): what the last session tried;
- ``after``: the per-step bottleneck (width from the data: the components carrying 90 % of
  the variance) under the new loop.

Protocol (no test labels used for fitting or calibration): train on the first ``--rows`` rows
of d00.dat (the last 20 % held back: the loop's early stopping uses the last 20 % of the
training windows, the calibration the held-back rows), tail-fit calibration of the held-back
scores, surprise > 2 with 2 of 3 rows; false alarms on d00_te, recall on the 21 fault files
from row 161. "In the ensemble": Bonferroni with the calibrated PCA T², PCA Q and
Mahalanobis detectors (benchmarks.detection_tep), same rule.

Usage: python -m benchmarks.lstm_ae_training [--rows 500,400] [--seq-len 10]
"""

from __future__ import annotations

import argparse
import time

from benchmarks.detection_tep import DEFAULT_DATA, baselines, load_all, summarise
from tocsin.detectors.calibrated import Calibrated, fit_calibrated
from tocsin.detectors.calibration import combine
from tocsin.detectors.covariance import MahalanobisDetector
from tocsin.detectors.decision import DecisionRule
from tocsin.detectors.pca import PCADetector
from tocsin.models.detectors import LSTMAEDetector

RULE = DecisionRule(2.0, k=2, n=3)
VARIANTS = {
    "before": dict(arch="sequence", epochs=12, patience=10 ** 6, min_steps=0, batch=64),
    "before + early stopping": dict(arch="sequence"),
    "after": dict(arch="step"),
}


def fit_variant(x, seq_len, kw) -> tuple[Calibrated, float]:
    t0 = time.perf_counter()
    cal = fit_calibrated(lambda: LSTMAEDetector(seq_len=seq_len, hidden=32, **kw), x,
                         "holdout")
    return cal, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", default="500,400")
    ap.add_argument("--seq-len", type=int, default=10)
    a = ap.parse_args()
    train, tests = load_all(DEFAULT_DATA)
    for n in [int(v) for v in a.rows.split(",")]:
        x = train[:n]
        base = baselines(x, tests)["PCA T² (99 % limit)"]["recall"]
        peers = {nm: fit_calibrated(mk, x, "oof") for nm, mk in (
            ("pca_t2", lambda: PCADetector(stat="t2")), ("pca_q", lambda: PCADetector(stat="q")),
            ("mahalanobis", lambda: MahalanobisDetector()))}
        peer_s = {nm: {i: c.surprise(t) for i, t in tests.items()} for nm, c in peers.items()}
        rows = {"PCA T²+Q+Mahalanobis (no LSTM-AE)": summarise(
            {i: RULE.apply(combine({k: v[i] for k, v in peer_s.items()})) for i in tests})}
        print(f"\n### first {n} rows of d00.dat, windows of {a.seq_len} rows, {RULE.name}\n")
        print("| variant | epochs (best) | seconds | held-out loss / mean-only | learned |")
        print("|---|---|---|---|---|")
        for name, kw in VARIANTS.items():
            cal, secs = fit_variant(x, a.seq_len, kw)
            c = cal.detector.curve
            print(f"| {name} | {len(c.train)} ({c.best_epoch}) | {secs:.0f} | "
                  f"{c.best_val:.3f} / {c.mean_only:.3f} | {100 * c.learned:.0f} % |")
            s = {i: cal.surprise(t) for i, t in tests.items()}
            rows[f"LSTM-AE {name}"] = summarise({i: RULE.apply(v) for i, v in s.items()})
            rows[f"ensemble with LSTM-AE {name}"] = summarise(
                {i: RULE.apply(combine(dict({k: v[i] for k, v in peer_s.items()},
                                            lstm_ae=s[i]))) for i in tests})
        print("\n| detector | false alarms d00_te | mean recall | faults >= T² baseline |")
        print("|---|---|---|---|")
        for name, r in rows.items():
            ge = sum(r["recall"][i] >= base[i] - 1e-9 for i in base)
            print(f"| {name} | {100 * r['fa']:.1f} % | {100 * r['mean']:.1f} % | {ge}/21 |")
        print("\nper-fault recall (%): fault | " + " | ".join(rows))
        for i in range(1, 22):
            print(f"| {i} | " + " | ".join(f"{100 * r['recall'][i]:.1f}" for r in rows.values())
                  + f" | (T² {100 * base[i]:.1f})")


if __name__ == "__main__":
    main()
