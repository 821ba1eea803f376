"""`tocsin eval fraud`: deployed fraud models, side by side, over a labelled file.

The features are the stream's own (:func:`tocsin.models.fraud_train.build_dataset`, the
same :class:`~tocsin.detectors.fraud_features.FraudFeatures` the worker runs), replayed in
event time from ``history_from`` with each label counted from its report time on; the models
are the ONNX artifacts the worker loads. So a transaction gets here the score the stream
gives it (tested to 1e-4 on the real broker). Measured on ``[test_from, test_until)`` only.

Peers: any number of artifact folders, and ``random_forest``: a scikit-learn random forest
trained on the same 38 features of the first model's training period (from its
``meta.json``), so "the model beats trees on its own features" is checked, not assumed; with
``peer_sequence`` a second forest also gets the sequence summary the deployed trees read
(:mod:`tocsin.models.fraud_inputs`), which separates "better model" from "more input".
Protocols: ``plain`` and ``known_compromised`` (cards with a fraud reported before the day
left out), both from one replay.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tocsin.contracts.payments import FraudLabel, Transaction
from tocsin.detectors import fraud_metrics as fm
from tocsin.errors import DataError


@dataclass
class EvalResult:
    rows: dict[str, dict] = field(default_factory=dict)  # model name -> summary
    scores: dict[str, np.ndarray] = field(default_factory=dict)  # model -> test scores
    txn_ids: list[str] = field(default_factory=list)
    y: np.ndarray | None = None
    period: tuple[int, int] = (0, 0)
    excluded_known: int = 0


def evaluate(txns: list[Transaction], labels: list[FraudLabel], y, models: dict, *,
             exclude_known: bool = False, **kw) -> EvalResult:
    """``models``: name -> :class:`~tocsin.models.fraud_serving.FraudModel`; one protocol."""
    proto = "known_compromised" if exclude_known else "plain"
    return evaluate_protocols(txns, labels, y, models, protocols=(proto,), **kw)[proto]


def evaluate_protocols(txns: list[Transaction], labels: list[FraudLabel], y, models: dict, *,
                       protocols=("plain",), history_from: int | None = None,
                       test_from: int | None = None, test_until: int | None = None,
                       k: int = 100, fpr: float = 0.01, random_forest: bool = True,
                       peer_sequence: bool = False, branch: str = "full", rf_trees: int = 100,
                       threads: int = 2, log=print, dataset=None) -> dict[str, EvalResult]:
    """Each protocol (``plain``, ``known_compromised``) from one replay of the features and
    one peer: protocol -> :class:`EvalResult`. ``dataset``: that replay, when the caller has
    it already (:func:`~tocsin.models.fraud_train.build_dataset` of the same arguments)."""
    from tocsin.models.fraud_train import build_dataset

    if not models:
        raise DataError("give at least one model to evaluate")
    first = next(iter(models.values()))
    periods = first.meta.get("periods_ns", {})
    if test_from is None:
        test_from = (periods.get("test") or [None])[0] or periods.get("valid", [0, 0])[1]
    ds = dataset if dataset is not None else \
        build_dataset(txns, labels, y, history_from=history_from, until=test_until)
    if not len(ds.ts):
        raise DataError("no transactions in the evaluated period")
    test_until = test_until or int(ds.ts.max()) + 1
    in_test = (ds.ts >= test_from) & (ds.ts < test_until)
    peers = {}
    if random_forest:
        peers["random_forest"] = (_peer(ds, periods, rf_trees, threads, False), False)
        if peer_sequence:
            peers["random_forest+sequence"] = (_peer(ds, periods, rf_trees, threads, True), True)
    ids_all = [t.txn_id for t in _in(txns, history_from, test_until)]
    out = {}
    for proto in protocols:
        m = in_test.copy()
        res_excl = 0
        if proto == "known_compromised":
            keep = fm.known_compromised_mask(ds.ts, ds.cards, _first_reports(labels))
            res_excl = int((m & ~keep).sum())
            m &= keep
        elif proto != "plain":
            raise DataError(f"unknown protocol {proto!r}; plain or known_compromised")
        te = ds.part(m)
        if te.y.min(initial=0) == te.y.max(initial=0):
            raise DataError(f"the test period has {int(te.y.sum())} fraud among {len(te.y)} "
                            "transactions: both classes are needed")
        log(f"{proto}: test period: {len(te.y)} transactions, {int(te.y.sum())} fraud"
            + (f" ({res_excl} of known-compromised cards left out)" if res_excl else ""))
        res = EvalResult(txn_ids=[i for i, keep_ in zip(ids_all, m) if keep_], y=te.y,
                         period=(int(test_from), int(test_until)), excluded_known=res_excl)
        for name, model in models.items():
            p, _ = model.score(te.tab, te.seq, te.pad, branch)
            res.scores[name] = np.asarray(p, np.float64)
        for name, (rf, seq) in peers.items():
            res.scores[name] = rf.predict_proba(_peer_x(te, seq))[:, 1]
        for name, p in res.scores.items():
            res.rows[name] = fm.summary(te.y, p, te.ts, te.cards, k=k, fpr=fpr)
        out[proto] = res
    return out


def _first_reports(labels: list[FraudLabel]) -> dict[str, int]:
    first: dict[str, int] = {}
    for lab in labels:
        if lab.fraud:
            first[lab.card_id] = min(first.get(lab.card_id, lab.reported_ts), lab.reported_ts)
    return first


def _peer_x(ds, sequence: bool) -> np.ndarray:
    if not sequence:
        return ds.tab
    from tocsin.models.fraud_inputs import VERSION, model_input

    return model_input(ds.tab, ds.seq, ds.pad, ["tab", VERSION])


def _peer(ds, periods: dict, trees: int, threads: int, sequence: bool):
    """The random forest on the first model's training period (the same features; with
    ``sequence`` also the sequence summary the trees read)."""
    from tocsin.models.fraud_train import random_forest as fit_rf

    tr_p = periods.get("train")
    if not tr_p:
        raise DataError("the first model's meta.json has no training period for the peer")
    tr = ds.part((ds.ts >= tr_p[0]) & (ds.ts < tr_p[1]))
    if tr.y.sum() < 1:
        raise DataError("the file holds no fraud in the first model's training period, so "
                        "the random-forest peer cannot be trained (or use --no-peer)")
    if sequence:
        tr.tab = _peer_x(tr, True)
    return fit_rf(tr, trees=trees, threads=threads)


def _in(txns: list[Transaction], history_from, until):
    return [t for t in txns if (history_from is None or t.ts >= history_from)
            and (until is None or t.ts < until)]


def table(res: EvalResult, k: int, fpr: float) -> str:
    """The side-by-side Markdown table."""
    cols = ["model", "ROC AUC", "average precision", f"card precision@{k}",
            f"recall at {fpr:g} FPR"]
    lines = [f"| {' | '.join(cols)} |", "|" + "---|" * len(cols)]
    for name, r in res.rows.items():
        lines.append(f"| {name} | {r['roc_auc']:.3f} | {r['avg_precision']:.3f} | "
                     f"{r[f'card_precision_at_{k}']:.3f} | {r[f'recall_at_{fpr:g}_fpr']:.3f} |")
    return "\n".join(lines)
