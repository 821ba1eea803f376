"""LSTM autoencoder over a sliding window of step vectors (feature ticks or raw rows).

Two shapes, both trained on normal data only; the squared reconstruction error per step and
column is the evidence (its mean is the anomaly score, its split over tags says which tags
drove it):

- ``"step"`` (the default since #21): encoder LSTM -> a per-step linear bottleneck of
  ``code`` units -> decoder LSTM -> linear layer back to the input width. Each step is
  rebuilt from its own code plus the context before it, so the model learns how the columns
  of one step move together (as PCA does, but non-linear and with memory) and how steps
  follow each other.
- ``"sequence"`` (the model before #21, kept to load old artifacts and for the side-by-side
  benchmark): the encoder's last hidden state is the one code of the whole window, repeated
  over the sequence. 32 numbers cannot carry 60 steps of white measurement noise, so on the
  demo plant (whose normal steps are independent from tick to tick) it could only learn the
  window's mean: its loss went 1.004 -> 0.99.

torch is imported lazily: only training needs it (the `train` extra). Serving loads the ONNX
export through :mod:`tocsin.models.backends`. The training loop is
:func:`tocsin.models.ae_training.fit` (one loop for every caller).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from tocsin.errors import ModelError

ARCHS = ("step", "sequence")


def _torch():
    try:
        import torch
    except ImportError as exc:
        raise ModelError("training needs torch: pip install 'tocsin[train]'") from exc
    return torch


def code_size(steps: np.ndarray, variance: float = 0.9, hidden: int = 32) -> int:
    """Bottleneck width from the data: the principal components that carry ``variance`` of
    the (standardised) training steps, at least 2 and at most ``hidden``. No labels."""
    x = np.asarray(steps, dtype=np.float64).reshape(-1, steps.shape[-1])
    x = x[np.isfinite(x).all(axis=1)]
    if len(x) < 3:
        return max(2, min(hidden, steps.shape[-1] // 4))
    sv = np.linalg.svd(x - x.mean(axis=0), compute_uv=False) ** 2
    share = np.cumsum(sv) / max(float(sv.sum()), 1e-12)
    k = int(np.searchsorted(share, variance) + 1)
    return int(np.clip(k, 2, hidden))


def build(d: int, hidden: int = 32, layers: int = 1, arch: str = "sequence",
          code: int | None = None):
    """The network; ``forward(x)`` maps (batch, seq, d) to squared errors of the same shape.
    ``arch`` defaults to the old shape so that artifacts without an ``arch`` still load."""
    torch = _torch()
    nn = torch.nn
    if arch not in ARCHS:
        raise ModelError(f"lstm_ae: arch must be one of {ARCHS}, got {arch!r}")
    code = int(code or max(2, hidden // 4))

    class SequenceCodeAE(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = nn.LSTM(d, hidden, num_layers=layers, batch_first=True)
            self.decoder = nn.LSTM(hidden, hidden, num_layers=layers, batch_first=True)
            self.out = nn.Linear(hidden, d)

        def forward(self, x):
            _, (h, _) = self.encoder(x)
            c = h[-1].unsqueeze(1).expand(-1, x.shape[1], -1)
            y, _ = self.decoder(c)
            return (self.out(y) - x) ** 2

    class StepCodeAE(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = nn.LSTM(d, hidden, num_layers=layers, batch_first=True)
            self.code = nn.Linear(hidden, code)
            self.decoder = nn.LSTM(code, hidden, num_layers=layers, batch_first=True)
            self.out = nn.Linear(hidden, d)

        def forward(self, x):
            h, _ = self.encoder(x)
            y, _ = self.decoder(torch.tanh(self.code(h)))
            return (self.out(y) - x) ** 2

    return StepCodeAE() if arch == "step" else SequenceCodeAE()


@dataclass
class TrainResult:
    model: object
    curve: object  # ae_training.Curve
    seconds: float
    code: int | None = None  # bottleneck width of the "step" shape

    @property
    def losses(self) -> list[float]:
        return self.curve.train


def train(seqs: np.ndarray, *, hidden: int = 32, arch: str = "step", code: int | None = None,
          max_epochs: int = 200, patience: int = 12, batch: int = 32, lr: float = 3e-3,
          min_steps: int = 500, seed: int = 0, threads: int = 2,
          progress: Callable[[int, float, float, float], None] | None = None
          ) -> TrainResult:
    """Build and fit on ``seqs`` (n x seq_len x d, standardised, finite, in time order):
    early stopping on the later part (:func:`tocsin.models.ae_training.fit`)."""
    from tocsin.models import ae_training

    torch = _torch()
    torch.manual_seed(seed)
    code = int(code or max(2, hidden // 4))
    net = build(seqs.shape[2], hidden, arch=arch, code=code)
    model, curve, secs = ae_training.fit(
        net, seqs, max_epochs=max_epochs, patience=patience, batch=batch, lr=lr,
        min_steps=min_steps, seed=seed, threads=threads, progress=progress)
    return TrainResult(model, curve, secs, code if arch == "step" else None)


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
