"""Readings frames: many samples of one asset in one Kafka message (topic ``plant.readings``).

Columnar on the wire (parallel arrays ``tag``, ``ts``, ``value``, ``quality``) so a consumer
turns a frame into numpy arrays without a per-sample Python loop. ``ts`` is the source
timestamp in integer nanoseconds since the Unix epoch (OPC UA SourceTimestamp, or the poll
time for Modbus); ``quality`` is 0 good, 1 uncertain, 2 bad; ``value`` may be null only when
the quality is bad.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Annotated, Any, Literal

import msgspec
import numpy as np
import orjson

from tocsin.contracts._codec import check_schema, loads
from tocsin.contracts._codec import field as get_field
from tocsin.contracts.strict import check_id, check_ids, check_ids_seen, check_int, check_text
from tocsin.errors import SchemaError

NAME = "tocsin.readings"
VERSION = 1


class Quality(IntEnum):
    GOOD = 0
    UNCERTAIN = 1
    BAD = 2


@dataclass(slots=True)
class ReadingsFrame:
    asset: str
    tags: list[str]
    ts: np.ndarray  # int64 ns
    values: np.ndarray  # float64, NaN where the source gave no value
    quality: np.ndarray  # uint8
    source: str = ""
    seq: int = 0
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.tags)

    @classmethod
    def from_samples(cls, asset: str, samples: list[tuple[str, int, float | None, int]],
                     source: str = "", seq: int = 0) -> "ReadingsFrame":
        """Build a frame from ``(tag, ts_ns, value, quality)`` tuples."""
        tags = [s[0] for s in samples]
        ts = np.fromiter((s[1] for s in samples), dtype=np.int64, count=len(samples))
        vals = np.fromiter((np.nan if s[2] is None else s[2] for s in samples),
                           dtype=np.float64, count=len(samples))
        q = np.fromiter((s[3] for s in samples), dtype=np.uint8, count=len(samples))
        return cls(asset, tags, ts, vals, q, source=source, seq=seq)

    def encode(self) -> bytes:
        """The JSON document; orjson writes the numpy arrays itself (NaN as null), which is
        about three times faster than going through Python lists."""
        return orjson.dumps({
            "schema": f"{NAME}/{VERSION}",
            "asset": self.asset,
            "source": self.source,
            "seq": self.seq,
            "tag": self.tags,
            "ts": np.ascontiguousarray(self.ts, dtype=np.int64),
            "value": np.ascontiguousarray(self.values, dtype=np.float64),
            "quality": np.ascontiguousarray(self.quality, dtype=np.uint8),
        }, option=orjson.OPT_SERIALIZE_NUMPY)

    @classmethod
    def decode(cls, data: bytes) -> "ReadingsFrame":
        """Parse and validate; raise :class:`SchemaError` naming the offending field.

        The fast path parses and type-checks in one msgspec pass, then applies the checks a
        type cannot state (ids, lengths, null only when bad); whatever msgspec refuses goes
        through :meth:`decode_checked`, which names the field (and the tag) at fault."""
        try:
            w = _WIRE.decode(data)
        except msgspec.MsgspecError:
            return cls.decode_checked(data)
        check_schema({"schema": w.schema}, NAME, VERSION)
        asset = check_id(w.asset, "asset", NAME)
        tags, n = w.tag, len(w.tag)
        if not (len(w.ts) == len(w.value) == n) or (w.quality is not None
                                                     and len(w.quality) != n):
            return cls.decode_checked(data)  # the message says which array
        where = f" (asset {asset!r})"
        check_ids_seen(tags, "tag", NAME, where=where)
        quality = (np.zeros(n, dtype=np.uint8) if w.quality is None
                   else np.array(w.quality, dtype=np.uint8))
        values = np.array(w.value, dtype=np.float64)  # None -> nan; JSON has no NaN/inf
        if None in w.value and (np.isnan(values) & (quality != Quality.BAD)).any():
            return cls.decode_checked(data)
        source = check_text("" if w.source is None else w.source, "source", NAME, where=where)
        return cls(asset, tags, np.array(w.ts, dtype=np.int64), values, quality,
                   source=source, seq=w.seq)

    @classmethod
    def decode_checked(cls, data: bytes) -> "ReadingsFrame":
        """The field-by-field decoder (orjson): slower, with the most precise errors.

        Strict: booleans are not numbers, ``seq`` is an integer, ids are non-empty printable
        strings, arrays are flat and of equal length (numpy's own errors on ragged input used
        to escape as ValueError and crash the agents)."""
        obj = loads(data, NAME)
        check_schema(obj, NAME, VERSION)
        asset = check_id(get_field(obj, "asset", str, NAME), "asset", NAME)
        where = f" (asset {asset!r})"
        tags = get_field(obj, "tag", list, NAME)
        ts_l = get_field(obj, "ts", list, NAME)
        val_l = get_field(obj, "value", list, NAME)
        q_l = obj.get("quality")
        n = len(tags)
        if q_l is not None and not isinstance(q_l, list):
            raise SchemaError(f"{NAME}: field 'quality' must be list")
        if not (len(ts_l) == len(val_l) == n) or (q_l is not None and len(q_l) != n):
            raise SchemaError(
                f"{NAME}: arrays differ in length (tag {n}, ts {len(ts_l)}, value "
                f"{len(val_l)}, quality {n if q_l is None else len(q_l)}) for asset {asset!r}")
        check_ids(tags, "tag", NAME, where=where)
        ts = _int_array(ts_l, "ts", asset)
        quality = _quality_array(q_l, asset, n)
        values = _float_array(val_l, asset, tags, quality)
        seq = obj.get("seq", 0)
        seq = check_int(seq, "seq", NAME, lo=0, where=where)
        source = obj.get("source", "")
        source = check_text("" if source is None else source, "source", NAME, where=where)
        return cls(asset, tags, ts, values, quality, source=source, seq=seq)


def _int_array(items: list, key: str, asset: str) -> np.ndarray:
    if not items:
        return np.zeros(0, dtype=np.int64)
    if set(map(type, items)) <= {int}:
        try:
            return np.asarray(items, dtype=np.int64)
        except OverflowError:
            pass
    bad = next((i for i, x in enumerate(items)
                if type(x) is not int or not -2**63 <= x < 2**63), 0)
    raise SchemaError(f"{NAME}: field '{key}[{bad}]' must be a 64-bit integer, got "
                      f"{items[bad]!r:.60} (asset {asset!r})")


class _Wire(msgspec.Struct):
    """The wire document as msgspec types: what a type can say (bools are not numbers,
    integers within int64, qualities 0-2) it checks while parsing."""

    asset: str
    tag: list[str]
    ts: list[Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]]
    value: list[float | None]
    schema: Any = None
    quality: list[Literal[0, 1, 2]] | None = None
    seq: Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)] = 0
    source: str | None = ""


_WIRE = msgspec.json.Decoder(_Wire)
_QUALITIES = frozenset((0, 1, 2))
_NUMBER_TYPES = frozenset((float, int))


def _quality_array(items: list | None, asset: str, n: int) -> np.ndarray:
    if items is None:
        return np.zeros(n, dtype=np.uint8)
    if set(map(type, items)) <= {int} and set(items) <= _QUALITIES:
        return np.array(items, dtype=np.uint8)
    _int_array(items, "quality", asset)  # names the first item that is not an integer
    raise SchemaError(f"{NAME}: field 'quality' must hold 0, 1 or 2 (asset {asset!r})")


def _float_array(items: list, asset: str, tags: list[str], quality: np.ndarray) -> np.ndarray:
    """Values as float64, NaN where null. orjson parses no NaN, no infinity and no integer
    beyond 64 bits (it refuses the first two and turns the last into a float), so numbers
    are finite once their types are right: the common case is one type check and one copy."""
    if not items:
        return np.zeros(0, dtype=np.float64)
    types = set(map(type, items))
    if types <= _NUMBER_TYPES:
        return np.array(items, dtype=np.float64)
    if types <= {float, int, type(None)}:
        arr = np.array(items, dtype=np.float64)  # None -> nan
        missing = np.isnan(arr) & (quality != Quality.BAD)
        if missing.any():
            i = int(np.flatnonzero(missing)[0])
            raise SchemaError(f"{NAME}: field 'value[{i}]' (tag {tags[i]!r}, asset {asset!r}) "
                              "is null or NaN but its quality is not bad")
        return arr
    for i, x in enumerate(items):
        if x is None:
            continue
        try:
            ok = type(x) in (int, float) and math.isfinite(float(x))
        except OverflowError:
            ok = False
        if not ok:
            raise SchemaError(f"{NAME}: field 'value[{i}]' (tag {tags[i]!r}, asset {asset!r}) "
                              f"must be a finite number or null, got {x!r:.60}")
    raise SchemaError(f"{NAME}: field 'value' must hold finite numbers or null (asset "
                      f"{asset!r})")
