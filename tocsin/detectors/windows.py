"""Multi-scale event-time windows per asset and tag, closed on a watermark.

Windows are aligned to the Unix epoch: a scale of size S and hop H has windows [B - S, B) for
every multiple B of H (H = S: tumbling; H < S: sliding). The watermark of an asset is its
newest source timestamp minus the allowed lateness; a window closes once the watermark passes
its end. Closing is done for all due windows of all assets at once, grouped by sample count,
so the feature arithmetic runs as a few large numpy operations instead of one small one per
window (principle 3 of DESIGN.md: explicit state, explicit timestamps, no wall clock).

A window that began before the asset's stream began is *partial*: its counts are reported,
its features are NaN, so a model never mistakes a short window for a calm one. A stream begins
at the asset's first sample and again after every silence longer than the longest window.

A sample older than its asset's *frontier* (the newest boundary its watermark had passed when
the sample arrived, or the newest closed one) is *late*: it is counted and dropped from every
scale, so all scales see the same samples and no closed window changes after it was emitted.
Samples of bad quality or without value are counted and left out.

Outputs are a function of the sequence of frames alone, not of how they were batched between
:meth:`WindowEngine.close_ready` calls (lateness is judged per frame, a row's ``source_ts`` is
the newest sample time when the watermark passed its end, its ``late`` the samples dropped
since the previous row), and of the last ``2 * longest window + lateness + hop`` of input
only: a worker that restarts and replays that much input (:func:`replay_horizon_s`) goes on
with exactly the rows an uninterrupted run gives (see docs/runtime-state.md).
"""

from __future__ import annotations

import bisect
import hashlib
from dataclasses import dataclass, field

import numpy as np
import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tocsin.contracts.features import FeatureRow
from tocsin.detectors import features as F

NS = 1_000_000_000


class ScaleSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: str = Field(description="label, e.g. 1s")
    size_s: float = Field(gt=0, description="window length in seconds")
    hop_s: float | None = Field(None, gt=0, description="seconds between window ends; "
                                "default = size (tumbling)")

    @property
    def size_ns(self) -> int:
        return int(round(self.size_s * NS))

    @property
    def hop_ns(self) -> int:
        return int(round((self.hop_s or self.size_s) * NS))


class FeatureSpec(BaseModel):
    """What to compute; stored with every model artifact (its hash pins the model input)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    scales: list[ScaleSpec] = Field(default_factory=lambda: [
        ScaleSpec(name="1s", size_s=1.0), ScaleSpec(name="10s", size_s=10.0, hop_s=1.0),
        ScaleSpec(name="60s", size_s=60.0, hop_s=10.0)])
    features: list[str] = Field(default_factory=lambda: list(F.BASE_FEATURES))
    acf_lags: list[int] = Field(default_factory=lambda: [5])
    fft_bins: int = Field(4, ge=1)
    allowed_lateness_s: float = Field(2.0, ge=0)

    @field_validator("features")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        bad = [f for f in v if f not in F.BASE_FEATURES]
        if bad:
            raise ValueError(f"unknown features {bad}; known: {list(F.BASE_FEATURES)} "
                             "(autocorrelation lags go in acf_lags)")
        return v

    @field_validator("acf_lags")
    @classmethod
    def _lags(cls, v: list[int]) -> list[int]:
        if any(lag < 1 for lag in v):
            raise ValueError("acf_lags must be >= 1")
        return v

    @model_validator(mode="after")
    def _hops(self) -> "FeatureSpec":
        if not self.scales:
            raise ValueError("scales: at least one window scale is needed")
        names = [s.name for s in self.scales]
        if len(set(names)) != len(names):
            raise ValueError(f"scales: duplicate names {names}")
        base = self.scales[0].hop_ns
        for s in self.scales:
            if s.hop_ns % base:
                raise ValueError(f"scales.{s.name}: hop {s.hop_ns / NS}s must be a multiple of "
                                 f"the first scale's hop ({base / NS}s)")
        return self

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.features) + tuple(f"acf_{lag}" for lag in self.acf_lags)

    def hash(self, tags: list[str]) -> str:
        doc = orjson.dumps({"spec": self.model_dump(mode="json"), "tags": list(tags)},
                           option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(doc).hexdigest()[:16]


def replay_horizon_s(spec: FeatureSpec) -> float:
    """Input time a restarted engine must re-read to continue exactly (docs/runtime-state.md):
    the buffered samples (one longest window behind the closed boundary), the stream-start
    decision (one more longest window), the lateness and the largest hop."""
    return (2 * max(s.size_ns for s in spec.scales) + max(s.hop_ns for s in spec.scales)
            ) / NS + spec.allowed_lateness_s


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
    tag_cache: dict = field(default_factory=dict)  # tuple(tags) -> WindowEngine._map_tags


_TAG_CACHE = 16  # tag lists cached per asset

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
        """Buffer one frame (``tags[i]`` names sample ``i``).

        Per frame this is a few whole-array numpy calls: the tag list's indices are cached
        per asset and tag sequence (the frames of one asset repeat the same list), the late
        check and the stream-start (silence) check take one min/max each in the common case
        (nothing late, no silence), and only an unusual frame takes the per-sample paths."""
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
        key = tuple(tags)
        got = st.tag_cache.get(key)
        if got is None:
            got = self._map_tags(asset, st, tags)
            if len(st.tag_cache) >= _TAG_CACHE:
                st.tag_cache.clear()  # tag lists from the wire must not grow it unbounded
            st.tag_cache[key] = got
        idx, n_neg, n_over = got
        if n_over:
            self.refused += n_over
        ok = ~np.isnan(values)
        if n_neg:
            ok &= idx >= 0
        if quality is not None:
            ok &= quality != 2
        st.unknown_tags += n_neg
        n_ok = int(np.count_nonzero(ok))
        st.bad += len(idx) - n_neg - n_ok  # ok samples are a subset of the known-tag ones
        if st.closed_until is not None and n_ok and \
                ts.min() < max(st.closed_until or _NEVER, st.due):
            late = self._late(st, ts, ok)
            ok &= ~late
            n_ok -= int(np.count_nonzero(late))
        if n_ok != len(ts):
            ts, values, idx = ts[ok], values[ok], idx[ok]
        if len(ts):
            self._keep(asset, st, np.asarray(ts, dtype=np.int64), values, idx)

    def _map_tags(self, asset: str, st: _AssetState, tags: list[str]
                  ) -> tuple[np.ndarray, int, int]:
        """-> (tag index per sample, -1 for unknown or refused; samples with a negative
        index; samples refused by ``max_tags``). Learns new tags of unconfigured assets.
        The result is stable for a given tag list (learned tags stay, and once ``max_tags``
        is reached no tag is learned), so :meth:`add` caches it (read-only)."""
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
        n_over = int(over.sum())
        if n_over:
            idx[over] = -1
        idx.flags.writeable = False
        return idx, int((idx < 0).sum()), n_over

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
        mn, mx = int(ts.min()), int(ts.max())
        prev = st.max_ts
        if mx - (mn if prev == _NEVER else min(mn, prev)) <= self._max_size:
            # no two neighbours in sorted order (the previous newest included) are further
            # apart than the whole span: no silence, no sort needed
            if prev == _NEVER:
                st.starts.append(mn)
        else:
            srt = np.sort(ts)
            gaps = np.diff(srt, prepend=prev) > self._max_size if prev != _NEVER else \
                np.r_[True, np.diff(srt) > self._max_size]
            st.starts.extend(int(x) for x in srt[gaps])
        st.ts.append(ts)
        st.val.append(np.asarray(values, dtype=np.float64))
        st.tag.append(idx)
        st.max_ts = max(prev, mx)
        self._dirty.add(asset)
        if st.closed_until is None:
            st.closed_until = (mn // self._h0) * self._h0
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
        """The features of every due window of every planned asset, in a few numpy calls.

        Per asset the buffer is sorted once by (tag, time) (a stable sort of one int64 key,
        which is nearly sorted already: the buffer is kept in that order between calls) and
        each scale's windows are one (tags x boundaries) block of sample ranges; windows of
        equal sample count are computed together. Rows are then cut out of each block by
        boundary (no per-boundary search), so the Python left per row is the row itself."""
        names, nf = self.names, len(self.names)
        scales = self.spec.scales
        # one global array of every asset's buffered samples, sorted by (asset, tag, ts)
        g_ts, g_val, offsets = [], [], 0
        lo_parts, hi_parts = [], []
        blocks = []  # (plan i, scale j, boundaries, first window, tags)
        n_win = 0
        sorted_bufs = []
        for pi, (_asset, st, bounds, _last) in enumerate(plans):
            ts = st.ts[0] if len(st.ts) == 1 else np.concatenate(st.ts)
            val = st.val[0] if len(st.val) == 1 else np.concatenate(st.val)
            tg = st.tag[0] if len(st.tag) == 1 else np.concatenate(st.tag)
            ntags = len(st.tags)
            base = int(ts.min()) - self._max_size
            span = int(ts.max()) - base + 1
            key = tg.astype(np.int64) * span + (ts - base)
            # equal keys are equal (tag, ts): the same order as lexsort((ts, tg))
            order = np.argsort(key, kind="stable")
            key, ts, val, tg = key[order], ts[order], val[order], tg[order]
            sorted_bufs.append((ts, val, tg))
            tag_off = np.arange(ntags, dtype=np.int64)[:, None] * span
            for sj, sc in enumerate(scales):
                b = bounds[bounds % sc.hop_ns == 0]
                if b.size == 0:
                    continue
                lo_t = np.minimum(np.maximum(b - sc.size_ns - base, 0), span)  # np.clip's
                hi_t = np.minimum(np.maximum(b - base, 0), span)  # values, a third of its cost
                lo_parts.append(np.searchsorted(key, (tag_off + lo_t[None, :]).ravel()) + offsets)
                hi_parts.append(np.searchsorted(key, (tag_off + hi_t[None, :]).ravel()) + offsets)
                blocks.append((pi, sj, b, n_win, ntags))
                n_win += ntags * b.size
            g_ts.append(ts)
            g_val.append(val)
            offsets += ts.size
        all_ts = np.concatenate(g_ts)
        all_val = np.concatenate(g_val)
        w_lo, w_hi = np.concatenate(lo_parts), np.concatenate(hi_parts)
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
        by_plan: list[dict[int, FeatureRow]] = [{} for _ in plans]
        for pi, sj, b, w0, ntags in blocks:
            asset, st = plans[pi][0], plans[pi][1]
            sc = scales[sj]
            nb = b.size
            # (tags x boundaries) -> one contiguous (boundaries x tags) block per scale
            cnt = counts[w0:w0 + ntags * nb].reshape(ntags, nb).T.copy()
            mats = feats[w0:w0 + ntags * nb].reshape(ntags, nb, nf).transpose(1, 0, 2).copy()
            # a window that began before the asset's stream (its first sample, or the end
            # of a silence): its features would describe a shorter window
            starts = np.asarray(st.starts, dtype=np.int64)
            i = np.searchsorted(starts, b, side="left")
            begun = np.where(i > 0, starts[np.maximum(i - 1, 0)], b) if starts.size else b
            partial = ((b - sc.size_ns) < begun).tolist()
            by_b, b_l, name = by_plan[pi], b.tolist(), sc.name
            for j in np.flatnonzero(cnt.any(axis=1)).tolist():
                bj = b_l[j]
                row = by_b.get(bj)
                if row is None:
                    row = by_b[bj] = FeatureRow(asset, bj, list(st.tags), {}, {})
                row.scales[name] = np.full((ntags, nf), np.nan) if partial[j] else mats[j]
                row.counts[name] = cnt[j]
        out: list[FeatureRow] = []
        for pi, (_asset, st, bounds, last) in enumerate(plans):
            by_b = by_plan[pi]
            asset_rows = [by_b[b] for b in sorted(by_b)]
            _stamp(st, asset_rows)
            out.extend(asset_rows)
            st.closed_until = max(int(bounds[-1]), last)
            keep_from = st.closed_until - self._max_size
            st.marks = [m for m in st.marks if m[0] > st.closed_until]
            i = bisect.bisect_right(st.starts, keep_from - self._max_size)
            del st.starts[:max(0, i - 1)]
            # kept sorted by (tag, ts): the next sort starts from nearly sorted input
            ts, val, tg = sorted_bufs[pi]
            keep = ts >= keep_from
            if keep.all():
                st.ts, st.val, st.tag = [ts], [val], [tg]
            else:
                st.ts, st.val, st.tag = [ts[keep]], [val[keep]], [tg[keep]]
        out.sort(key=lambda r: (r.end, r.asset))
        return out


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
