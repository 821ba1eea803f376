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


def events(labels: np.ndarray) -> list[tuple[int, int]]:
    """Contiguous runs of fault rows as (first, last + 1)."""
    lab = np.asarray(labels).astype(bool).astype(np.int8)
    d = np.diff(np.r_[0, lab, 0])
    return list(zip(np.flatnonzero(d == 1).tolist(), np.flatnonzero(d == -1).tolist()))


def event_metrics(labels: np.ndarray, pred: np.ndarray, ts_s: np.ndarray | None = None
                  ) -> dict:
    """Event-wise: an event (a run of fault rows) is detected when any of its rows alarms;
    its delay is the time from its first row to its first alarm."""
    pred = np.asarray(pred).astype(bool)
    ev = events(labels)
    delays_rows, delays_s = [], []
    for a, b in ev:
        hit = np.flatnonzero(pred[a:b])
        if hit.size:
            delays_rows.append(int(hit[0]))
            if ts_s is not None:
                delays_s.append(float(ts_s[a + hit[0]] - ts_s[a]))
    return {"events": len(ev), "events_detected": len(delays_rows),
            "event_detection_rate": len(delays_rows) / len(ev) if ev else None,
            "event_delay_rows_median": float(np.median(delays_rows)) if delays_rows else None,
            "event_delay_s_median": float(np.median(delays_s)) if delays_s else None}


def ranking_metrics(labels: np.ndarray, score: np.ndarray) -> dict:
    """Threshold-free: ROC AUC and PR AUC (average precision) of a continuous score; rows
    without a score rank lowest. None when only one class is present."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    lab = np.asarray(labels).astype(bool)
    s = np.nan_to_num(np.asarray(score, dtype=np.float64), nan=-np.inf)
    s = np.where(np.isneginf(s), np.nanmin(np.where(np.isfinite(s), s, np.inf)) - 1.0
                 if np.isfinite(s).any() else 0.0, s)
    if lab.all() or not lab.any():
        return {"roc_auc": None, "pr_auc": None}
    return {"roc_auc": float(roc_auc_score(lab, s)), "pr_auc": float(average_precision_score(
        lab, s))}


def full_metrics(labels: np.ndarray, pred: np.ndarray, score: np.ndarray,
                 ts_s: np.ndarray | None = None) -> dict:
    """Point-wise, event-wise and threshold-free metrics of one file (rows to evaluate only:
    the caller drops the training rows)."""
    out = metrics(labels, pred, ts_s)
    out.update(event_metrics(labels, pred, ts_s))
    out.update(ranking_metrics(labels, score))
    return out


def pooled(per_file: list[dict]) -> dict:
    """Totals over files: point-wise counts summed (so a long file weighs more), events
    pooled; AUCs are the mean over files that have both classes (scores of different files
    are not pooled into one ranking)."""
    keys = ("tp", "fp", "fn", "tn")
    tot = {k: sum(m[k] for m in per_file) for k in keys}
    tp, fp, fn, tn = (tot[k] for k in keys)
    prec = tp / (tp + fp) if tp + fp else 0.0
    rec = tp / (tp + fn) if tp + fn else 0.0
    out = dict(tot, rows=sum(m["rows"] for m in per_file), fault_rows=tp + fn,
               precision=prec, recall=rec,
               f1=2 * prec * rec / (prec + rec) if prec + rec else 0.0,
               false_alarm_rate=fp / (fp + tn) if fp + tn else 0.0,
               missed_alarm_rate=fn / (tp + fn) if tp + fn else 0.0,
               delay_rows=None, delay_s=None)
    ev = sum(m.get("events", 0) for m in per_file)
    det = sum(m.get("events_detected", 0) for m in per_file)
    out.update(events=ev, events_detected=det,
               event_detection_rate=det / ev if ev else None)
    for k in ("roc_auc", "pr_auc"):
        v = [m[k] for m in per_file if m.get(k) is not None]
        out[k] = float(np.mean(v)) if v else None
    d = [m["delay_s"] for m in per_file if m.get("delay_s") is not None]
    out["delay_s_median"] = float(np.median(d)) if d else None
    return out
