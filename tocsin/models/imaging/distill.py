"""Training: the cross-modal teacher, then the student by three-stage distillation.

Stage 1 matches feature maps (L2 between the student's 8x8 map, through a 1x1 adapter, and
the teacher's fused token grid); stage 2 adds attention maps (L2 between the normalised
spatial attention of the student and the teacher's CLS attention); stage 3 matches
predictions (KL divergence of temperature-softened outputs, plus the label). The student sees
CT only, MR only or both (modality dropout), since in service a message carries one image;
the teacher always sees the pair. Needs the `train` extra (torch); progress goes to `report`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tocsin.models.imaging.dataset import CropSet
from tocsin.models.imaging.nets import Student, Teacher

Report = Callable[[str, int, int, float], None]  # stage, step, total, loss


@dataclass(slots=True)
class DistillConfig:
    teacher_epochs: int = 6
    stage_epochs: tuple[int, int, int] = (2, 2, 4)
    batch: int = 64
    lr: float = 2e-3  # student
    # teacher: 2e-3 for 6 epochs reached AUC 0.91, 1e-3 for 8 epochs 0.96 on a simulated
    # tuning set (seed 9); the reported quality uses other, fresh seeds (training.evaluate)
    teacher_lr: float = 1e-3
    temperature: float = 3.0
    alpha: float = 0.5  # weight of the KL term in stage 3 (the rest: cross-entropy)
    seed: int = 0
    teacher_dim: int = 64
    student_width: float = 1.0


def _augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Random flips and 90-degree rotations, the same for both channels."""
    if torch.rand(1, generator=g).item() < 0.5:
        x = x.flip(-1)
    return torch.rot90(x, int(torch.randint(0, 4, (1,), generator=g)), (-2, -1))


def _batches(n: int, batch: int, g: torch.Generator):
    perm = torch.randperm(n, generator=g)
    for i in range(0, n, batch):
        yield perm[i:i + batch]


def _class_weights(y: torch.Tensor) -> torch.Tensor:
    pos = float(y.float().mean().clamp(0.02, 0.98))
    return torch.tensor([0.5 / (1 - pos), 0.5 / pos])


def train_teacher(cs: CropSet, cfg: DistillConfig, report: Report) -> Teacher:
    g = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    x = torch.from_numpy(np.stack([cs.ct, cs.mr], 1))
    y = torch.from_numpy(cs.label)
    net = Teacher(cfg.teacher_dim)
    steps = cfg.teacher_epochs * ((len(y) + cfg.batch - 1) // cfg.batch)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.teacher_lr, weight_decay=0.02)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.teacher_lr, total_steps=steps)
    w = _class_weights(y)
    step = 0
    net.train()
    for _ in range(cfg.teacher_epochs):
        for idx in _batches(len(y), cfg.batch, g):
            xb = _augment(x[idx], g)
            logits, _, _ = net(xb[:, :1], xb[:, 1:])
            loss = F.cross_entropy(logits, y[idx], weight=w)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            report("teacher", step, steps, loss.item())
    return net.eval()


def _drop_modality(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Per sample: CT only (40 %), MR only (40 %) or both (20 %)."""
    r = torch.rand(x.shape[0], generator=g)
    keep_ct = (r < 0.4) | (r >= 0.8)
    keep_mr = r >= 0.4
    return torch.stack([x[:, 0] * keep_ct[:, None, None], x[:, 1] * keep_mr[:, None, None]], 1)


def _norm_map(a: torch.Tensor) -> torch.Tensor:
    a = a.flatten(1)
    return a / (a.norm(dim=1, keepdim=True) + 1e-6)


def _feat_target(f: torch.Tensor) -> torch.Tensor:
    """Teacher feature map, standardised per sample so the L2 loss has a stable scale."""
    return (f - f.mean((1, 2, 3), keepdim=True)) / (f.std((1, 2, 3), keepdim=True) + 1e-5)


def distill_student(cs: CropSet, teacher: Teacher, cfg: DistillConfig,
                    report: Report) -> Student:
    g = torch.Generator().manual_seed(cfg.seed + 1)
    torch.manual_seed(cfg.seed + 1)
    x = torch.from_numpy(np.stack([cs.ct, cs.mr], 1))
    y = torch.from_numpy(cs.label)
    w = _class_weights(y)
    student = Student(cfg.student_width)
    adapter = nn.Conv2d(student.channels, teacher.dim, 1)
    teacher.eval()
    stages = (("features", cfg.stage_epochs[0]), ("attention", cfg.stage_epochs[1]),
              ("predictions", cfg.stage_epochs[2]))
    params = list(student.parameters()) + list(adapter.parameters())
    for stage, epochs in stages:
        steps = epochs * ((len(y) + cfg.batch - 1) // cfg.batch)
        if steps == 0:
            continue
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.01)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=steps)
        step = 0
        student.train()
        for _ in range(epochs):
            for idx in _batches(len(y), cfg.batch, g):
                xb = _augment(x[idx], g)
                with torch.no_grad():
                    t_logits, t_feat, t_att = teacher(xb[:, :1], xb[:, 1:])
                s_logits, s_feat, s_att = student(_drop_modality(xb, g))
                loss = F.mse_loss(adapter(s_feat), _feat_target(t_feat))
                if stage != "features":
                    loss = loss * 0.5 + 10.0 * F.mse_loss(_norm_map(s_att), _norm_map(t_att))
                if stage == "predictions":
                    t = cfg.temperature
                    kl = F.kl_div(F.log_softmax(s_logits / t, -1), F.softmax(t_logits / t, -1),
                                  reduction="batchmean") * t * t
                    ce = F.cross_entropy(s_logits, y[idx], weight=w)
                    loss = 0.1 * loss + cfg.alpha * kl + (1 - cfg.alpha) * ce
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                step += 1
                report(f"student/{stage}", step, steps, loss.item())
    return student.eval()
