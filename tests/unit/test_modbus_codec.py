"""Modbus decoding against struct for every type and order, and read coalescing."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tocsin.connectors.modbus_codec import ORDERS, Span, decode, encode, plan_reads


def test_known_float_in_every_order():
    # 123.456 as float32 is 0x42F6E979: A=42 B=F6 C=E9 D=79
    wire = {"ABCD": [0x42F6, 0xE979], "CDAB": [0xE979, 0x42F6],
            "BADC": [0xF642, 0x79E9], "DCBA": [0x79E9, 0xF642]}
    for order, regs in wire.items():
        assert decode(regs, "float32", order) == pytest.approx(123.456, rel=1e-6), order
        assert encode(123.456, "float32", order) == regs


def test_int64_word_swap_reverses_all_four_words():
    v = 0x0102030405060708
    assert encode(v, "int64", "ABCD") == [0x0102, 0x0304, 0x0506, 0x0708]
    assert encode(v, "int64", "CDAB") == [0x0708, 0x0506, 0x0304, 0x0102]
    assert encode(v, "int64", "DCBA") == [0x0807, 0x0605, 0x0403, 0x0201]


ints = {"int16": (-2**15, 2**15 - 1), "uint16": (0, 2**16 - 1), "int32": (-2**31, 2**31 - 1),
        "uint32": (0, 2**32 - 1), "int64": (-2**63, 2**63 - 1), "uint64": (0, 2**64 - 1)}


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(ints)), st.sampled_from(ORDERS), st.data())
def test_integers_round_trip_and_match_struct(typ, order, data):
    lo, hi = ints[typ]
    v = data.draw(st.integers(lo, hi))
    regs = encode(v, typ, order)
    assert decode(regs, typ, order) == v
    if order == "ABCD":  # the Modbus convention is plain big-endian
        fmt = {"int16": ">h", "uint16": ">H", "int32": ">i", "uint32": ">I", "int64": ">q",
               "uint64": ">Q"}[typ]
        assert b"".join(r.to_bytes(2, "big") for r in regs) == struct.pack(fmt, v)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(ORDERS), st.floats(allow_nan=False, width=32))
def test_float32_round_trip(order, v):
    assert decode(encode(v, "float32", order), "float32", order) == v


def test_scale_offset_string_and_bit():
    regs = encode(42.5, "int16", "ABCD", scale=0.1, offset=-10)
    assert regs == [525] and decode(regs, "int16", scale=0.1, offset=-10) == pytest.approx(42.5)
    s = encode("PUMP-1", "string", "BADC", length=4)
    assert len(s) == 4 and decode(s, "string", "BADC") == "PUMP-1"
    assert decode([0b1000], "bit", bit=3) == 1.0 and decode([0b1000], "bit", bit=2) == 0.0


def test_plan_coalesces_adjacent_and_respects_limits():
    spans = [Span("holding", 0, 2, "a"), Span("holding", 2, 2, "b"), Span("holding", 10, 1, "c"),
             Span("input", 0, 1, "d"), Span("coil", 5, 1, "e"), Span("coil", 6, 1, "f")]
    reqs = plan_reads(spans)
    got = sorted((r.table, r.address, r.count, [t.name for t in r.tags]) for r in reqs)
    assert got == [("coil", 5, 2, ["e", "f"]), ("holding", 0, 4, ["a", "b"]),
                   ("holding", 10, 1, ["c"]), ("input", 0, 1, ["d"])]
    # a gap allowance merges c too; a small device limit splits again
    assert len(plan_reads(spans[:3], max_gap=6)) == 1
    assert [(r.address, r.count) for r in plan_reads(spans[:3], max_gap=6, max_registers=4)] \
        == [(0, 4), (10, 1)]
    many = [Span("holding", i * 2, 2, f"t{i}") for i in range(100)]  # 200 registers
    assert [r.count for r in plan_reads(many)] == [124, 76]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(ints) + ["float32", "float64"]), st.sampled_from(ORDERS),
       st.integers(0, 3), st.data())
def test_fast_decoder_matches_decode(typ, order, pad, data):
    from tocsin.connectors.modbus_codec import compile_decoder

    if typ in ints:
        v = data.draw(st.integers(*ints[typ]))
    else:
        v = data.draw(st.floats(allow_nan=False, width=32 if typ == "float32" else 64))
    regs = [0xAAAA] * pad + encode(v, typ, order) + [0x5555]
    raw = b"".join(r.to_bytes(2, "big") for r in regs)
    assert compile_decoder(typ, order)(raw, 2 * pad) == decode(regs[pad:-1], typ, order)
    sc = compile_decoder(typ, order, scale=0.5, offset=3.0)(raw, 2 * pad)
    assert sc == pytest.approx(decode(regs[pad:-1], typ, order, scale=0.5, offset=3.0))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(sorted(ints) + ["float32", "float64", "bit"]),
                          st.sampled_from(ORDERS), st.integers(0, 2), st.booleans()),
                min_size=1, max_size=8), st.data())
def test_block_decoder_matches_decode_for_mixed_reads(layout, data):
    """One read holding tags of several types, orders, gaps and scalings decodes, in one
    call, to what the per-tag reference decoder gives."""
    from tocsin.connectors.modbus_block import BlockDecoder, TagCodec

    regs, codecs, want = [], [], []
    for typ, order, gap, scaled in layout:
        regs += [0xBEEF] * gap
        scale, offset = (0.5, 3.0) if scaled and typ != "bit" else (1.0, 0.0)
        if typ == "bit":
            b = data.draw(st.integers(0, 15))
            tag_regs = [data.draw(st.integers(0, 0xFFFF))]
            codecs.append(TagCodec(len(regs), "bit", bit=b))
            want.append(decode(tag_regs, "bit", bit=b))
        else:
            v = (data.draw(st.integers(*ints[typ])) if typ in ints else
                 data.draw(st.floats(allow_nan=False, allow_infinity=False,
                                     width=32 if typ == "float32" else 64)))
            tag_regs = encode(v, typ, order)
            codecs.append(TagCodec(len(regs), typ, order, scale=scale, offset=offset))
            want.append(decode(tag_regs, typ, order, scale=scale, offset=offset))
        regs += tag_regs
    raw = b"".join(r.to_bytes(2, "big") for r in regs)
    got = BlockDecoder(codecs)(raw)
    assert got.dtype == float and len(got) == len(want)
    for g, w in zip(got.tolist(), want):
        assert g == pytest.approx(float(w), rel=1e-15, abs=0) or (w != w and g != g)


def test_block_decoder_bits_short_reads_and_frame_layout():
    import numpy as np

    from tocsin.connectors.modbus_block import BlockDecoder, PollLayout, TagCodec

    assert BlockDecoder([TagCodec(2, "bit"), TagCodec(0, "bit")], bits=True)(
        [True, False, True]).tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match="bytes"):
        BlockDecoder([TagCodec(1, "float32")])(b"\x00" * 4)  # a short answer from the device
    lay = PollLayout([("a", "p1"), ("b", "p2"), ("c", "p1")])
    vals, q = lay.new_poll()
    vals[:] = [1.0, np.inf, np.nan]
    q[0] = 0
    got = {a: (t, ts.tolist(), v.tolist(), qq.tolist()) for a, t, ts, v, qq in
           lay.split(vals, q, 7)}
    assert got["p1"][0] == ["a", "c"] and got["p1"][1] == [7, 7]
    assert got["p1"][3] == [0, 2] and got["p2"][3] == [2]  # NaN and inf are bad, never good
    v2, q2 = lay.new_poll()  # every poll gets fresh vectors: frames keep views of the last
    assert np.isnan(v2).all() and not q2.any()
    v2[:], q2[:] = 5.0, 1
    assert vals[0] == 1.0 and np.isnan(vals[2]) and q.tolist() == [0, 2, 2]
    assert np.isnan(lay.new_poll()[0]).all()  # the templates are never handed out
