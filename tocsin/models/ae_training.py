"""Training loop for the LSTM autoencoder that stops when it stops learning, not at epoch N.

Before: a fixed 12-20 epochs at one learning rate; in the demo the loss went 1.004 -> 0.99,
i.e. the model reconstructed little more than the mean. Now:

- the last ``val_fraction`` of the sequences (in time order: later normal operation, never
  trained on) is a validation set; its loss is measured after every epoch;
- the learning rate halves when the validation loss has not improved for ``lr_patience``
  epochs (ReduceLROnPlateau), from a higher start (1e-2);
- training stops after ``patience`` epochs without improvement (or at ``max_epochs``) and
  the weights of the best validation epoch are restored;
- the curve (train loss, validation loss, learning rate per epoch) is returned and written to
  the model manifest.
"""

from __future__ import annotations

import copy
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

    def to_dict(self) -> dict:
        return {"train": [round(v, 5) for v in self.train],
                "val": [round(v, 5) for v in self.val], "lr": self.lr,
                "best_epoch": self.best_epoch, "stopped": self.stopped}


def fit(model, seqs: np.ndarray, *, max_epochs: int = 200, batch: int = 64, lr: float = 1e-2,
        val_fraction: float = 0.2, patience: int = 10, lr_patience: int = 3,
        min_delta: float = 1e-4, seed: int = 0, threads: int = 2,
        progress: Callable[[int, float, float], None] | None = None
        ) -> tuple[object, Curve, float]:
    """Train ``model`` (returns squared errors) on ``seqs``; -> (best model, curve, seconds)."""
    import torch

    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    x_all = torch.from_numpy(np.ascontiguousarray(seqs, dtype=np.float32))
    n_val = int(round(len(x_all) * val_fraction)) if len(x_all) >= 20 else 0
    x_tr, x_va = (x_all[:len(x_all) - n_val], x_all[len(x_all) - n_val:]) if n_val else (
        x_all, x_all)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=lr_patience,
                                                       min_lr=lr / 64)
    gen = torch.Generator().manual_seed(seed)
    curve, best, best_state, since = Curve(), float("inf"), None, 0
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
            total += float(loss.detach()) * len(xb)
        model.eval()
        with torch.no_grad():
            val = sum(float(model(x_va[i:i + 512]).sum())
                      for i in range(0, len(x_va), 512)) / max(1, x_va.numel())
        curve.train.append(total / len(x_tr))
        curve.val.append(val)
        curve.lr.append(float(opt.param_groups[0]["lr"]))
        if progress:
            progress(ep, curve.train[-1], val)
        if not np.isfinite(best) or val < best * (1.0 - min_delta):
            best, best_state, since, curve.best_epoch = val, copy.deepcopy(
                model.state_dict()), 0, ep
        else:
            since += 1
        sched.step(val)
        if since >= patience:
            curve.stopped = f"no validation gain for {patience} epochs"
            break
    else:
        curve.stopped = f"max_epochs {max_epochs}"
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return model, curve, time.perf_counter() - t0
