"""The runtime's pure parts: keyed state and its change set, restore modes, the emitter,
the offsets a batch commits, and the settings' validation."""

from __future__ import annotations

import pytest

from tocsin.config.worker import load_settings
from tocsin.contracts.deadletter import DeadLetter
from tocsin.errors import ConfigError
from tocsin.streams.runtime import KeyedState, Operator, Record, Restore
from tocsin.streams.runtime.counting import Counting
from tocsin.streams.runtime.emitter import BatchEmitter
from tocsin.streams.runtime.naming import changelog_topic, group_id, transactional_id
from tocsin.streams.runtime.runner import _offsets


def test_state_tracks_writes_and_deletes_once_per_commit():
    st = KeyedState(3)
    st[b"a"] = b"1"
    st[b"a"] = b"2"
    st[b"b"] = b"x"
    del st[b"b"]
    assert st.dirty and st.take_changes() == {b"a": b"2", b"b": None}
    assert not st.dirty and st.take_changes() == {}
    assert dict(st) == {b"a": b"2"} and st.get(b"zz") is None and len(st) == 1


def test_state_restore_is_not_logged_and_tombstones_delete():
    st = KeyedState(0)
    st.apply_changelog(b"a", b"1")
    st.apply_changelog(b"b", b"2")
    st.apply_changelog(b"a", None)
    assert dict(st) == {b"b": b"2"} and not st.dirty


def test_unlogged_state_keeps_no_changes_and_types_are_checked():
    st = KeyedState(0, logged=False)
    st[b"k"] = b"v"
    assert not st.dirty
    with pytest.raises(TypeError):
        st["k"] = b"v"  # type: ignore[index]


def test_restore_modes():
    assert Restore.changelog().kind == "changelog"
    r = Restore.replay(60)
    assert (r.kind, r.horizon_s) == ("replay", 60.0)
    with pytest.raises(ValueError):
        Restore.replay(0)


def test_emitter_collects_dead_letters_and_mutes():
    em = BatchEmitter("p.tocsin.deadletter", "w1", limit=4)
    rec = Record("p.in", 1, 7, b"k", b"0123456789", 1_700_000_000_000)
    em.send("p.out", b"k", b"v")
    em.dead_letter(rec, "ValueError: bad", "process")
    out = em.take()
    assert out[0] == ("p.out", b"k", b"v") and em.take() == []
    topic, key, value = out[1]
    dl = DeadLetter.decode(value)
    assert (topic, key) == ("p.tocsin.deadletter", b"p.in")
    assert (dl.partition, dl.offset, dl.stage, dl.length, dl.truncated) == (1, 7, "process",
                                                                          10, True)
    assert dl.origin_ts == 1_700_000_000_000 * 1_000_000
    em.muted = True
    em.send("p.out", b"k", b"v")
    em.dead_letter(rec, "x", "decode")
    assert em.take() == []


def test_offsets_are_next_offset_per_partition_with_timestamp():
    recs = [Record("t", 0, 5, None, b"", 10), Record("t", 1, 9, None, b"", 20),
            Record("t", 0, 6, None, b"", 30)]
    got = sorted((o.topic, o.partition, o.offset, o.metadata) for o in _offsets(recs))
    assert got == [("t", 0, 7, "30"), ("t", 1, 10, "20")]


def test_counting_operator_is_an_operator_and_counts_per_key():
    op = Counting("p.")
    assert isinstance(op, Operator)
    st = KeyedState(0)
    op.open(0, st)
    em = BatchEmitter("dl", "w")
    op.process([Record("p.rt.in", 0, i, b"k%d" % (i % 2), b"%d" % i) for i in range(5)], em)
    assert [v for _, _, v in em.take()] == [b"k0:1:0", b"k1:1:1", b"k0:2:2", b"k1:2:3",
                                            b"k0:3:4"]
    assert st.take_changes() == {b"k0": b"3", b"k1": b"2"}


def test_names():
    g = group_id("tocsin", "t1.", "thresholds")
    assert g == "tocsin-t1.thresholds"
    assert changelog_topic("tocsin", "t1.", "thresholds") == "t1.tocsin-thresholds-changelog"
    assert transactional_id(g, "w2") == "tocsin-t1.thresholds-w2"


def test_settings_validate_guarantee_and_heartbeat():
    assert load_settings().processing_guarantee == "exactly_once"
    with pytest.raises(ConfigError, match="PROCESSING_GUARANTEE"):
        load_settings(processing_guarantee="maybe")
    with pytest.raises(ConfigError, match="heartbeat_interval_ms"):
        load_settings(session_timeout_ms=3000, heartbeat_interval_ms=1500)
    assert load_settings(group_protocol="consumer", session_timeout_ms=3000,
                         heartbeat_interval_ms=1500).group_protocol == "consumer"


@pytest.fixture
def python_gc():
    """Python's GC as it was before the test (prepare() changes process-wide state)."""
    import gc

    before = gc.get_threshold()
    yield gc
    gc.unfreeze()
    gc.set_threshold(*before)


def test_gc_setup_freezes_start_up_objects_and_sets_the_threshold(python_gc):
    from tocsin.streams.runtime import gc_setup

    gc = python_gc
    gc.set_threshold(700, 10, 10)
    s = load_settings()
    assert s.runtime_gc_freeze is True and s.runtime_gc_gen0 == 10_000
    start_up = [[i] for i in range(1000)]  # tracked objects alive at start-up
    text = gc_setup.prepare(s)
    assert gc.get_threshold() == (10_000, 10, 10)
    assert gc.get_freeze_count() >= len(start_up)
    assert "froze" in text and "10000" in text
    # frozen objects are out of every generation: a full collection no longer visits them
    in_generations = {id(o) for o in gc.get_objects()}
    assert all(gc.is_tracked(o) and id(o) not in in_generations for o in start_up)
    # cycles made after start-up are still collected
    a: list = []
    a.append(a)
    del a
    assert gc.collect() >= 1


def test_gc_setup_can_keep_pythons_defaults(python_gc, monkeypatch):
    from tocsin.streams.runtime import gc_setup

    gc = python_gc
    gc.set_threshold(700, 10, 10)
    monkeypatch.setenv("TOCSIN_RUNTIME_GC_FREEZE", "false")
    monkeypatch.setenv("TOCSIN_RUNTIME_GC_GEN0", "0")
    frozen = gc.get_freeze_count()
    gc_setup.prepare(load_settings())
    assert gc.get_threshold() == (700, 10, 10) and gc.get_freeze_count() == frozen
    with pytest.raises(ConfigError, match="TOCSIN_RUNTIME_GC_GEN0"):
        load_settings(runtime_gc_gen0=-1)
