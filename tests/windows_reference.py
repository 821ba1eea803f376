"""The window engine as it was before the per-frame fast paths (main at a65d95f), frozen as an
oracle: tests/unit/test_windows_fastpath.py checks that the optimised engine gives the same rows.
Not used by Tocsin itself."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

import numpy as np

from tocsin.contracts.features import FeatureRow
from tocsin.detectors import features as F
from tocsin.detectors.windows import NS, FeatureSpec

_NEVER = -(2**62)


@dataclass
class _AssetState:
    tags: list[str]
    index: dict[str, int]
    ts: list[np.ndarray] = field(default_factory=list)
    val: list[np.ndarray] = field(default_factory=list)
    tag: list[np.ndarray] = field(default_factory=list)
    closed_until: int | None = None  # every window ending at or before this has closed
    due: int = _NEVER  # the newest boundary the watermark has passed
    marks: list = field(default_factory=list)  # [due boundary, max_ts when it was passed]
    late_at: list = field(default_factory=list)  # [frontier on arrival, late samples]
    starts: list = field(default_factory=list)  # stream starts (first sample, after silences)
    max_ts: int = _NEVER
    late: int = 0
    bad: int = 0
    unknown_tags: int = 0


class WindowEngine:
    """Buffers frames per asset; :meth:`close_ready` returns every window the watermark closed."""

    def __init__(self, spec: FeatureSpec, asset_tags: dict[str, list[str]] | None = None, *,
                 max_unknown_assets: int = 1000, max_tags: int = 1000):
        """``max_unknown_assets``: assets outside ``asset_tags`` that get windows;
        ``max_tags``: tags learned per such asset. Samples beyond either bound are dropped
        and counted in ``refused`` (ids from the wire must not grow the state without
        bound)."""
        self.spec = spec
        self.max_unknown_assets, self.max_tags = max_unknown_assets, max_tags
        self._n_unknown = 0
        self.refused = 0
        self.names = spec.names
        self._asset_tags = dict(asset_tags or {})
        self._assets: dict[str, _AssetState] = {}
        self._h0 = spec.scales[0].hop_ns
        self._max_size = max(s.size_ns for s in spec.scales)
        self._lateness = int(round(spec.allowed_lateness_s * NS))
        self._dirty: set[str] = set()  # assets with new samples since the last close

    # ------------------------------------------------------------------ input
    def add(self, asset: str, tags: list[str], ts: np.ndarray, values: np.ndarray,
            quality: np.ndarray | None = None) -> None:
        st = self._assets.get(asset)
        if st is None:
            known = self._asset_tags.get(asset)
            if known is None:
                if self._n_unknown >= self.max_unknown_assets:
                    self.refused += len(ts)
                    return
                self._n_unknown += 1
            st_tags = list(known) if known else []
            st = _AssetState(st_tags, {t: i for i, t in enumerate(st_tags)})
            self._assets[asset] = st
        if not len(ts):
            return
        fixed = asset in self._asset_tags
        idx = np.empty(len(tags), dtype=np.int32)
        for i, t in enumerate(tags):
            j = st.index.get(t)
            if j is None:
                if fixed:
                    j = -1
                elif len(st.tags) >= self.max_tags:
                    j = -2
                else:
                    j = st.index[t] = len(st.tags)
                    st.tags.append(t)
            idx[i] = j
        over = idx == -2
        if over.any():
            self.refused += int(over.sum())
            idx[over] = -1
        ok = (idx >= 0) & ~np.isnan(values)
        if quality is not None:
            ok &= quality != 2
        st.unknown_tags += int((idx < 0).sum())
        st.bad += int(((idx >= 0) & ~ok).sum())
        if st.closed_until is not None:
            ok &= ~self._late(st, ts, ok)
        if not ok.all():
            ts, values, idx = ts[ok], values[ok], idx[ok]
        if len(ts):
            self._keep(asset, st, np.asarray(ts, dtype=np.int64), values, idx)

    @staticmethod
    def _late(st: _AssetState, ts: np.ndarray, ok: np.ndarray) -> np.ndarray:
        """Samples behind the frontier on arrival; counted, by the frontier they met."""
        frontier = max(st.closed_until or _NEVER, st.due)
        late = ok & (ts < frontier)
        n_late = int(late.sum())
        if n_late:
            st.late += n_late
            if st.late_at and st.late_at[-1][0] == frontier:
                st.late_at[-1][1] += n_late
            else:
                st.late_at.append([frontier, n_late])
        return late

    def _keep(self, asset: str, st: _AssetState, ts: np.ndarray, values: np.ndarray,
              idx: np.ndarray) -> None:
        srt = np.sort(ts)
        gaps = np.diff(srt, prepend=st.max_ts) > self._max_size if st.max_ts != _NEVER else \
            np.r_[True, np.diff(srt) > self._max_size]
        st.starts.extend(int(x) for x in srt[gaps])
        st.ts.append(ts)
        st.val.append(np.asarray(values, dtype=np.float64))
        st.tag.append(idx)
        st.max_ts = max(st.max_ts, int(srt[-1]))
        self._dirty.add(asset)
        if st.closed_until is None:
            st.closed_until = (int(srt[0]) // self._h0) * self._h0
        due = ((st.max_ts - self._lateness) // self._h0) * self._h0
        if due > st.due:
            st.due = due
            st.marks.append((due, st.max_ts))

    def stats(self, asset: str) -> dict[str, int]:
        st = self._assets[asset]
        return {"late": st.late, "bad": st.bad, "unknown_tags": st.unknown_tags}

    def tags(self, asset: str) -> list[str]:
        return self._assets[asset].tags

    # ------------------------------------------------------------------ closing
    def close_ready(self, flush: bool = False) -> list[FeatureRow]:
        """Close every window the watermark passed (``flush``: close everything buffered)."""
        plans = []  # (asset, state, boundaries)
        names = list(self._assets) if flush else sorted(self._dirty)
        self._dirty = set()
        for asset in names:
            st = self._assets[asset]
            if not st.ts:
                continue
            wm = st.max_ts + self._h0 if flush else st.max_ts - self._lateness
            last = (wm // self._h0) * self._h0
            bounds = self._due(st, last)
            if bounds.size == 0:
                if st.closed_until is not None and last > st.closed_until:
                    st.closed_until = last  # nothing held data: closed all the same
                continue
            plans.append((asset, st, bounds, last))
        if not plans:
            return []
        return self._compute(plans)

    def _due(self, st: _AssetState, last: int) -> np.ndarray:
        h0, start = self._h0, st.closed_until
        assert start is not None  # set when the asset's first frame arrives
        if last <= start:
            return np.zeros(0, dtype=np.int64)
        if (last - start) // h0 <= 2 * (self._max_size // h0) + 2:
            return np.arange(start + h0, last + 1, h0, dtype=np.int64)
        # a gap (or a first frame far ahead): only boundaries whose windows hold data
        ts = np.concatenate(st.ts)
        cells = np.unique(ts // h0)
        cand = [cells * h0 + k * h0 for k in range(1, self._max_size // h0 + 1)]
        b = np.unique(np.concatenate(cand))
        return b[(b > start) & (b <= last)]

    def _compute(self, plans) -> list[FeatureRow]:
        names, nf = self.names, len(self.names)
        scales = self.spec.scales
        # one global array of every asset's buffered samples, sorted by (asset, tag, ts)
        g_ts, g_val, offsets, windows = [], [], 0, []  # windows: (plan i, scale j, b, tag, lo, hi)
        plan_meta = []
        for pi, (asset, st, bounds, _last) in enumerate(plans):
            ts = np.concatenate(st.ts)
            val = np.concatenate(st.val)
            tg = np.concatenate(st.tag)
            order = np.lexsort((ts, tg))
            ts, val, tg = ts[order], val[order], tg[order]
            ntags = len(st.tags)
            base = int(ts.min()) - self._max_size
            span = int(ts.max()) - base + 1
            key = tg.astype(np.int64) * span + (ts - base)
            for sj, sc in enumerate(scales):
                b = bounds[bounds % sc.hop_ns == 0]
                if b.size == 0:
                    continue
                lo_t = np.clip(b - sc.size_ns - base, 0, span)
                hi_t = np.clip(b - base, 0, span)
                tag_ids = np.arange(ntags, dtype=np.int64)
                lo = np.searchsorted(key, (tag_ids[:, None] * span + lo_t[None, :]).ravel())
                hi = np.searchsorted(key, (tag_ids[:, None] * span + hi_t[None, :]).ravel())
                bb = np.tile(b, ntags)
                tt = np.repeat(tag_ids, b.size)
                windows.append((np.full(lo.size, pi), np.full(lo.size, sj), bb, tt,
                                lo + offsets, hi + offsets))
            g_ts.append(ts)
            g_val.append(val)
            offsets += ts.size
            plan_meta.append((asset, st, bounds, _last))
        all_ts = np.concatenate(g_ts)
        all_val = np.concatenate(g_val)
        w_plan, w_scale, w_b, w_tag, w_lo, w_hi = (np.concatenate(c) for c in zip(*windows))
        counts = w_hi - w_lo
        feats = np.full((counts.size, nf), np.nan)
        for n in np.unique(counts):
            if n == 0:
                continue
            rows = np.flatnonzero(counts == n)
            gather = w_lo[rows][:, None] + np.arange(n)
            x = all_val[gather]
            t = (all_ts[gather] - all_ts[gather[:, :1]]) / NS
            feats[rows] = F.compute(x, t, names, self.spec.fft_bins)
        # assemble one FeatureRow per (asset, boundary) that has any data
        out: list[FeatureRow] = []
        for pi, (asset, st, bounds, last) in enumerate(plan_meta):
            sel = np.flatnonzero(w_plan == pi)
            by_b: dict[int, FeatureRow] = {}
            for sj, sc in enumerate(scales):
                s_sel = sel[w_scale[sel] == sj]
                if s_sel.size == 0:
                    continue
                for b in np.unique(w_b[s_sel]):
                    r = s_sel[w_b[s_sel] == b]
                    r = r[np.argsort(w_tag[r], kind="stable")]
                    c = counts[r]
                    if not c.any():
                        continue
                    row = by_b.get(int(b))
                    if row is None:
                        row = by_b[int(b)] = FeatureRow(asset, int(b), list(st.tags), {}, {})
                    mat = feats[r]
                    if int(b) - sc.size_ns < _start_of(st.starts, int(b)):
                        # the window began before the asset's stream (its first sample, or
                        # the end of a silence): its features would describe a shorter window
                        mat = np.full_like(mat, np.nan)
                    row.scales[sc.name] = mat
                    row.counts[sc.name] = c
            asset_rows = [by_b[b] for b in sorted(by_b)]
            _stamp(st, asset_rows)
            out.extend(asset_rows)
            st.closed_until = max(int(bounds[-1]), last)
            keep_from = st.closed_until - self._max_size
            st.marks = [m for m in st.marks if m[0] > st.closed_until]
            i = bisect.bisect_right(st.starts, keep_from - self._max_size)
            del st.starts[:max(0, i - 1)]
            ts = np.concatenate(st.ts)
            keep = ts >= keep_from
            if keep.all():
                st.ts, st.val, st.tag = [ts], [np.concatenate(st.val)], [np.concatenate(st.tag)]
            else:
                st.ts = [ts[keep]]
                st.val = [np.concatenate(st.val)[keep]]
                st.tag = [np.concatenate(st.tag)[keep]]
        out.sort(key=lambda r: (r.end, r.asset))
        return out


def _start_of(starts: list[int], b: int) -> int:
    """The start of the stream that a window ending at ``b`` belongs to."""
    i = bisect.bisect_left(starts, b)
    return starts[i - 1] if i else b


def _stamp(st: _AssetState, rows: list[FeatureRow]) -> None:
    """``source_ts``: the newest sample time when the watermark passed the row's end (the
    asset's newest when a flush closed it); ``late``: the samples dropped as late since the
    previous row (by the frontier they arrived at), both independent of batching."""
    marks, j = st.marks, 0
    for row in rows:
        while j < len(marks) and marks[j][0] < row.end:
            j += 1
        row.source_ts = marks[j][1] if j < len(marks) else st.max_ts
        n = 0
        while st.late_at and st.late_at[0][0] < row.end:
            n += st.late_at.pop(0)[1]
        row.late = n
