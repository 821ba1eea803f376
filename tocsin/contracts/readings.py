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

import numpy as np
import orjson

from tocsin.contracts._codec import check_schema, loads
from tocsin.contracts._codec import field as get_field
from tocsin.contracts.strict import check_id, check_ids, check_int, check_text
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
        vals = self.values
        if np.isnan(vals).any():
            value_list: list = [None if v != v else v for v in vals.tolist()]
        else:
            value_list = vals.tolist()
        return orjson.dumps({
            "schema": f"{NAME}/{VERSION}",
            "asset": self.asset,
            "source": self.source,
            "seq": self.seq,
            "tag": self.tags,
            "ts": self.ts.tolist(),
            "value": value_list,
            "quality": self.quality.tolist(),
        })

    @classmethod
    def decode(cls, data: bytes) -> "ReadingsFrame":
        """Parse and validate; raise :class:`SchemaError` naming the offending field.

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
        if q_l is None:
            q_l = [0] * n
        elif not isinstance(q_l, list):
            raise SchemaError(f"{NAME}: field 'quality' must be list")
        if not (len(ts_l) == len(val_l) == len(q_l) == n):
            raise SchemaError(
                f"{NAME}: arrays differ in length (tag {n}, ts {len(ts_l)}, "
                f"value {len(val_l)}, quality {len(q_l)}) for asset {asset!r}")
        check_ids(tags, "tag", NAME, where=where)
        ts = _int_array(ts_l, "ts", asset)
        values = _float_array(val_l, asset, tags)
        quality = _int_array(q_l, "quality", asset)
        if n and (quality.min() < 0 or quality.max() > 2):
            raise SchemaError(f"{NAME}: field 'quality' must hold 0, 1 or 2 (asset {asset!r})")
        quality = quality.astype(np.uint8)
        missing = np.isnan(values) & (quality != Quality.BAD)
        if missing.any():
            i = int(np.flatnonzero(missing)[0])
            raise SchemaError(f"{NAME}: field 'value[{i}]' (tag {tags[i]!r}, asset {asset!r}) "
                              "is null or NaN but its quality is not bad")
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


def _float_array(items: list, asset: str, tags: list[str]) -> np.ndarray:
    if not items:
        return np.zeros(0, dtype=np.float64)
    types = set(map(type, items))
    if types <= {float, int, type(None)}:
        try:
            arr = np.array(items, dtype=np.float64)  # None -> nan
            if np.isfinite(arr[~np.isnan(arr)]).all() and (
                    type(None) in types or not np.isnan(arr).any()):
                return arr
        except (OverflowError, TypeError):
            pass
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
