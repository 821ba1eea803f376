"""Fraud detection quality and decision thresholds: pure numpy/scikit-learn, no I/O.

The measures a risk team reads (Le Borgne et al., *Reproducible Machine Learning for Credit
Card Fraud Detection*, ch. 4): ROC AUC and average precision over transactions, recall at a
stated false-positive rate, and **card precision@k per day** -- each day, the k cards with the
highest score (a card's score is its highest transaction score that day) are what investigators
can check; the measure is the share of them that really had fraud that day, averaged over days.

Known-compromised cards: once a card has a fraud label *reported* (a chargeback), it is blocked
and investigators no longer need a model to find it. With ``exclude_known`` a card is dropped
from every day after (strictly: from the day after the report time on) its first report.

Thresholds are chosen on a validation period, never on the test period: ``review`` so that the
expected number of alerts per day stays within a budget, ``decline`` at the lowest score whose
precision on validation reaches a target.
"""

from __future__ import annotations

import numpy as np

DAY = 86_400 * 10**9


def roc_ap(y: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    from sklearn.metrics import average_precision_score, roc_auc_score

    if len(y) == 0 or y.min() == y.max():
        return float("nan"), float("nan")
    return float(roc_auc_score(y, p)), float(average_precision_score(y, p))


def recall_at_fpr(y: np.ndarray, p: np.ndarray, fpr_max: float = 0.01) -> float:
    from sklearn.metrics import roc_curve

    if len(y) == 0 or y.min() == y.max():
        return float("nan")
    fpr, tpr, _ = roc_curve(y, p)
    return float(tpr[fpr <= fpr_max].max())


def card_precision_at_k(y: np.ndarray, p: np.ndarray, ts: np.ndarray, cards: np.ndarray,
                        k: int = 100) -> tuple[float, list[float]]:
    """Mean over days of the fraud share among the day's top-``k`` cards; and each day's."""
    days = ts // DAY
    per_day = []
    for d in np.unique(days):
        m = days == d
        score: dict = {}
        fraud: dict = {}
        for c, s, f in zip(cards[m], p[m], y[m]):
            if s > score.get(c, -1.0):
                score[c] = s
            fraud[c] = fraud.get(c, False) or bool(f)
        top = sorted(score, key=score.__getitem__, reverse=True)[:k]
        per_day.append(sum(fraud[c] for c in top) / k if top else 0.0)
    return (float(np.mean(per_day)) if per_day else float("nan")), per_day


def known_compromised_mask(ts: np.ndarray, cards: np.ndarray,
                           reports: dict[str, int]) -> np.ndarray:
    """True for transactions to keep: the card had no fraud report before the start of the
    transaction's day (``reports``: card -> earliest reported_ts)."""
    day_start = (ts // DAY) * DAY
    first = np.array([reports.get(c, np.iinfo(np.int64).max) for c in cards], np.int64)
    return first >= day_start


def summary(y: np.ndarray, p: np.ndarray, ts: np.ndarray, cards: np.ndarray, *, k: int = 100,
            fpr: float = 0.01) -> dict:
    auc, ap = roc_ap(y, p)
    cpk, _ = card_precision_at_k(y, p, ts, cards, k)
    return {"roc_auc": auc, "avg_precision": ap, f"card_precision_at_{k}": cpk,
            f"recall_at_{fpr:g}_fpr": recall_at_fpr(y, p, fpr), "transactions": int(len(y)),
            "fraud": int(np.sum(y))}


def choose_thresholds(y: np.ndarray, p: np.ndarray, ts: np.ndarray, *,
                      alerts_per_day: float = 100.0, decline_precision: float = 0.9,
                      min_hits: int = 5) -> dict:
    """Review and decline thresholds from validation scores, with what they gave there."""
    n_days = max((int(ts.max()) - int(ts.min())) / DAY, 1.0) if len(ts) else 1.0
    order = np.sort(p)[::-1]
    budget = int(alerts_per_day * n_days)
    if budget >= len(order):
        review = float(order[-1]) if len(order) else 0.5  # the budget allows every alert
    else:  # just above the (budget+1)-th score: at most `budget` alerts (ties: fewer)
        review = float(np.nextafter(np.float32(order[budget]), np.float32(2.0)))
    decline = 1.0
    idx = np.argsort(-p, kind="stable")
    hits = np.cumsum(y[idx])
    prec = hits / np.arange(1, len(idx) + 1)
    ok = np.flatnonzero((prec >= decline_precision) & (hits >= min_hits))
    if len(ok):
        j = int(ok.max())
        decline = float(p[idx][j])
    decline = max(decline, review)

    def stats(t: float) -> dict:
        sel = p >= t
        n = int(sel.sum())
        return {"threshold": t, "alerts_per_day": n / n_days,
                "precision": float(y[sel].mean()) if n else float("nan"),
                "recall": float(y[sel].sum() / max(y.sum(), 1))}

    return {"review": review, "decline": decline,
            "chosen_on": f"validation period: review within {alerts_per_day:g} alerts a day, "
                         f"decline at precision >= {decline_precision:g} (1.0 = none reached)",
            "validation": {"review": stats(review), "decline": stats(decline),
                           "days": n_days}}
