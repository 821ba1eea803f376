"""Training the hybrid fraud model from raw transactions, with an honest time split.

Features come from :class:`tocsin.detectors.fraud_features.FraudFeatures` -- the code the
stream runs -- replayed in event time with each label parked on its terminal when it arrives
(its ``reported_ts``), so training features see labels exactly as the stream would.

Split by time, never shuffled across periods: the first 60 % of the span trains, the next 10 %
validates (decision thresholds are chosen here, on legitimate validation scores: review at a
1 % false-positive rate, decline at 0.1 %), the last 30 % is the test period the quality table
is measured on. Nothing is tuned on test labels. The RandomForest baseline is trained on the
same tabular features and the same training period.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson

from tocsin.contracts.payments import FraudLabel, Transaction
from tocsin.detectors.fraud_features import FEATURES, SEQ_LEN, TOKEN_DIM, FraudFeatures


@dataclass
class Dataset:
    tab: np.ndarray
    seq: np.ndarray
    pad: np.ndarray
    y: np.ndarray
    ts: np.ndarray


def build_dataset(txns: list[Transaction], labels: list[FraudLabel], y) -> Dataset:
    """Features of every transaction in event-time order, labels applied as they arrive."""
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
    return Dataset(tab, seq, pad, np.asarray(y, np.float32), np.array([t.ts for t in txns]))


def split(ds: Dataset, train: float = 0.6, valid: float = 0.1):
    t0, t1 = ds.ts.min(), ds.ts.max()
    a, b = t0 + (t1 - t0) * train, t0 + (t1 - t0) * (train + valid)
    masks = (ds.ts < a, (ds.ts >= a) & (ds.ts < b), ds.ts >= b)
    return [Dataset(ds.tab[m], ds.seq[m], ds.pad[m], ds.y[m], ds.ts[m]) for m in masks]


def metrics(y: np.ndarray, p: np.ndarray) -> dict:
    from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

    if y.min() == y.max():
        return {"roc_auc": float("nan"), "avg_precision": float("nan"), "recall_at_1pct_fpr":
                float("nan")}
    fpr, tpr, _ = roc_curve(y, p)
    return {"roc_auc": float(roc_auc_score(y, p)),
            "avg_precision": float(average_precision_score(y, p)),
            "recall_at_1pct_fpr": float(tpr[fpr <= 0.01].max())}


def _fit_torch(tr: Dataset, epochs: int, seed: int, threads: int, progress=None):
    import torch

    from tocsin.models.fraud_hybrid import HybridFraudNet

    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    mu = tr.tab.mean(0)
    sd = tr.tab.std(0) + 1e-3
    net = HybridFraudNet(tr.tab.shape[1], TOKEN_DIM, SEQ_LEN, mu, sd)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    pos = max(float(tr.y.sum()), 1.0)
    pw = torch.tensor(min(20.0, (len(tr.y) - pos) / pos) ** 0.5)
    bce = torch.nn.BCEWithLogitsLoss(pos_weight=pw)
    X, S, P, Y = (torch.from_numpy(a) for a in (tr.tab, tr.seq, tr.pad, tr.y))
    rng = np.random.default_rng(seed)
    bs = 512
    for ep in range(epochs):
        net.train()
        order = torch.from_numpy(rng.permutation(len(Y)))
        total = 0.0
        for k in range(0, len(order), bs):
            idx = order[k:k + bs]
            fused, light, heavy, _ = net(X[idx], S[idx], P[idx])
            yb = Y[idx]
            loss = bce(fused, yb) + 0.5 * bce(light, yb) + 0.5 * bce(heavy, yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        if progress:
            progress(ep + 1, epochs, total / len(Y))
    net.eval()
    return net


def _predict(net, ds: Dataset) -> tuple[np.ndarray, np.ndarray]:
    import torch

    with torch.no_grad():
        fused, light, _, _ = net(*(torch.from_numpy(a) for a in (ds.tab, ds.seq, ds.pad)))
    return torch.sigmoid(fused).numpy(), torch.sigmoid(light).numpy()


def export_onnx(net, out: Path) -> None:
    import torch

    from tocsin.models.fraud_hybrid import FullGraph, LightGraph

    n = 4
    tab = torch.zeros(n, len(FEATURES))
    seq = torch.zeros(n, SEQ_LEN, TOKEN_DIM)
    pad = torch.zeros(n, SEQ_LEN)
    torch.onnx.export(FullGraph(net), (tab, seq, pad), str(out / "full.onnx"),
                      input_names=["tab", "seq", "pad"], output_names=["prob", "gate"],
                      dynamic_axes={"tab": {0: "n"}, "seq": {0: "n"}, "pad": {0: "n"},
                                    "prob": {0: "n"}, "gate": {0: "n"}},
                      opset_version=17, dynamo=False)
    torch.onnx.export(LightGraph(net), (tab,), str(out / "light.onnx"), input_names=["tab"],
                      output_names=["prob"], dynamic_axes={"tab": {0: "n"}, "prob": {0: "n"}},
                      opset_version=17, dynamo=False)


def train_fraud(txns: list[Transaction], labels: list[FraudLabel], y, out: str | Path, *,
                epochs: int = 4, seed: int = 7, threads: int = 2, rf_trees: int = 100,
                data_note: str = "", log=print) -> dict:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    ds = build_dataset(txns, labels, y)
    log(f"features: {len(txns)} transactions in {time.perf_counter() - t0:.1f}s")
    tr, va, te = split(ds)
    for name, part in (("train", tr), ("valid", va), ("test", te)):
        log(f"{name}: {len(part.y)} transactions, {int(part.y.sum())} fraud")
    if tr.y.sum() < 5 or te.y.sum() < 1:
        from tocsin.errors import TocsinError

        raise TocsinError("too few fraud labels to train and test (need >= 5 in the training "
                          "period and >= 1 in the test period)")
    net = _fit_torch(tr, epochs, seed, threads,
                     lambda e, n, loss: log(f"epoch {e}/{n}: loss {loss:.4f}"))
    p_va, _ = _predict(net, va)
    legit = p_va[va.y == 0] if (va.y == 0).any() else p_va
    review, decline = (float(np.quantile(legit, 0.99)), float(np.quantile(legit, 0.999)))
    p_full, p_light = _predict(net, te)
    from sklearn.ensemble import RandomForestClassifier

    rf = RandomForestClassifier(n_estimators=rf_trees, min_samples_leaf=3, n_jobs=threads,
                                class_weight="balanced_subsample", random_state=seed)
    rf.fit(tr.tab, tr.y)
    p_rf = rf.predict_proba(te.tab)[:, 1]
    quality = {"full": metrics(te.y, p_full), "light": metrics(te.y, p_light),
               "random_forest": metrics(te.y, p_rf)}
    export_onnx(net, out)
    import torch

    torch.save(net.state_dict(), out / "torch_state.pt")  # for fine-tuning and checks
    digest = hashlib.blake2b((out / "full.onnx").read_bytes(), digest_size=4).hexdigest()
    meta = {
        "model": "tocsin.fraud-hybrid", "version": f"fraud-{time.strftime('%Y%m%d')}-{digest}",
        "features": list(FEATURES), "seq_len": SEQ_LEN, "token_dim": TOKEN_DIM,
        "thresholds": {"review": review, "decline": decline,
                       "chosen_on": "legitimate validation scores: 1 % and 0.1 % FPR"},
        "periods_ns": {"train": [int(tr.ts.min()), int(tr.ts.max())],
                       "valid": [int(va.ts.min()), int(va.ts.max())] if len(va.ts) else [],
                       "test": [int(te.ts.min()), int(te.ts.max())]},
        "counts": {k: [len(p.y), int(p.y.sum())] for k, p in
                   (("train", tr), ("valid", va), ("test", te))},
        "quality_test_period": quality, "data": data_note, "epochs": epochs, "seed": seed,
    }
    (out / "meta.json").write_bytes(orjson.dumps(meta, option=orjson.OPT_INDENT_2))
    log(f"trained in {time.perf_counter() - t0:.1f}s -> {out}")
    return meta
