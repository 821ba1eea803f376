"""The one training loop of the LSTM autoencoder: it stops when it stops learning, not at
epoch N, and it reports its curve.

- the last ``val_fraction`` of the sequences (time order: later normal operation) is held
  out; the ``seq_len - 1`` sequences just before it are dropped, so no held-out step was
  ever trained on; its loss is measured after every epoch;
- Adam from ``lr``; the rate halves when the held-out loss has not improved for
  ``lr_patience`` epochs (ReduceLROnPlateau, floor ``lr / 32``);
- training stops after ``patience`` epochs without improvement, but not before
  ``min_steps`` optimiser steps (a few hundred rows make epochs of a handful of steps), or
  at ``max_epochs``; the weights of the best held-out epoch are restored;
- the curve (train and held-out loss, learning rate per epoch, the best epoch, why it
  stopped, and the held-out loss of "reconstruct the training mean", the floor a model that
  learned nothing reaches) is returned; training writes it next to the model.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np


@dataclass
class Curve:
    train: list[float] = field(default_factory=list)
    val: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    best_epoch: int = 0
    stopped: str = ""
    mean_only: float = float("nan")  # held-out loss of predicting the training mean
    steps: int = 0
    n_train: int = 0
    n_val: int = 0

    @property
    def best_val(self) -> float:
        return self.val[self.best_epoch - 1] if self.best_epoch else float("nan")

    @property
    def learned(self) -> float:
        """Share of the held-out loss of 'reconstruct the mean' the model removed."""
        if not self.best_epoch or not math.isfinite(self.mean_only) or self.mean_only <= 0:
            return float("nan")
        return 1.0 - self.best_val / self.mean_only

    def summary(self) -> str:
        return (f"{len(self.train)} epochs ({self.steps} steps), best {self.best_epoch}: "
                f"held-out loss {self.best_val:.4f} vs {self.mean_only:.4f} for the mean "
                f"({100 * self.learned:.0f} % learned); {self.stopped}")

    def to_dict(self) -> dict:
        return {"train": [round(v, 5) for v in self.train],
                "val": [round(v, 5) for v in self.val],
                "lr": [float(f"{v:.3g}") for v in self.lr], "best_epoch": self.best_epoch,
                "best_val": round(self.best_val, 5), "mean_only": round(self.mean_only, 5),
                "learned": round(self.learned, 4), "steps": self.steps,
                "n_train": self.n_train, "n_val": self.n_val, "stopped": self.stopped}


def split(n: int, seq_len: int, val_fraction: float) -> tuple[slice, slice]:
    """Train / held-out sequence ranges with a gap of ``seq_len - 1`` between them."""
    n_val = int(round(n * val_fraction))
    if n_val < 8 or n - n_val - (seq_len - 1) < 8:
        return slice(0, n), slice(0, n)  # too few to hold out: validate on the training set
    return slice(0, n - n_val - (seq_len - 1)), slice(n - n_val, n)


def fit(model, seqs: np.ndarray, *, max_epochs: int = 200, batch: int = 32, lr: float = 3e-3,
        val_fraction: float = 0.2, patience: int = 12, lr_patience: int = 4,
        min_delta: float = 1e-3, min_steps: int = 500, seed: int = 0, threads: int = 2,
        progress: Callable[[int, float, float, float], None] | None = None
        ) -> tuple[object, Curve, float]:
    """Train ``model`` (returns squared errors) on ``seqs`` (time order);
    -> (best model, curve, seconds). ``progress(epoch, train, held-out, lr)``."""
    import torch

    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    x_all = torch.from_numpy(np.ascontiguousarray(seqs, dtype=np.float32))
    tr, va = split(len(x_all), seqs.shape[1], val_fraction)
    x_tr, x_va = x_all[tr], x_all[va]
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=lr_patience,
                                                       min_lr=lr / 32)
    gen = torch.Generator().manual_seed(seed)
    mu = x_tr.mean(dim=0, keepdim=True)
    curve = Curve(mean_only=float(((x_va - mu) ** 2).mean()), n_train=len(x_tr),
                  n_val=len(x_va))
    best, best_state, since = float("inf"), None, 0
    t0 = time.perf_counter()
    for ep in range(1, max_epochs + 1):
        model.train()
        perm = torch.randperm(len(x_tr), generator=gen)
        total = 0.0
        for i in range(0, len(perm), batch):
            xb = x_tr[perm[i:i + batch]]
            loss = model(xb).mean()
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            curve.steps += 1
            total += float(loss.detach()) * len(xb)
        model.eval()
        with torch.no_grad():
            val = sum(float(model(x_va[i:i + 512]).sum())
                      for i in range(0, len(x_va), 512)) / max(1, x_va.numel())
        curve.train.append(total / len(x_tr))
        curve.val.append(val)
        curve.lr.append(float(opt.param_groups[0]["lr"]))
        if progress:
            progress(ep, curve.train[-1], val, curve.lr[-1])
        if not math.isfinite(best) or val < best * (1.0 - min_delta):
            best, best_state, since, curve.best_epoch = val, copy.deepcopy(
                model.state_dict()), 0, ep
        else:
            since += 1
        sched.step(val)
        if since >= patience and curve.steps >= min_steps:
            curve.stopped = f"no held-out gain for {patience} epochs"
            break
    else:
        curve.stopped = f"max_epochs {max_epochs}"
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return model, curve, time.perf_counter() - t0
