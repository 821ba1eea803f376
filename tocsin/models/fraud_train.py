"""Training the fraud model from raw transactions, by time, with checks that it is not fooled.

Features come from :class:`tocsin.detectors.fraud_features.FraudFeatures` -- the code the
stream runs -- replayed in event time with each label parked on its terminal when it arrives
(its ``reported_ts``), so training features see labels exactly as the stream would.

Periods by time, never shuffled (:class:`Periods`): **warm-up** history only streamed through
the features (30-day windows and terminal fraud history need it: without it a feature can be
constant in training and meaningless at serving), **train**, **validation** (early stopping,
Platt calibration, decision thresholds for an alert budget) and an optional **test** period
whose quality table includes a random-forest peer on the same features. Nothing is tuned on
test labels.

Features constant in the training period are named in a warning and dropped from the trees;
their training mean/SD go into ``meta.json`` so the worker can warn when a served feature is
far outside the training range (:mod:`tocsin.detectors.fraud_drift`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tocsin.contracts.payments import FraudLabel, Transaction
from tocsin.detectors import fraud_metrics as fm
from tocsin.detectors.fraud_features import FEATURES, SEQ_LEN, TOKEN_DIM, FraudFeatures
from tocsin.errors import ModelError

DAY = 86_400 * 10**9


@dataclass
class Dataset:
    tab: np.ndarray
    seq: np.ndarray
    pad: np.ndarray
    y: np.ndarray
    ts: np.ndarray
    cards: np.ndarray

    def part(self, m: np.ndarray) -> "Dataset":
        return Dataset(self.tab[m], self.seq[m], self.pad[m], self.y[m], self.ts[m],
                       self.cards[m])


@dataclass
class Periods:
    """``[history_from, train_from)`` warm-up, ``[train_from, train_until)`` train,
    ``[train_until, valid_until)`` validation, ``[valid_until, ...)`` test (ns)."""
    history_from: int
    train_from: int
    train_until: int
    valid_until: int

    @classmethod
    def default(cls, t0: int, t1: int, history_from=None, train_from=None, train_until=None,
                valid_until=None) -> "Periods":
        """Unset bounds split the data: 20 % warm-up, 50 % train, 15 % valid, 15 % test."""
        h = t0 if history_from is None else history_from
        span = t1 - h
        a = train_from if train_from is not None else h + int(span * 0.2)
        b = train_until if train_until is not None else h + int(span * 0.7)
        c = valid_until if valid_until is not None else b + int(span * 0.15)
        if not h <= a < b < c:
            raise ModelError("training periods out of order: need history-from <= train-from < "
                             "train-until < valid-until")
        return cls(h, a, b, c)

    def masks(self, ts: np.ndarray):
        return ((ts >= self.train_from) & (ts < self.train_until),
                (ts >= self.train_until) & (ts < self.valid_until), ts >= self.valid_until)


def build_dataset(txns: list[Transaction], labels: list[FraudLabel], y,
                  history_from: int | None = None, until: int | None = None) -> Dataset:
    """Features of every transaction in ``[history_from, until)``, in event-time order, with
    labels applied as they arrive."""
    keep = [i for i, t in enumerate(txns) if (history_from is None or t.ts >= history_from)
            and (until is None or t.ts < until)]
    txns = [txns[i] for i in keep]
    y = np.asarray(y, np.float32)[keep] if len(keep) else np.zeros(0, np.float32)
    ff = FraudFeatures()
    labels = sorted(labels, key=lambda x: x.reported_ts)
    tab = np.zeros((len(txns), len(FEATURES)), np.float32)
    seq = np.zeros((len(txns), SEQ_LEN, TOKEN_DIM), np.float32)
    pad = np.ones((len(txns), SEQ_LEN), np.float32)
    j = 0
    for i, t in enumerate(txns):
        while j < len(labels) and labels[j].reported_ts <= t.ts:
            ff.add_label(labels[j])
            j += 1
        row, toks = ff.one(t)
        tab[i] = row
        k = len(toks)
        seq[i, SEQ_LEN - k:] = toks
        pad[i, SEQ_LEN - k:] = 0.0
    return Dataset(tab, seq, pad, y, np.array([t.ts for t in txns], np.int64),
                   np.array([t.card_id for t in txns], dtype=object))


def metrics(y: np.ndarray, p: np.ndarray) -> dict:
    auc, ap = fm.roc_ap(y, p)
    return {"roc_auc": auc, "avg_precision": ap, "recall_at_1pct_fpr": fm.recall_at_fpr(y, p)}


def training_stats(tab: np.ndarray, log) -> tuple[dict, np.ndarray]:
    """Mean and SD per feature; warn about (and return) the features constant in training."""
    const = np.ptp(tab, axis=0) == 0.0 if len(tab) else np.ones(tab.shape[1], bool)
    if const.any():
        names = [FEATURES[i] for i in np.flatnonzero(const)]
        log(f"WARNING: {len(names)} feature(s) constant in the training period, dropped from "
            f"the model: {', '.join(names)}. Usually too little warm-up history before "
            "--train-from (30-day windows, terminal fraud history) or no labels known yet.")
    return ({"mean": tab.mean(0).astype(float).tolist(), "std": tab.std(0).astype(float).tolist(),
             "constant": [FEATURES[i] for i in np.flatnonzero(const)]}, const)


def _onnx_scores(path: Path, tab: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {"tab": np.ascontiguousarray(tab, np.float32)})[0]


def fit_gbdt(tr: Dataset, va: Dataset, const: np.ndarray, out: Path, *, seed: int,
             log, sequence: bool = True, stack: bool | str = False, stack_trees: int = 100,
             threads: int = 2, **params) -> dict:
    """Boosted trees on the tabular features, and with ``sequence`` also on the summary of
    the card's last transactions (:mod:`tocsin.models.fraud_inputs`); with ``stack`` the
    full branch is the trees stacked with a forest (:mod:`tocsin.models.fraud_stack`)."""
    from tocsin.models import fraud_gbdt as g
    from tocsin.models import fraud_inputs as fi

    inputs = ["tab", fi.VERSION] if sequence else ["tab"]
    x_tr = fi.model_input(tr.tab, tr.seq, tr.pad, inputs)
    x_va = fi.model_input(va.tab, va.seq, va.pad, inputs)
    drop = np.zeros(x_tr.shape[1], bool)
    drop[:len(const)] = const
    drop[len(const):] = np.ptp(x_tr[:, len(const):], axis=0) == 0.0 if len(x_tr) else True
    cols = np.flatnonzero(~drop)
    model, best = g.fit(x_tr[:, cols], tr.y, x_va[:, cols], va.y, seed=seed, **params)
    light_n = max(best // 4, 1)
    log(f"boosted trees on {'tabular + sequence summary' if sequence else 'tabular'} inputs "
        f"({len(cols)} columns): {best} iterations best on validation (of {model.n_iter_}); "
        f"light branch: the first {light_n}")
    info = {"kind": "gbdt", "inputs": inputs, "columns": cols.tolist(),
            "input_names": list(FEATURES) + (list(fi.NAMES) if sequence else []),
            "iterations": {"full": best, "light": light_n}, "params": params, "calibration": {}}
    for name, n in (("full", best), ("light", light_n)):
        a, b = g.platt(g.margin(model, x_va[:, cols], n), va.y)
        g.export_onnx(model, n, (a, b), x_tr.shape[1], out / f"{name}.onnx", cols)
        err = g.check_export(out / f"{name}.onnx", model, n, (a, b), x_va[:2000], cols)
        info["calibration"][name] = {"platt_a": a, "platt_b": b, "export_max_abs_err": err}
    if stack:
        _fit_stack(model, best, x_tr, tr.y, x_va, va.y, cols, out, info,
                   auto=stack == "auto", trees=stack_trees, seed=seed, threads=threads,
                   log=log)
    return info


def _fit_stack(model, best: int, x_tr, y_tr, x_va, y_va, cols, out: Path, info: dict, *,
               auto: bool, trees: int, seed: int, threads: int, log) -> None:
    """The full branch as the trees stacked with a forest (:mod:`tocsin.models.fraud_stack`);
    with ``auto`` only when the stack's cross-fitted validation AP beats the trees'."""
    from tocsin.models import fraud_gbdt as g
    from tocsin.models import fraud_stack as fs

    rf = fs.fit_forest(x_tr[:, cols], y_tr, trees=trees, seed=seed, threads=threads)
    m_va, p_rf = g.margin(model, x_va[:, cols], best), rf.predict_proba(x_va[:, cols])[:, 1]
    ap_trees = fm.roc_ap(y_va, m_va)[1]
    try:
        ap_stack = fm.roc_ap(y_va, fs.cross_fitted(m_va, p_rf, y_va, seed=seed))[1]
    except ModelError:
        if not auto:
            raise
        ap_stack = float("nan")  # too few labels to judge the stack: the trees alone
    info["selection"] = {"rule": "stack if its cross-fitted validation AP is higher" if auto
                         else "stack (asked for)", "valid_ap_trees": ap_trees,
                         "valid_ap_stack_cross_fitted": ap_stack}
    if auto and not ap_stack > ap_trees:
        log(f"full branch: the trees alone (validation AP {ap_trees:.3f}; stacked with a "
            f"forest, cross-fitted: {ap_stack:.3f})")
        return
    w = fs.fit_stacker(m_va, p_rf, y_va)
    fs.export_stack(model, best, rf, w, x_tr.shape[1], out / "full.onnx", cols)
    err = fs.check_stack(out / "full.onnx", model, best, rf, w, x_va[:2000], cols)
    log(f"full branch: the trees stacked with a {trees}-tree forest on the same inputs and "
        f"period, weights {w[0]:.3f} (trees) / {w[1]:.3f} (forest) fitted on validation "
        f"(validation AP {ap_stack:.3f} cross-fitted, trees alone {ap_trees:.3f})")
    info["stack"] = {"forest_trees": trees, "w_trees": w[0], "w_forest": w[1],
                     "intercept": w[2], "export_max_abs_err": err}


def _score_graph(out: Path, info: dict, ds: Dataset, graph: str) -> np.ndarray:
    if info["kind"] == "gbdt":
        from tocsin.models.fraud_inputs import model_input

        return _onnx_scores(out / f"{graph}.onnx",
                            model_input(ds.tab, ds.seq, ds.pad, info["inputs"]))
    from tocsin.models.fraud_serving import OnnxBackend

    inputs = {"tab": ds.tab} if graph == "light" else {"tab": ds.tab, "seq": ds.seq,
                                                         "pad": ds.pad}
    return OnnxBackend(out).run(graph, inputs)[0]


def random_forest(tr: Dataset, *, trees: int = 100, seed: int = 7, threads: int = 2):
    """The peer: a random forest on the same features and the same training period."""
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=trees, min_samples_leaf=3, n_jobs=threads,
                                  class_weight="balanced_subsample",
                                  random_state=seed).fit(tr.tab, tr.y)


def train_fraud(txns: list[Transaction], labels: list[FraudLabel], y, out: str | Path, *,
                kind: str = "gbdt", periods: Periods | None = None, epochs: int = 4,
                seed: int = 7, threads: int = 2, rf_trees: int = 100,
                alerts_per_day: float = 100.0, decline_precision: float = 0.9,
                data_note: str = "", log=print, sequence: bool = True, stack: bool | str = "auto",
                dataset: Dataset | None = None, **gbdt_params) -> dict:
    """Train, calibrate, choose thresholds, deploy to ``out``. ``dataset``: the features of
    ``txns`` already replayed by :func:`build_dataset` from ``periods.history_from`` (a caller
    that also evaluates saves a replay); ``rf_trees=0`` leaves the forest out of the table."""
    from tocsin.models import fraud_registry

    out = Path(out)
    if not txns:
        raise ModelError("no transactions to train on")
    t0 = time.perf_counter()
    pr = periods or Periods.default(txns[0].ts, txns[-1].ts)
    ds = dataset if dataset is not None else \
        build_dataset(txns, labels, y, history_from=pr.history_from)
    log(f"features: {len(ds.y)} transactions in {time.perf_counter() - t0:.1f}s")
    parts = [ds.part(m) for m in pr.masks(ds.ts)]
    tr, va, te = parts
    for name, part in (("train", tr), ("valid", va), ("test", te)):
        log(f"{name}: {len(part.y)} transactions, {int(part.y.sum())} fraud")
    if tr.y.sum() < 5 or va.y.sum() < 1:
        raise ModelError("too few fraud labels (need >= 5 in the training period and >= 1 in "
                         "the validation period); widen the periods")
    stats, const = training_stats(tr.tab, log)
    stage = fraud_registry.staging(out)
    if kind == "gbdt":
        info = fit_gbdt(tr, va, const, stage, seed=seed, log=log, sequence=sequence,
                        stack=stack, threads=threads, **gbdt_params)
    elif kind == "hybrid":
        from tocsin.models.fraud_train_hybrid import fit_hybrid

        info = fit_hybrid(tr, va, stage, epochs=epochs, seed=seed, threads=threads, log=log)
    else:
        raise ModelError(f"unknown model kind {kind!r}; choose gbdt or hybrid")
    p_va = {g: _score_graph(stage, info, va, g) for g in ("full", "light")}
    thr = fm.choose_thresholds(va.y, p_va["full"], va.ts, alerts_per_day=alerts_per_day,
                               decline_precision=decline_precision)
    quality = {"validation": {g: metrics(va.y, p) for g, p in p_va.items()}}
    if len(te.y) and te.y.min() != te.y.max():
        quality["test"] = {g: metrics(te.y, _score_graph(stage, info, te, g))
                           for g in ("full", "light")}
        if rf_trees > 0:
            rf = random_forest(tr, trees=rf_trees, seed=seed, threads=threads)
            quality["test"]["random_forest"] = metrics(te.y, rf.predict_proba(te.tab)[:, 1])
    meta = {
        "model": f"tocsin.fraud-{info['kind']}", "features": list(FEATURES),
        "seq_len": SEQ_LEN, "token_dim": TOKEN_DIM, **info, "thresholds": thr,
        "periods_ns": {"history": [pr.history_from, pr.train_from],
                       "train": [pr.train_from, pr.train_until],
                       "valid": [pr.train_until, pr.valid_until],
                       "test": [pr.valid_until, int(ds.ts.max()) + 1] if len(te.y) else []},
        "counts": {k: [len(p.y), int(p.y.sum())] for k, p in
                   (("train", tr), ("valid", va), ("test", te))},
        "training_stats": stats, "quality": quality, "data": data_note, "seed": seed,
    }
    meta = fraud_registry.deploy(out, stage, meta)
    log(f"trained in {time.perf_counter() - t0:.1f}s -> {out}")
    return meta
