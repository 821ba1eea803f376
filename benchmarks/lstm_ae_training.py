"""LSTM-AE training before/after, side by side on Tennessee Eastman (SIMULATED) raw rows.

Before: ``lstm_ae.train`` as `tocsin train` runs it (fixed epochs, Adam 3e-3, no validation).
After: ``ae_training.fit`` (early stopping on the last 20 % of the training sequences, Adam
from 1e-2 halved on plateaus, best epoch restored). Both: first N rows of d00.dat, windows of
10 rows, hidden 32, the same seed; the score is calibrated on the held-back 20 % (tail fit)
and tested on d00_te (false alarms) and the 21 fault files (recall from row 161), surprise 2.

Usage: python -m benchmarks.lstm_ae_training [--rows 400] [--epochs-before 12]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks.detection_tep import DEFAULT_DATA, ONSET, load_all
from tocsin.detectors.calibration import fit_tail
from tocsin.detectors.decision import DecisionRule
from tocsin.detectors.model_input import sequences
from tocsin.detectors.protocol import standardizer, zscore
from tocsin.models import ae_training, lstm_ae


def scores(model, z: np.ndarray, seq_len: int) -> np.ndarray:
    pad = np.repeat(z[:1], seq_len - 1, axis=0)
    seqs = sequences(np.concatenate([pad, z]).astype(np.float32), seq_len)
    return lstm_ae.errors(model, seqs)[:, -1, :].astype(np.float64).mean(axis=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=400)
    ap.add_argument("--epochs-before", type=int, default=12)
    ap.add_argument("--seq-len", type=int, default=10)
    a = ap.parse_args()
    train, tests = load_all(DEFAULT_DATA)
    x = train[:a.rows]
    cut = int(round(len(x) * 0.8))
    mean, std = standardizer(x[:cut])
    z = {k: zscore(v, mean, std, 20.0) for k, v in tests.items()}
    zt, zc = zscore(x[:cut], mean, std, 20.0), zscore(x[cut:], mean, std, 20.0)
    seqs = sequences(zt.astype(np.float32), a.seq_len)
    val = sequences(zc.astype(np.float32), a.seq_len)
    runs = {}
    t0 = time.perf_counter()
    old = lstm_ae.train(seqs, hidden=32, epochs=a.epochs_before, seed=0, threads=1)
    runs["before"] = (old.model, old.losses, time.perf_counter() - t0)
    t0 = time.perf_counter()
    net, curve, _ = ae_training.fit(lstm_ae.build(x.shape[1], 32), seqs, seed=0, threads=1)
    runs["after"] = (net, curve.train, time.perf_counter() - t0)
    print(f"after: {len(curve.train)} epochs, best {curve.best_epoch} ({curve.stopped}); "
          f"validation curve {[round(v, 3) for v in curve.val]}")
    rule = DecisionRule(2.0)
    print("| training | epochs | seconds | train loss first -> last | held-back loss | "
          "false alarms d00_te | mean recall |")
    print("|---|---|---|---|---|---|---|")
    for name, (model, losses, secs) in runs.items():
        held = float(lstm_ae.errors(model, val).mean())
        cal = fit_tail(scores(model, zc, a.seq_len))
        alarm = {k: rule.apply(cal.surprise(scores(model, v, a.seq_len))) for k, v in z.items()}
        rec = np.mean([alarm[k][ONSET:].mean() for k in alarm if k])
        print(f"| {name} | {len(losses)} | {secs:.0f} | {losses[0]:.3f} -> {losses[-1]:.3f} | "
              f"{held:.3f} | {100 * alarm[0].mean():.1f} % | {100 * rec:.1f} % |")


if __name__ == "__main__":
    main()
