"""The store-and-forward spool: order, acknowledgement, restart, and the size policy."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tocsin.connectors.spool import DiskSpool, SpoolFull


def test_fifo_ack_and_restart(tmp_path):
    s = DiskSpool(tmp_path, segment_bytes=200)
    for i in range(50):
        s.append(b"rec%03d" % i)
    assert s.pending == 50
    first = s.take(10)
    assert first == [b"rec%03d" % i for i in range(10)]
    assert s.take(5) == [b"rec%03d" % i for i in range(10, 15)]
    s.ack(10)
    s.close()
    # a restart forgets what was handed out but not acknowledged, and never loses a record
    s2 = DiskSpool(tmp_path, segment_bytes=200)
    assert s2.pending == 40
    assert s2.take(100) == [b"rec%03d" % i for i in range(10, 50)]
    s2.ack(40)
    assert s2.pending == 0 and s2.take(5) == []
    assert len(list(tmp_path.glob("seg-*.log"))) == 1  # delivered segments are deleted


def test_rewind_hands_out_unacknowledged_again(tmp_path):
    s = DiskSpool(tmp_path)
    for i in range(5):
        s.append(b"%d" % i)
    assert s.take(3) == [b"0", b"1", b"2"]
    s.ack(1)
    s.rewind()
    assert s.take(10) == [b"1", b"2", b"3", b"4"]


def test_full_spool_drops_oldest_visibly_or_rejects(tmp_path):
    s = DiskSpool(tmp_path / "a", max_bytes=1000, segment_bytes=300)
    for i in range(40):
        s.append(b"x" * 50 + b"%02d" % i)
    assert s.dropped > 0 and s.pending == 40 - s.dropped
    got = s.take(100)
    assert got[-1].endswith(b"39") and len(got) == s.pending  # newest kept, order intact
    r = DiskSpool(tmp_path / "b", max_bytes=500, segment_bytes=300, policy="reject")
    with pytest.raises(SpoolFull, match="full"):
        for _ in range(40):
            r.append(b"y" * 50)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["append", "take", "ack", "rewind", "reopen"]),
                          st.integers(1, 7)), max_size=60))
def test_memory_tail_and_files_agree_with_a_plain_fifo(tmp_path_factory, ops):
    """Whether a record is handed out from memory or read back from the files (after a
    restart, a rewind or when the memory bound is passed), order and acknowledgement behave
    like a plain FIFO."""
    d = tmp_path_factory.mktemp("spool")
    opts = {"segment_bytes": 120, "memory_bytes": 40}
    s = DiskSpool(d, **opts)
    recs: list[bytes] = []
    acked = sent = 0
    for op, k in ops:
        if op == "append":
            for _ in range(k):
                recs.append(b"r%04d" % len(recs))
                s.append(recs[-1])
        elif op == "take":
            assert s.take(k) == recs[sent:sent + k]
            sent = min(len(recs), sent + k)
        elif op == "ack":
            k = min(k, sent - acked)
            s.ack(k)
            acked += k
        elif op == "rewind":
            s.rewind()
            sent = acked
        else:
            s.close()
            s = DiskSpool(d, **opts)
            sent = acked
        assert s.pending == len(recs) - acked
    assert s.take(10_000) == recs[sent:]
    s.ack(len(recs) - acked)
    assert s.pending == 0
    s.close()
    assert DiskSpool(d, **opts).pending == 0


def test_unflushed_appends_are_in_the_file_before_they_are_handed_out(tmp_path):
    """append(flush=False) batches the write calls; take() flushes first, so every record it
    hands out is in the file, and a restart finds everything that was taken."""
    sp = DiskSpool(tmp_path)
    for i in range(5):
        sp.append(b"r%d" % i, flush=False)
    assert sp.take(3) == [b"r0", b"r1", b"r2"]
    seg = sorted(tmp_path.glob("seg-*.log"))[-1]
    assert seg.stat().st_size == 5 * (8 + 2)  # all five written by that take
    sp.ack(2)
    sp.close()
    again = DiskSpool(tmp_path)
    assert again.pending == 3 and again.take(10) == [b"r2", b"r3", b"r4"]


def test_buffered_appends_across_segments_keep_order_and_positions(tmp_path):
    """The writer's position is tracked without a tell() per append: records appended
    unflushed across several segment rotations are handed out in order, acknowledged
    segment by segment, and a restart resumes exactly after the last acknowledged one."""
    sp = DiskSpool(tmp_path, segment_bytes=100, memory_bytes=10_000)
    recs = [b"rec%03d" % i for i in range(40)]  # 8 + 6 bytes each: 7 per segment
    for r in recs[:25]:
        sp.append(r, flush=False)
    assert sp.take(10) == recs[:10]
    sp.ack(10)
    for r in recs[25:]:
        sp.append(r, flush=False)
    assert sp.take(100) == recs[10:]
    sp.ack(13)
    assert len(list(tmp_path.glob("seg-*.log"))) < 40 * 14 // 100  # acknowledged ones went
    sp.close()
    again = DiskSpool(tmp_path, segment_bytes=100)
    assert again.pending == 17 and again.take(100) == recs[23:]
    for seg in tmp_path.glob("seg-*.log"):
        assert seg.stat().st_size <= 100
