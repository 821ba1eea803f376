"""The hybrid fraud model (torch; training only -- serving runs the ONNX export).

Two towers and a gate:

- light tower: an MLP over the tabular features (velocity, amounts, terminal risk). Cheap; it
  is trained to stand on its own, because the load-aware switch serves it alone under load.
- heavy tower: a small transformer (one pre-norm attention block, 2 heads, d=32) over the
  card's last ``SEQ_LEN`` transactions, read at the current (last, never padded) position.
- gate: sigmoid of a linear map of both towers' embeddings; the fused logit is
  ``g * heavy + (1 - g) * light``, so ``g`` says how much the sequence tower decided.

The attention is written out by hand (no ``nn.MultiheadAttention`` fast path) so the ONNX
export is plain MatMul/Softmax that every runtime supports. Feature standardisation is a
buffer inside the model, so the exported graphs take raw features.
"""

from __future__ import annotations

import math

try:
    import torch
    from torch import nn
except ImportError as exc:  # pragma: no cover - depends on the environment
    from tocsin.errors import TocsinError

    raise TocsinError("training the fraud model needs torch: pip install 'tocsin[train]'") from exc


class _Block(nn.Module):
    def __init__(self, d: int, heads: int):
        super().__init__()
        self.h, self.dh = heads, d // heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.out = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.ff = nn.Sequential(nn.Linear(d, 2 * d), nn.ReLU(), nn.Linear(2 * d, d))

    def forward(self, x: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).chunk(3, dim=-1)
        q = q.reshape(b, n, self.h, self.dh).transpose(1, 2)
        k = k.reshape(b, n, self.h, self.dh).transpose(1, 2)
        v = v.reshape(b, n, self.h, self.dh).transpose(1, 2)
        att = q @ k.transpose(-1, -2) / math.sqrt(self.dh)
        att = att - 1e4 * pad[:, None, None, :]  # pad: 1.0 where there is no transaction
        o = (att.softmax(dim=-1) @ v).transpose(1, 2).reshape(b, n, d)
        x = x + self.out(o)
        return x + self.ff(self.ln2(x))


class HybridFraudNet(nn.Module):
    def __init__(self, n_features: int, token_dim: int, seq_len: int, mean, std,
                 d: int = 32, heads: int = 2):
        super().__init__()
        self.register_buffer("mu", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("sd", torch.as_tensor(std, dtype=torch.float32))
        self.light = nn.Sequential(nn.Linear(n_features, 64), nn.ReLU(), nn.Linear(64, 32),
                                   nn.ReLU())
        self.light_head = nn.Linear(32, 1)
        self.tok = nn.Linear(token_dim, d)
        self.pos = nn.Parameter(torch.zeros(seq_len, d))
        self.block = _Block(d, heads)
        self.ln = nn.LayerNorm(d)
        self.heavy_head = nn.Linear(d, 1)
        self.gate = nn.Linear(32 + d, 1)

    def light_parts(self, tab: torch.Tensor):
        e = self.light((tab - self.mu) / self.sd)
        return e, self.light_head(e).squeeze(-1)

    def forward(self, tab: torch.Tensor, seq: torch.Tensor, pad: torch.Tensor):
        le, ll = self.light_parts(tab)
        x = self.block(self.tok(seq) + self.pos, pad)
        he = self.ln(x[:, -1])  # the current transaction's position (never padding)
        hl = self.heavy_head(he).squeeze(-1)
        g = torch.sigmoid(self.gate(torch.cat([le, he], dim=-1))).squeeze(-1)
        fused = g * hl + (1 - g) * ll
        return fused, ll, hl, g


class FullGraph(nn.Module):
    """Export wrapper: raw inputs -> (probability, gate)."""

    def __init__(self, net: HybridFraudNet):
        super().__init__()
        self.net = net

    def forward(self, tab, seq, pad):
        fused, _, _, g = self.net(tab, seq, pad)
        return torch.sigmoid(fused), g


class LightGraph(nn.Module):
    """Export wrapper: the tabular tower alone."""

    def __init__(self, net: HybridFraudNet):
        super().__init__()
        self.net = net

    def forward(self, tab):
        return torch.sigmoid(self.net.light_parts(tab)[1])
