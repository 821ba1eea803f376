"""From closed feature windows to model input: one vector per asset and tick.

A tick is a close of the first (smallest) scale. The tick vector holds, for every scale, the
features of every tag from that scale's most recent closed window (larger scales close less
often, so their latest values are held). The sequence model sees the last ``seq_len`` tick
vectors of the first scale only: with 1 s ticks and 60 steps, a sliding 60 s window.

Layout (names ``<scale>.<tag>.<feature>``) is fixed by the feature spec and the asset's tags;
its hash travels with every model artifact so a worker never feeds a model the wrong columns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tocsin.contracts.features import FeatureRow
from tocsin.detectors.windows import FeatureSpec


def vector_names(spec: FeatureSpec, tags: list[str]) -> list[str]:
    return [f"{s.name}.{t}.{f}" for s in spec.scales for t in tags for f in spec.names]


def step_names(spec: FeatureSpec, tags: list[str]) -> list[str]:
    return [f"{spec.scales[0].name}.{t}.{f}" for t in tags for f in spec.names]


@dataclass(slots=True)
class Tick:
    asset: str
    end: int  # ns
    vector: np.ndarray  # all scales, NaN where no data yet
    step: np.ndarray  # first scale only
    source_ts: int


class TickAssembler:
    """Per asset: hold the latest matrix of each scale, emit a :class:`Tick` per base close.

    The held matrices live in one preallocated vector per asset (NaN where a scale has not
    closed yet), so a row costs one slice copy per scale it carries and one copy of the
    vector, not a fresh NaN matrix per missing scale and a concatenate."""

    def __init__(self, spec: FeatureSpec):
        self.spec = spec
        self.base = spec.scales[0].name
        self._nf = len(spec.names)
        self._order = [s.name for s in spec.scales]
        self._latest: dict[str, dict[str, np.ndarray]] = {}
        self._vec: dict[str, tuple[int, np.ndarray]] = {}  # asset -> (tags, held vector)

    def push(self, row: FeatureRow) -> Tick | None:
        held = self._latest.setdefault(row.asset, {})
        nt, nf = len(row.tags), self._nf
        for name, mat in row.scales.items():
            held[name] = mat
        got = self._vec.get(row.asset)
        if got is None or got[0] != nt or any(
                mat.shape != (nt, nf) for mat in row.scales.values()):
            vec = self._assemble(held, nt)  # first row, new tags or odd shapes: the slow way
            self._vec[row.asset] = (nt, vec)
        else:
            vec = got[1]
            block = nt * nf
            for name, mat in row.scales.items():
                k = self._order.index(name) if name in self._order else -1
                if k >= 0:
                    vec[k * block:(k + 1) * block] = mat.ravel()
        if self.base not in row.scales:
            return None
        out = vec.copy()
        return Tick(row.asset, row.end, out, out[:nt * nf], row.source_ts)  # a fresh copy

    def _assemble(self, held: dict[str, np.ndarray], nt: int) -> np.ndarray:
        nf = self._nf
        parts = [held.get(s, np.full((nt, nf), np.nan)) for s in self._order]
        for i, p in enumerate(parts):
            if p.shape[0] != nt:  # the asset gained tags: older matrices lack rows
                q = np.full((nt, nf), np.nan)
                q[:p.shape[0]] = p
                parts[i] = q
        return np.concatenate([p.ravel() for p in parts]).astype(np.float64)

    def reset(self, asset: str | None = None) -> None:
        if asset is None:
            self._latest.clear()
            self._vec.clear()
        else:
            self._latest.pop(asset, None)
            self._vec.pop(asset, None)


class SequenceBuffer:
    """The last ``seq_len`` step vectors of each asset (for the sequence model).

    Each asset has a numpy ring of twice the length; a full window is always one contiguous
    slice, so a push costs one row copy instead of stacking seq_len arrays."""

    def __init__(self, seq_len: int):
        self.seq_len = seq_len
        self._buf: dict[str, list] = {}  # asset -> [array (2L x d), next row, rows filled]

    def push(self, asset: str, step: np.ndarray) -> np.ndarray | None:
        """Append; return the (seq_len x d) sequence once full (a view), else None."""
        L = self.seq_len
        e = self._buf.get(asset)
        if e is None or e[0].shape[1] != step.shape[0]:
            e = self._buf[asset] = [np.zeros((2 * L, step.shape[0]), dtype=step.dtype), 0, 0]
        arr, i, n = e
        if i == 2 * L:  # slide the newest L - 1 rows to the front
            arr[:L - 1] = arr[L + 1:]
            i = L - 1
        arr[i] = step
        i += 1
        e[1], e[2] = i, min(n + 1, L)
        if e[2] < L:
            return None
        return arr[i - L:i]

    def clear(self) -> None:
        self._buf.clear()


def sequences(steps: np.ndarray, seq_len: int) -> np.ndarray:
    """All sliding sequences of ``steps`` (n x d) -> (n - seq_len + 1, seq_len, d), a view."""
    if len(steps) < seq_len:
        return np.zeros((0, seq_len, steps.shape[1]), dtype=steps.dtype)
    w = np.lib.stride_tricks.sliding_window_view(steps, seq_len, axis=0)
    return np.moveaxis(w, -1, 1)
