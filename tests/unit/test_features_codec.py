"""The features codec's msgspec fast path gives what the checked decoder gives: the same row
for every document both accept, the same SchemaError for every one the checked path refuses."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from tocsin.contracts import features as fc
from tocsin.errors import SchemaError

NAMES = ("mean", "std", "min")


def _doc() -> bytes:
    m = np.arange(6, dtype=float).reshape(2, 3)
    m[1, 2] = np.nan
    row = fc.FeatureRow("pump-1", 10**18, ["a", "b"], {"1s": m, "10s": m * 2},
                        {"1s": np.array([3, 4]), "10s": np.array([30, 40])}, source_ts=5, late=2)
    return fc.encode(row, NAMES, {"1s": 10**9, "10s": 10**10}, "hh")


def _outcome(decode, data: bytes):
    try:
        return decode(data)
    except SchemaError as exc:
        return str(exc)


MUTATIONS = {
    "as is": lambda o: None,
    "late null": lambda o: o.update(late=None),
    "late bool": lambda o: o.update(late=True),
    "late float": lambda o: o.update(late=0.0),
    "source_ts null": lambda o: o.update(source_ts=None),
    "n holds a bool": lambda o: o["scales"]["1s"].update(n=[1, True]),
    "n holds a float": lambda o: o["scales"]["1s"].update(n=[1.0, 2]),
    "ragged values": lambda o: o["scales"]["1s"].update(values=[[1, 2, 3], [1, 2]]),
    "one row short": lambda o: o["scales"]["1s"].update(values=[[1, 2, 3]]),
    "a string value": lambda o: o["scales"]["1s"].update(values=[[1, 2, "x"], [1, 2, 3]]),
    "large numbers": lambda o: o["scales"]["1s"].update(values=[[1e308, 2, 10**18], [1, 2, 3]]),
    "hash not a string": lambda o: o.update(feature_hash=3),
    "no hash": lambda o: o.pop("feature_hash"),
    "no tags": lambda o: o.update(tags=[]),
    "no tags, empty scale": lambda o: o.update(tags=[], scales={"1s": {"values": [], "n": []}}),
    "no features": lambda o: o.update(features=[], scales={"1s": {"values": [[], []],
                                                                  "n": [1, 2]}}),
    "newer schema": lambda o: o.update(schema="tocsin.features/2"),
    "no schema": lambda o: o.pop("schema"),
    "empty asset": lambda o: o.update(asset=""),
    "scale not an object": lambda o: o["scales"].update(x=[1]),
    "no scales": lambda o: o.update(scales={}),
}


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_fast_path_equals_checked_decoder(name):
    obj = orjson.loads(_doc())
    MUTATIONS[name](obj)
    data = orjson.dumps(obj)
    fast, checked = _outcome(fc.decode, data), _outcome(fc.decode_checked, data)
    if isinstance(checked, str) or isinstance(fast, str):
        assert fast == checked
        return
    (ra, na, ha), (rb, nb, hb) = fast, checked
    assert (ra.asset, ra.end, ra.tags, ra.source_ts, ra.late, na, ha) == \
        (rb.asset, rb.end, rb.tags, rb.source_ts, rb.late, nb, hb)
    assert list(ra.scales) == list(rb.scales) and list(ra.counts) == list(rb.counts)
    for k in rb.scales:
        for a, b in ((ra.scales[k], rb.scales[k]), (ra.counts[k], rb.counts[k])):
            assert a.dtype == b.dtype and a.shape == b.shape
            np.testing.assert_array_equal(a, b)


def test_out_of_range_integer_is_refused_like_the_checked_path():
    data = _doc().replace(b'"end":1000000000000000000', b'"end":18446744073709551616')
    assert _outcome(fc.decode, data) == _outcome(fc.decode_checked, data)
    assert isinstance(_outcome(fc.decode, data), str)


def test_encode_writes_the_bytes_of_the_list_path():
    """orjson's own numpy writer gives the bytes the Python-list path gave (NaN and inf as
    null), for any dtype and memory layout a matrix or count vector may come in."""
    rng = np.random.default_rng(4)
    m = rng.normal(size=(13, 3)) * 10.0 ** rng.integers(-300, 300, (13, 3))
    m[0, 0], m[1, 1], m[2, 2] = np.nan, np.inf, -0.0
    scales = {"1s": m.T, "10s": rng.normal(size=(3, 3)).astype(np.float32), "60s": np.full((3, 3), np.nan)}
    counts = {"1s": np.array([1, 2, 3]), "10s": np.array([4, 5, 6], dtype=np.int32),
              "60s": np.zeros(3, dtype=np.int64)}
    row = fc.FeatureRow("pump-1", 10**18, ["a", "b", "c"], scales, counts, source_ts=5, late=1)
    sizes = {"1s": 10**9, "10s": 10**10, "60s": 6 * 10**10}
    want = orjson.dumps({
        "schema": "tocsin.features/1", "asset": "pump-1", "end": 10**18, "source_ts": 5,
        "tags": ["a", "b", "c"], "features": list(NAMES), "feature_hash": "hh", "late": 1,
        "scales": {k: {"start": 10**18 - sizes[k], "n": counts[k].tolist(),
                       "values": [[None if v != v else v for v in r] for r in mat.tolist()]}
                   for k, mat in scales.items()}})
    assert fc.encode(row, NAMES, sizes, "hh") == want
