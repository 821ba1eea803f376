"""Torch definitions: the cross-modal teacher and the MobileNetV3-style student.

Teacher: a small ViT reads the CT crop (8x8 patches, global attention), a Swin-style encoder
reads the MR crop (4x4 patches, attention inside 4x4 windows, shifted windows on alternate
blocks, patch merging to the same 8x8 grid), and cross-attention lets each modality's tokens
attend to the other's before a joint head. Student: inverted residual blocks with depthwise
convolutions, squeeze-excitation and hard-swish (MobileNetV3's building blocks) on a
two-channel input (CT, MR; a missing modality is zeros), so one small network reads CT-only,
MR-only or paired slices. Both return (logits, feature map at 8x8, spatial attention at 8x8)
for the three distillation stages. Needs the `train` extra (torch).
"""

from __future__ import annotations

import torch
from torch import nn

GRID = 8  # both networks end on an 8x8 grid over the 64x64 crop


class Attention(nn.Module):
    """Multi-head attention written out, so the attention weights are available."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.q, self.kv = nn.Linear(dim, dim), nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x, ctx=None, mask=None):
        ctx = x if ctx is None else ctx
        b, n, d = x.shape
        h = self.heads
        q = self.q(x).reshape(b, n, h, d // h).transpose(1, 2)
        k, v = self.kv(ctx).reshape(b, ctx.shape[1], 2, h, d // h).permute(2, 0, 3, 1, 4)
        att = (q @ k.transpose(-2, -1)) * self.scale
        if mask is not None:
            att = att + mask
        att = att.softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(b, n, d)
        return self.out(y), att


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp: int = 2):
        super().__init__()
        self.n1, self.n2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.att = Attention(dim, heads)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp * dim), nn.GELU(), nn.Linear(mlp * dim, dim))

    def forward(self, x, ctx=None, mask=None):
        y, att = self.att(self.n1(x), None if ctx is None else ctx, mask)
        x = x + y
        return x + self.mlp(self.n2(x)), att


class CTViT(nn.Module):
    def __init__(self, dim: int = 64, depth: int = 3, heads: int = 4, patch: int = 8):
        super().__init__()
        # a convolutional stem before the 8x8 patches: ViTs with one converge in far fewer
        # steps on small data sets (Xiao et al., "Early convolutions help transformers see
        # better", 2021); the encoder above it is a plain ViT
        self.embed = nn.Sequential(nn.Conv2d(1, 16, 3, 2, 1), nn.GELU(),
                                   nn.Conv2d(16, 32, 3, 2, 1), nn.GELU(),
                                   nn.Conv2d(32, dim, patch // 4, patch // 4))
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.randn(1, GRID * GRID + 1, dim) * 0.02)
        self.blocks = nn.ModuleList(Block(dim, heads) for _ in range(depth))

    def forward(self, x):
        t = self.embed(x).flatten(2).transpose(1, 2)
        t = torch.cat([self.cls.expand(t.shape[0], -1, -1), t], 1) + self.pos
        att = None
        for blk in self.blocks:
            t, att = blk(t)
        return t, att[:, :, 0, 1:].mean(1)  # tokens, CLS attention over the patches


def _windows(x, w):  # (B, H, W, C) -> (B*nW, w*w, C)
    b, h, wd, c = x.shape
    x = x.reshape(b, h // w, w, wd // w, w, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, w * w, c)


def _unwindows(x, w, b, h, wd):
    c = x.shape[-1]
    x = x.reshape(b, h // w, wd // w, w, w, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, h, wd, c)


class SwinBlock(nn.Module):
    """Windowed self-attention; `shift` rolls the grid by half a window first (Swin's
    shifted windows), with the mask that keeps wrapped-around regions apart."""

    def __init__(self, dim: int, heads: int, size: int, window: int = 4, shift: bool = False):
        super().__init__()
        self.block, self.window, self.size = Block(dim, heads), window, size
        self.shift = window // 2 if shift else 0
        if self.shift:
            reg = torch.zeros(size, size)
            cuts = (slice(0, -window), slice(-window, -self.shift), slice(-self.shift, None))
            n = 0
            for a in cuts:
                for b_ in cuts:
                    reg[a, b_] = n
                    n += 1
            r = _windows(reg[None, :, :, None], window)[..., 0]  # (nW, w*w)
            mask = (r[:, :, None] != r[:, None, :]).float() * -1e4
            self.register_buffer("mask", mask[:, None], persistent=False)  # (nW,1,ww,ww)
        else:
            self.mask = None

    def forward(self, x):  # (B, H, W, C)
        b, h, w, c = x.shape
        if self.shift:
            x = torch.roll(x, (-self.shift, -self.shift), (1, 2))
        t = _windows(x, self.window)
        mask = None
        if self.mask is not None:
            nw = self.mask.shape[0]
            mask = self.mask.repeat(b, 1, 1, 1).reshape(b * nw, 1, *self.mask.shape[-2:])
        t, _ = self.block(t, mask=mask)
        x = _unwindows(t, self.window, b, h, w)
        if self.shift:
            x = torch.roll(x, (self.shift, self.shift), (1, 2))
        return x


class MRSwin(nn.Module):
    def __init__(self, dim: int = 64):
        super().__init__()
        d1 = dim // 2
        self.embed = nn.Sequential(nn.Conv2d(1, 16, 3, 2, 1), nn.GELU(),
                                   nn.Conv2d(16, d1, 2, 2))  # 64x64 -> 16x16
        self.stage1 = nn.Sequential(SwinBlock(d1, 2, 16), SwinBlock(d1, 2, 16, shift=True))
        self.merge = nn.Sequential(nn.LayerNorm(4 * d1), nn.Linear(4 * d1, dim))  # -> 8x8
        self.stage2 = nn.Sequential(SwinBlock(dim, 4, 8), SwinBlock(dim, 4, 8, shift=True))

    def forward(self, x):
        t = self.embed(x).permute(0, 2, 3, 1)
        t = self.stage1(t)
        b, h, w, c = t.shape
        t = t.reshape(b, h // 2, 2, w // 2, 2, c).permute(0, 1, 3, 2, 4, 5).reshape(
            b, h // 2, w // 2, 4 * c)
        t = self.stage2(self.merge(t))
        return t.reshape(b, GRID * GRID, -1)


class Teacher(nn.Module):
    """Cross-modal encoder: CT ViT + MR Swin, fused by cross-attention both ways."""

    def __init__(self, dim: int = 64):
        super().__init__()
        self.ct, self.mr = CTViT(dim), MRSwin(dim)
        self.ct_from_mr, self.mr_from_ct = Block(dim, 4), Block(dim, 4)
        self.norm = nn.LayerNorm(3 * dim)
        self.head = nn.Linear(3 * dim, 2)
        self.dim = dim

    def forward(self, ct, mr):
        tc, att = self.ct(ct)
        cls, tc = tc[:, :1], tc[:, 1:]
        tm = self.mr(mr)
        fc, _ = self.ct_from_mr(tc, ctx=tm)
        fm, _ = self.mr_from_ct(tm, ctx=tc)
        fused = fc + fm  # (B, 64, D) on the shared 8x8 grid
        # max over the grid as well as the CLS token: a nodule occupies one or two of the 64
        # cells, and a mean alone dilutes it
        pooled = torch.cat([cls[:, 0] + fc.mean(1), fc.amax(1), fm.amax(1)], -1)
        logits = self.head(self.norm(pooled))
        fmap = fused.transpose(1, 2).reshape(-1, self.dim, GRID, GRID)
        return logits, fmap, att.reshape(-1, GRID, GRID)


HSwish = nn.Hardswish  # one ONNX HardSwish node instead of four element-wise ones


class SE(nn.Module):
    def __init__(self, c: int, r: int = 4):
        super().__init__()
        self.f = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(c, c // r, 1), nn.ReLU(),
                               nn.Conv2d(c // r, c, 1), nn.Hardsigmoid())

    def forward(self, x):
        return x * self.f(x)


class Bneck(nn.Module):
    """MobileNetV3 inverted residual: expand 1x1, depthwise kxk, (SE), project 1x1."""

    def __init__(self, cin: int, exp: int, cout: int, k: int, stride: int, se: bool, hs: bool):
        super().__init__()
        act = HSwish if hs else nn.ReLU
        layers = [nn.Conv2d(cin, exp, 1, bias=False), nn.BatchNorm2d(exp), act(),
                  nn.Conv2d(exp, exp, k, stride, k // 2, groups=exp, bias=False),
                  nn.BatchNorm2d(exp), act()]
        if se:
            layers.append(SE(exp))
        layers += [nn.Conv2d(exp, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.f = nn.Sequential(*layers)
        self.res = stride == 1 and cin == cout

    def forward(self, x):
        y = self.f(x)
        return x + y if self.res else y


class Student(nn.Module):
    def __init__(self, width: float = 1.0):
        super().__init__()

        def c(n):
            return max(8, int(n * width))
        self.stem = nn.Sequential(nn.Conv2d(2, c(16), 3, 2, 1, bias=False),
                                  nn.BatchNorm2d(c(16)), HSwish())  # 32x32
        self.body = nn.Sequential(
            Bneck(c(16), c(32), c(16), 3, 2, True, False),  # 16x16
            Bneck(c(16), c(48), c(24), 3, 2, False, False),  # 8x8
            Bneck(c(24), c(72), c(24), 3, 1, False, False),
            Bneck(c(24), c(96), c(40), 5, 1, True, True),
            Bneck(c(40), c(120), c(40), 5, 1, True, True),
        )
        self.head = nn.Sequential(nn.Conv2d(c(40), c(96), 1, bias=False), nn.BatchNorm2d(c(96)),
                                  HSwish(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                  nn.Linear(c(96), 64), HSwish(), nn.Linear(64, 2))
        self.channels = c(40)

    def forward(self, x):
        fmap = self.body(self.stem(x))
        att = fmap.pow(2).mean(1)  # activation-based spatial attention (B, 8, 8)
        return self.head(fmap), fmap, att


class Probabilities(nn.Module):
    """Export wrapper: the served graph returns P(nodule) only."""

    def __init__(self, net: nn.Module, paired: bool):
        super().__init__()
        self.net, self.paired = net, paired

    def forward(self, *x):
        logits = self.net(*x)[0]
        return logits.softmax(-1)[:, 1:2]
