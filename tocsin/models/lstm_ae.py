"""LSTM autoencoder over the sliding sequence of per-second feature vectors.

Encoder LSTM -> the last hidden state (the code) -> repeated over the sequence -> decoder
LSTM -> linear layer back to the input width. Trained on normal data only; the squared
reconstruction error per step and column is the evidence: its mean is the anomaly score, and
its split over tags (each tag owns a block of columns) says which tags drove the score.

torch is imported lazily: only training needs it (the `train` extra). Serving loads the ONNX
export through :mod:`tocsin.models.backends`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from tocsin.errors import ModelError


def _torch():
    try:
        import torch
    except ImportError as exc:
        raise ModelError("training needs torch: pip install 'tocsin[train]'") from exc
    return torch


def build(d: int, hidden: int = 32, layers: int = 1):
    torch = _torch()
    nn = torch.nn

    class LSTMAutoencoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = nn.LSTM(d, hidden, num_layers=layers, batch_first=True)
            self.decoder = nn.LSTM(hidden, hidden, num_layers=layers, batch_first=True)
            self.out = nn.Linear(hidden, d)

        def forward(self, x):  # x: (batch, seq, d) -> squared error (batch, seq, d)
            _, (h, _) = self.encoder(x)
            code = h[-1].unsqueeze(1).expand(-1, x.shape[1], -1)
            y, _ = self.decoder(code)
            recon = self.out(y)
            return (recon - x) ** 2

    return LSTMAutoencoder()


@dataclass
class TrainResult:
    model: object
    losses: list[float]
    seconds: float


def train(seqs: np.ndarray, *, hidden: int = 32, epochs: int = 20, batch: int = 64,
          lr: float = 3e-3, seed: int = 0, threads: int = 2,
          progress: Callable[[int, float], None] | None = None) -> TrainResult:
    """Fit on ``seqs`` (n x seq_len x d, standardised, finite)."""
    torch = _torch()
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    model = build(seqs.shape[2], hidden)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    x_all = torch.from_numpy(np.ascontiguousarray(seqs, dtype=np.float32))
    gen = torch.Generator().manual_seed(seed)
    losses, t0 = [], time.perf_counter()
    model.train()
    for ep in range(epochs):
        perm = torch.randperm(len(x_all), generator=gen)
        total = 0.0
        for i in range(0, len(perm), batch):
            xb = x_all[perm[i:i + batch]]
            loss = model(xb).mean()
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            total += float(loss.detach()) * len(xb)
        losses.append(total / len(x_all))
        if progress:
            progress(ep + 1, losses[-1])
    model.eval()
    return TrainResult(model, losses, time.perf_counter() - t0)


def errors(model, seqs: np.ndarray, batch: int = 256) -> np.ndarray:
    """Squared reconstruction errors (n x seq_len x d) with torch (training-time checks)."""
    torch = _torch()
    out = []
    with torch.no_grad():
        for i in range(0, len(seqs), batch):
            out.append(model(torch.from_numpy(np.ascontiguousarray(
                seqs[i:i + batch], dtype=np.float32))).numpy())
    return np.concatenate(out) if out else np.zeros((0,) + seqs.shape[1:], np.float32)


def export_onnx(model, seq_len: int, d: int, path) -> None:
    """ONNX with a dynamic batch axis: input ``x`` (batch, seq, d) -> ``sqerr``."""
    import warnings

    torch = _torch()
    dummy = torch.zeros(2, seq_len, d)
    with warnings.catch_warnings():
        # the exporter warns that LSTM batch sizes other than the traced one may fail;
        # training checks the export at another batch size against torch
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (dummy,), str(path), input_names=["x"], output_names=["sqerr"],
                          dynamic_axes={"x": {0: "batch"}, "sqerr": {0: "batch"}},
                          opset_version=17, dynamo=False)
