"""Detection metrics over labelled rows: the numbers `tocsin eval` reports.

``labels`` and ``pred`` are 0/1 per row (1 = fault / alarm). Definitions:
precision TP/(TP+FP); recall (detection rate) TP/(TP+FN); F1; false-alarm rate FP/(FP+TN)
(alarms on normal rows); missed-alarm rate FN/(TP+FN) = 1 - recall; detection delay: time
from the first fault row to the first alarm at or after it (None when never detected). Rows
without a decision yet (a model still warming up) count as "no alarm".
"""

from __future__ import annotations

import numpy as np


def metrics(labels: np.ndarray, pred: np.ndarray, ts_s: np.ndarray | None = None) -> dict:
    labels = np.asarray(labels).astype(bool)
    pred = np.asarray(pred).astype(bool)
    if labels.shape != pred.shape:
        raise ValueError(f"labels {labels.shape} and predictions {pred.shape} differ")
    tp = int((labels & pred).sum())
    fp = int((~labels & pred).sum())
    fn = int((labels & ~pred).sum())
    tn = int((~labels & ~pred).sum())
    prec = tp / (tp + fp) if tp + fp else 0.0
    rec = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
    out = {"rows": int(labels.size), "fault_rows": tp + fn, "tp": tp, "fp": fp, "fn": fn,
           "tn": tn, "precision": prec, "recall": rec, "f1": f1,
           "false_alarm_rate": fp / (fp + tn) if fp + tn else 0.0,
           "missed_alarm_rate": fn / (tp + fn) if tp + fn else 0.0,
           "delay_rows": None, "delay_s": None}
    onsets = np.flatnonzero(labels)
    if onsets.size:
        first = onsets[0]
        hits = np.flatnonzero(pred[first:] & labels[first:])
        if hits.size:
            out["delay_rows"] = int(hits[0])
            if ts_s is not None:
                out["delay_s"] = float(ts_s[first + hits[0]] - ts_s[first])
    return out


def persist(pred: np.ndarray, k: int) -> np.ndarray:
    """Alarm only after ``k`` consecutive positive rows (k = 1: unchanged)."""
    pred = np.asarray(pred).astype(bool)
    if k <= 1:
        return pred
    c = np.convolve(pred.astype(int), np.ones(k, dtype=int), mode="full")[:pred.size]
    return c >= k
