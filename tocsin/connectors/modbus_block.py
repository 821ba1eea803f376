"""Whole-read decoding and frame layout for the Modbus source. Pure: bytes in, numpy out.

A poll used to decode each tag with its own Python call and build frames from per-sample
tuples; at 100 tags a poll that cost more than the pymodbus reads themselves. Here each read
request is compiled once into a :class:`BlockDecoder` (one numpy gather per type and byte
order, scale and offset as array arithmetic) and each poll group into a :class:`PollLayout`
(a fixed slot per numeric tag, a fixed index array per asset), so a poll is a few numpy calls
whatever the number of tags.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tocsin.connectors.modbus_codec import _WORDS, BIT_TABLES, _permutation

_DTYPE = {"int16": ">i2", "uint16": ">u2", "int32": ">i4", "uint32": ">u4", "int64": ">i8",
          "uint64": ">u8", "float32": ">f4", "float64": ">f8", "bit": ">u2"}


@dataclass(frozen=True)
class TagCodec:
    """What decoding needs about one numeric tag of a read: its register (or bit) offset from
    the start of the read, its type and byte order, and the linear scaling."""

    rel: int
    typ: str
    order: str = "ABCD"
    bit: int | None = None
    scale: float = 1.0
    offset: float = 0.0


class BlockDecoder:
    """Decode every numeric tag of one read at once: ``dec(raw)`` with the raw big-endian
    bytes of the read's registers (or, for coils and discrete inputs, ``dec(bits)`` with the
    list of bits) returns float64 values in the order of `tags`. Same numbers as
    :func:`tocsin.connectors.modbus_codec.decode` (64-bit integers rounded to float64, as
    frames carry them)."""

    def __init__(self, tags: list[TagCodec], *, bits: bool = False):
        self.n = len(tags)
        self.bits = bits
        self.need = 0  # bytes (or bits) the read must return
        self._groups: list[tuple[np.ndarray, np.ndarray, str, np.ndarray | None]] = []
        if bits:
            self._rel = np.array([t.rel for t in tags], dtype=np.intp)
            self.need = int(self._rel.max()) + 1 if tags else 0
            return
        by: dict[tuple[str, str], list[int]] = {}
        for i, t in enumerate(tags):
            if t.typ not in _DTYPE:
                raise ValueError(f"type {t.typ!r} is not decoded on the block path")
            key = (t.typ, "ABCD" if t.typ == "bit" else t.order)
            by.setdefault(key, []).append(i)
        for (typ, order), idx in by.items():
            words = _WORDS[typ]
            perm = _permutation(words, order)
            inner = np.arange(2 * words) if perm is None else np.array(perm)
            starts = np.array([2 * tags[i].rel for i in idx], dtype=np.intp)
            gather = starts[:, None] + inner[None, :]
            self.need = max(self.need, int(gather.max()) + 1)
            shift = (np.array([tags[i].bit for i in idx], dtype=np.uint16)
                     if typ == "bit" else None)
            self._groups.append((np.array(idx, dtype=np.intp), gather, _DTYPE[typ], shift))
        scale = np.array([t.scale for t in tags], dtype=np.float64)
        offset = np.array([t.offset for t in tags], dtype=np.float64)
        plain = bool(np.all(scale == 1.0) and np.all(offset == 0.0))
        self._scale, self._offset = (None, None) if plain else (scale, offset)
        # the common case, tags of one type packed back to back in wire order: one frombuffer
        self._packed: tuple[str, int] | None = None
        if len(self._groups) == 1 and self._groups[0][3] is None:
            idx, gather, dtype, _ = self._groups[0]
            flat = gather.ravel()
            if (np.array_equal(idx, np.arange(self.n))
                    and np.array_equal(flat, np.arange(flat[0], flat[0] + len(flat)))):
                self._packed = (dtype, int(flat[0]))

    def __call__(self, raw) -> np.ndarray:
        if self.bits:
            return np.asarray(raw, dtype=np.float64)[self._rel]
        if len(raw) < self.need:
            raise ValueError(f"read returned {len(raw)} bytes, {self.need} needed")
        if self._packed is not None:
            out = np.frombuffer(raw, self._packed[0], self.n, self._packed[1]).astype(np.float64)
            return out if self._scale is None else out * self._scale + self._offset
        buf = np.frombuffer(raw, dtype=np.uint8)
        out = np.empty(self.n, dtype=np.float64)
        for idx, gather, dtype, shift in self._groups:
            v = np.ascontiguousarray(buf[gather]).view(dtype).ravel()
            if shift is not None:
                v = (v.astype(np.uint16) >> shift) & 1
            out[idx] = v
        if self._scale is not None:
            out = out * self._scale + self._offset
        return out


@dataclass
class AssetSlots:
    asset: str
    tags: list[str]
    slots: np.ndarray | slice  # positions in the poll's value vector


def as_slots(ix: list[int]) -> np.ndarray | slice:
    """Positions as a slice when they are a run (a view instead of a gather), else an array."""
    if ix and ix == list(range(ix[0], ix[0] + len(ix))):
        return slice(ix[0], ix[0] + len(ix))
    return np.array(ix, dtype=np.intp)


class PollLayout:
    """Fixed slots for a poll group's numeric tags and the frame layout of each asset.

    `assign` gives each tag name its slot (in first-seen order); `frames_of` turns the poll's
    value and quality vectors into per-asset arrays without a per-sample loop."""

    def __init__(self, tags: list[tuple[str, str]]):
        """`tags`: (tag name, asset) of every numeric tag, in the order frames list them."""
        self.slot = {name: i for i, (name, _) in enumerate(tags)}
        self.n = len(tags)
        by: dict[str, list[int]] = {}
        for i, (_, asset) in enumerate(tags):
            by.setdefault(asset, []).append(i)
        self.assets = [AssetSlots(a, [tags[i][0] for i in ix], as_slots(ix))
                       for a, ix in by.items()]
        self._nan = np.full(self.n, np.nan)
        self._good = np.zeros(self.n, dtype=np.uint8)

    def new_poll(self) -> tuple[np.ndarray, np.ndarray]:
        # copies of fixed templates: np.full is a Python-level function, ~5x a copy
        return self._nan.copy(), self._good.copy()

    def split(self, values: np.ndarray, quality: np.ndarray, ts: int):
        """(asset, tags, ts, values, quality) per asset; a value that is not finite (a NaN or
        infinite float register) is marked bad, which is what the readings schema asks."""
        finite = np.isfinite(values)
        if not finite.all():
            quality[~finite] = 2
        for a in self.assets:
            stamps = np.empty(len(a.tags), dtype=np.int64)
            stamps.fill(ts)
            yield (a.asset, a.tags, stamps, values[a.slots], quality[a.slots])


def is_block_tag(table: str, typ: str) -> bool:
    """Tags the block path decodes (strings are identity data and stay out of frames)."""
    return table in BIT_TABLES or typ in _DTYPE
