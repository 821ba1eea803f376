"""Hostile readings for testing a deployment's poison handling (issue 14): what an outside
tester, a broken PLC gateway or a misconfigured producer sends to ``plant.readings``.

Each generator returns ``(kind, payload)`` pairs; ``kind`` names what is wrong, so a test can
check that every one of them turned into a dead letter with a reason. The good frames of
:func:`good_frame` toggle one high limit, so every one of them is an alarm event.
"""

from __future__ import annotations

import random

import orjson

NS = 1_000_000_000
YEAR_NS = 365 * 86400 * NS
SCHEMA = "tocsin.readings/1"


def good_frame(asset: str, tag: str, k: int, now_ns: int, hot: float, cold: float,
               others: dict[str, float] | None = None) -> bytes:
    """A valid frame whose ``tag`` is ``hot`` on even ``k`` and ``cold`` on odd ones."""
    tags, values = [tag], [hot if k % 2 == 0 else cold]
    for t, v in (others or {}).items():
        tags.append(t)
        values.append(v)
    return orjson.dumps({"schema": SCHEMA, "asset": asset, "seq": k, "source": "hostile-test",
                         "tag": tags, "ts": [now_ns] * len(tags), "value": values,
                         "quality": [0] * len(tags)})


def _frame(asset: str, **over) -> dict:
    obj = {"schema": SCHEMA, "asset": asset, "seq": 1, "source": "hostile-test",
           "tag": ["a", "b"], "ts": [0, 0], "value": [1.0, 2.0], "quality": [0, 0]}
    obj.update(over)
    return obj


def hostile_frames(asset: str, now_ns: int, tag: str = "a",
                   big_bytes: int = 2 << 20) -> list[tuple[str, bytes]]:
    """One of each kind of bad record, aimed at a configured ``asset`` and one of its tags.
    Every one of them must end as a dead letter; none may stop the consumer or move the
    asset's watermark."""
    t = [now_ns, now_ns]
    tt = [tag, tag]

    def d(obj: dict) -> bytes:
        if obj.get("tag") == ["a", "b"]:
            obj["tag"] = tt
        return orjson.dumps(obj)

    return [
        ("garbage", b"\x00\xffnot json" * 8),
        ("big_garbage", b"x" * big_bytes),
        ("ragged", d(_frame(asset, ts=[[now_ns, now_ns], [now_ns]]))),
        ("unequal_lengths", d(_frame(asset, ts=t, value=[1.0], quality=[0, 0]))),
        ("boolean_value", d(_frame(asset, ts=t, value=[True, 1.0]))),
        ("boolean_ts", d(_frame(asset, ts=[True, now_ns]))),
        ("huge_seq", b'{"schema":"%s","asset":"%s","seq":1e30,"tag":["a"],"ts":[%d],'
                     b'"value":[1.0],"quality":[0]}' % (SCHEMA.encode(), asset.encode(), now_ns)),
        ("nan_value", b'{"schema":"%s","asset":"%s","tag":["a"],"ts":[%d],"value":[NaN],'
                      b'"quality":[0]}' % (SCHEMA.encode(), asset.encode(), now_ns)),
        ("empty_asset", d(_frame("", ts=t))),
        ("control_char_asset", d(_frame(asset + "\x00", ts=t))),
        ("rtl_tag", d(_frame(asset, ts=t, tag=[tag, "b\u202e"]))),
        ("future", d(_frame(asset, ts=[now_ns + YEAR_NS] * 2))),
        ("ancient", d(_frame(asset, ts=[1532476829, 1532476829]))),  # seconds, not ns
    ]


def unknown_asset_frames(n_assets: int, n_tags: int, now_ns: int, seed: int = 1,
                         prefix: str = "ghost-") -> list[bytes]:
    """One valid frame per unknown asset, ``n_tags`` tags each (they are counted, capped and
    never a per-asset log line or metric label)."""
    rng = random.Random(seed)
    tags = [f"t{j}" for j in range(n_tags)]
    out = []
    for i in range(n_assets):
        vals = [round(rng.random() * 100, 3) for _ in tags]
        out.append(orjson.dumps({"schema": SCHEMA, "asset": f"{prefix}{i}", "seq": 1,
                                 "tag": tags, "ts": [now_ns] * n_tags, "value": vals,
                                 "quality": [0] * n_tags}))
    return out


HOSTILE_VALUES = (True, "", "\x00", "x\u202ey", [[1, 2], [3]], 2**64 - 1, 1e30, None)


def hostile_variants(valid: dict) -> list[tuple[str, bytes]]:
    """Schema-tagged variants of one valid record: each field in turn dropped or replaced by
    a boolean, an empty or control-character string, a ragged array, a huge number or null;
    plus garbage. Some variants may still be valid (an optional field set to null): a test
    asks the contract's decoder which ones it must see dead-lettered."""
    out = [("garbage", b"\xff\x00garbage"), ("not_object", b"[1, 2, 3]")]
    for key in sorted(k for k in valid if k != "schema"):
        out.append((f"{key}:dropped", orjson.dumps({k: v for k, v in valid.items()
                                                    if k != key})))
        for i, bad in enumerate(HOSTILE_VALUES):
            out.append((f"{key}:{i}", orjson.dumps({**valid, key: bad})))
    return out


def refused_by(decode, variants: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """The variants ``decode`` refuses (the ones a consumer must dead-letter)."""
    from tocsin.errors import SchemaError

    out = []
    for kind, data in variants:
        try:
            decode(data)
        except SchemaError:
            out.append((kind, data))
    return out
