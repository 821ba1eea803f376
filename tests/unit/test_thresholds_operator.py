"""The threshold operator (the threshold path on the runtime), driven without Kafka: raise and
clear with the same alert id, the poison rule, unconfigured assets counted, and a restart from
the changelog continuing an open alarm under its id."""

from __future__ import annotations

import time

import numpy as np

from tocsin.config.plant import load_plant
from tocsin.config.worker import load_settings
from tocsin.contracts import topics
from tocsin.contracts.alerts import Alert
from tocsin.contracts.deadletter import DeadLetter
from tocsin.contracts.readings import ReadingsFrame
from tocsin.detectors.threshold_alerts import alerter_from_plant
from tocsin.streams import metrics
from tocsin.streams.runtime import KeyedState, Operator, Record
from tocsin.streams.runtime.emitter import BatchEmitter
from tocsin.streams.thresholds_op import ThresholdsOperator

PREFIX = "u."
S = load_settings(topic_prefix=PREFIX)


def _frame(values: dict[str, float], ts: int, seq: int, asset: str = "pump-1") -> ReadingsFrame:
    return ReadingsFrame(asset, list(values), np.full(len(values), ts, np.int64),
                         np.array(list(values.values()), float), np.zeros(len(values), np.uint8),
                         seq=seq)


def _records(values: list[bytes], start: int = 0) -> list[Record]:
    return [Record(PREFIX + topics.READINGS, 0, start + i, b"pump-1", v, 1_700_000_000_000)
            for i, v in enumerate(values)]


def _op(state: KeyedState) -> ThresholdsOperator:
    op = ThresholdsOperator(S, load_plant(None))
    assert isinstance(op, Operator)
    op.open(0, state)
    return op


def _temps(t0: int) -> list[ReadingsFrame]:
    # above the high limit (90) and back below it less the deadband, slowly enough (2 s apart)
    # to stay inside the rate limit
    return [_frame({"bearing_temp": 88.0, "flow": 100.0}, t0, 1),
            _frame({"bearing_temp": 92.0, "flow": 100.0}, t0 + 2 * 10**9, 2),
            _frame({"bearing_temp": 86.0, "flow": 100.0}, t0 + 4 * 10**9, 3)]


def test_raises_clears_and_dead_letters_garbage():
    t0 = time.time_ns()
    frames = _temps(t0)
    garbage = b'{"schema": "tocsin.readings/1", "asset": "pump-1"'
    counted = metrics.DEADLETTERS.labels(PREFIX + topics.READINGS, "decode")._value.get()
    em = BatchEmitter(S.topic(topics.DEADLETTER), "worker-1")
    _op(KeyedState(0)).process(_records([frames[0].encode(), frames[1].encode(), garbage,
                                         frames[2].encode()]), em)
    out = em.take()
    alerts = [(k, Alert.decode(v)) for t, k, v in out if t == PREFIX + topics.ALERTS]
    pure = alerter_from_plant(load_plant(None))
    want = [a for f in frames for a in pure.process(f, time.time_ns())]
    got = [a for _, a in alerts]
    assert [(a.event.value, a.rule, a.tag, a.value, a.source_ts) for a in got] == [
        (a.event.value, a.rule, a.tag, a.value, a.source_ts) for a in want]
    assert [(a.event.value, a.tag) for a in got] == [("raised", "bearing_temp"),
                                                     ("cleared", "bearing_temp")]
    assert got[0].alert_id == got[1].alert_id and [k for k, _ in alerts] == [
        got[0].alert_id.encode()] * 2
    ((topic, key, value),) = [o for o in out if o[0] == PREFIX + topics.DEADLETTER]
    dl = DeadLetter.decode(value)
    assert key == (PREFIX + topics.READINGS).encode() and dl.offset == 2
    assert dl.raw_payload() == garbage and dl.stage == "decode" and dl.worker == "worker-1"
    assert metrics.DEADLETTERS.labels(PREFIX + topics.READINGS, "decode")._value.get() == \
        counted + 1


def test_unconfigured_asset_is_counted_and_keeps_no_state():
    before = metrics.UNKNOWN_ASSETS._value.get()
    st = KeyedState(0)
    em = BatchEmitter("dl", "w")
    frames = [_frame({"temp": 1e6}, time.time_ns(), i + 1, asset="ghost-9").encode()
              for i in range(3)]
    _op(st).process(_records(frames), em)
    assert em.take() == [] and len(st) == 0
    assert metrics.UNKNOWN_ASSETS._value.get() == before + 3


def test_restart_from_the_changelog_continues_the_open_alarm_under_its_id():
    t0 = time.time_ns()
    frames = _temps(t0)
    st = KeyedState(0)
    em = BatchEmitter("dl", "w")
    _op(st).process(_records([frames[0].encode(), frames[1].encode()]), em)
    (raised,) = [Alert.decode(v) for _, _, v in em.take()]
    restored = KeyedState(0)
    for key, value in st.take_changes().items():  # what the changelog carries
        restored.apply_changelog(key, value)
    again = _op(restored)
    again.process(_records([frames[2].encode()], 2), em)
    (cleared,) = [Alert.decode(v) for _, _, v in em.take()]
    assert (raised.event.value, cleared.event.value) == ("raised", "cleared")
    assert cleared.alert_id == raised.alert_id and cleared.opened_ts == raised.opened_ts
