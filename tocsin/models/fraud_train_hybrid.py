"""The hybrid fraud model's training (torch): light MLP tower, sequence tower and gate.

Not the default since issue 16: on the simulated data and on a public data set the sequence
tower added nothing over the light tower, and gradient-boosted trees on the same features beat
both (see docs/payments.md). Kept for ``tocsin train fraud --kind hybrid``.
Features that were constant in training get a huge scale, so they read as 0 at serving
instead of thousands of standard deviations (the cold-start failure of issue 16).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tocsin.detectors.fraud_features import FEATURES, SEQ_LEN, TOKEN_DIM

if TYPE_CHECKING:
    from tocsin.models.fraud_train import Dataset


def _fit_torch(tr: Dataset, epochs: int, seed: int, threads: int, progress=None):
    import torch

    from tocsin.models.fraud_hybrid import HybridFraudNet

    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    mu = tr.tab.mean(0)
    sd = tr.tab.std(0)
    sd = np.where(sd == 0.0, 1e9, sd + 1e-3)  # constant in training: ignored
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




def fit_hybrid(tr, va, out: Path, *, epochs: int, seed: int, threads: int, log) -> dict:
    """Train, export ``full.onnx`` and ``light.onnx`` into ``out``; scorer for quality."""
    import torch

    net = _fit_torch(tr, epochs, seed, threads,
                     lambda e, n, loss: log(f"epoch {e}/{n}: loss {loss:.4f}"))
    export_onnx(net, out)
    torch.save(net.state_dict(), out / "torch_state.pt")  # for fine-tuning and checks
    return {"kind": "hybrid", "inputs": ["tab", "seq", "pad"], "epochs": epochs}
