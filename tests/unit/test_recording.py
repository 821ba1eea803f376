"""The recording format: round trips, and damaged files answered with the position."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tocsin.connectors.recording import (
    FORMAT,
    MAGIC,
    Message,
    RecordingError,
    RecordingReader,
    RecordingWriter,
)
from tocsin.connectors.simulator.scenario import single_fault, write_scenario
from tocsin.contracts import ReadingsFrame

msg_st = st.builds(
    Message,
    topic=st.sampled_from(["a", "b.c"]),
    partition=st.integers(0, 11),
    offset=st.integers(0, 2**40),
    timestamp=st.integers(0, 2**42),
    key=st.one_of(st.none(), st.binary(max_size=20)),
    value=st.one_of(st.none(), st.binary(max_size=300)),
    headers=st.lists(st.tuples(st.text(max_size=8), st.one_of(st.none(), st.binary(max_size=8))),
                     max_size=3),
    timestamp_type=st.sampled_from([1, 2]),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(msg_st, max_size=60), st.integers(1, 7))
def test_round_trip(tmp_path_factory, msgs, block_records):
    path = tmp_path_factory.mktemp("rec") / "x.rec"
    with RecordingWriter(path, {"note": "t"}, block_records=block_records) as w:
        w.declare_topics(["a", "b.c"])
        for m in msgs:
            w.write(m)
    with RecordingReader(path) as r:
        assert list(r) == msgs
        assert r.total == len(msgs) and r.header["note"] == "t"


def _scenario(tmp_path, seconds=20.0):
    path = tmp_path / "s.rec"
    write_scenario(path, single_fault("leak", at=5.0, seconds=seconds))
    return path


def test_scenario_is_deterministic_and_carries_ground_truth(tmp_path):
    a, b = tmp_path / "a.rec", tmp_path / "b.rec"
    write_scenario(a, single_fault("leak", at=5.0, seconds=10.0))
    write_scenario(b, single_fault("leak", at=5.0, seconds=10.0))
    assert a.read_bytes() == b.read_bytes()
    with RecordingReader(a) as r:
        msgs = list(r)
        truth = r.header["ground_truth"]
    assert len(msgs) == 100
    assert truth[0]["fault"] == "leak" and truth[0]["fault_type"] == "hydraulic"
    frame = ReadingsFrame.decode(msgs[0].value)
    assert frame.asset == "pump-1" and len(frame) == 5


def test_truncated_file_names_the_position(tmp_path):
    path = tmp_path / "t.rec"
    with RecordingWriter(path, block_records=50) as w:
        w.declare_topics(["a"])
        for i in range(200):
            w.write(Message("a", 0, i, i, None, b"x" * 100))
    data = path.read_bytes()
    cut = len(data) - 40  # inside the last block
    (tmp_path / "cut.rec").write_bytes(data[:cut])
    with pytest.raises(RecordingError) as exc:
        list(RecordingReader(tmp_path / "cut.rec"))
    assert "truncated at byte" in str(exc.value) and "block 4" in str(exc.value)
    # the whole blocks before the damage can still be replayed on request
    got = list(RecordingReader(tmp_path / "cut.rec", allow_truncated=True))
    assert [m.offset for m in got] == list(range(150))


def test_corrupt_block_names_block_and_byte(tmp_path):
    path = tmp_path / "c.rec"
    with RecordingWriter(path, block_records=50) as w:
        w.declare_topics(["a"])
        for i in range(100):
            w.write(Message("a", 0, i, i, None, bytes(range(256))))
    data = bytearray(path.read_bytes())
    data[-30] ^= 0xFF  # flip a byte in the second block's payload
    (tmp_path / "bad.rec").write_bytes(bytes(data))
    with pytest.raises(RecordingError, match=r"corrupt block 2 at byte \d+: checksum mismatch"):
        list(RecordingReader(tmp_path / "bad.rec"))


def test_newer_format_is_refused_and_garbage_is_named(tmp_path):
    newer = tmp_path / "n.rec"
    hdr = b'{"format": %d, "topics": []}' % (FORMAT + 1)
    newer.write_bytes(MAGIC + struct.pack("<I", len(hdr)) + hdr)
    with pytest.raises(RecordingError, match="newer than this Tocsin supports"):
        RecordingReader(newer)
    junk = tmp_path / "j.rec"
    junk.write_bytes(b"PK\x03\x04 not a recording")
    with pytest.raises(RecordingError, match="not a Tocsin recording"):
        RecordingReader(junk)
