"""The features and anomaly operators (tocsin.streams.plant_ops) driven as the runner drives
them: records in, the runtime's own BatchEmitter collecting what one transaction would send,
a muted emitter for the replay after a restart. The expectations come from the pure cores on
the same input; the restart tests check that a replay of ``restore_mode().horizon_s`` of input
continues exactly where an uninterrupted operator is."""

from __future__ import annotations

import numpy as np
import pytest

from tocsin.config.plant import load_plant
from tocsin.config.worker import load_settings
from tocsin.connectors.model_sources import simulated_frames
from tocsin.contracts import features as fc
from tocsin.contracts import topics
from tocsin.contracts.deadletter import DeadLetter
from tocsin.contracts.scores import Scores
from tocsin.detectors.windows import NS, WindowEngine
from tocsin.models.scoring import AnomalyScorer, ModelRegistry
from tocsin.streams.plant_ops import AnomalyOperator, FeaturesOperator
from tocsin.streams.runtime.emitter import BatchEmitter
from tocsin.streams.runtime.operator import Record
from tocsin.streams.runtime.state import KeyedState

PREFIX = "u."
PLANT = load_plant(None)


def settings(tmp_path, agents: str, **kw):
    return load_settings(broker="127.0.0.1:1", topic_prefix=PREFIX, partitions=1,
                         data_dir=tmp_path / "w", agents=agents, **kw)


def records(topic: str, values: list[bytes], key: bytes = b"pump-1", ts_ms=None) -> list[Record]:
    return [Record(PREFIX + topic, 0, i, key, v, ts_ms[i] if ts_ms else 0)
            for i, v in enumerate(values)]


def drive(op, recs: list[Record], batch: int, emitter: BatchEmitter | None = None
          ) -> list[tuple[str, bytes | None, bytes]]:
    out = emitter or BatchEmitter(PREFIX + topics.DEADLETTER, "w1")
    sent = []
    for i in range(0, len(recs), batch):
        op.process(recs[i:i + batch], out)
        op.tick(0, out)
        sent += out.take()
    return sent


def on(sent, name):
    return [(k, v) for t, k, v in sent if t == PREFIX + name]


def test_features_operator_sends_what_the_window_engine_closes(tmp_path):
    op = FeaturesOperator(settings(tmp_path, "features"), PLANT)
    op.open(0, KeyedState(0, logged=False))
    frames = list(simulated_frames(60, seed=3, assets=["pump-1"]))
    engine = WindowEngine(PLANT.features, PLANT.asset_tags())
    for f in frames:
        engine.add(f.asset, f.tags, f.ts, f.values, f.quality)
    want = engine.close_ready()
    assert len(want) > 10, "test has no power: too few windows closed"
    garbage = b"\x00not a frame"
    values = [f.encode() for f in frames]
    values.insert(21, garbage)  # without the thresholds stage, features dead-letters
    sent = drive(op, records(topics.READINGS, values), batch=17)
    got = on(sent, topics.FEATURES)
    assert len(got) == len(want)
    for (key, v), exp in zip(got, want):
        row, names, fhash = fc.decode(v)
        assert key == b"pump-1" and row.asset == exp.asset and row.end == exp.end
        assert names == list(engine.names) and row.source_ts == exp.source_ts
        assert fhash == PLANT.features.hash(PLANT.asset_tags()["pump-1"])
        for scale, mat in exp.scales.items():
            np.testing.assert_allclose(row.scales[scale], mat, rtol=1e-12, equal_nan=True)
    (dl,) = [DeadLetter.decode(v) for _, v in on(sent, topics.DEADLETTER)]
    assert dl.raw_payload() == garbage and dl.offset == 21 and dl.stage == "decode"


def _stream(seconds: int, seed: int):
    frames = list(simulated_frames(seconds, seed=seed, assets=["pump-1"],
                                   faults=[{"asset": "pump-1", "fault": "bearing_wear",
                                            "start": seconds // 2}]))
    # Kafka timestamps as a live connector gives them: about the frame's newest source time
    ts = [int(f.ts.max()) // 1_000_000 for f in frames]
    return [f.encode() for f in frames], ts


def _replayed(op, recs: list[Record], crash: int) -> list[Record]:
    """What the runner re-feeds on assignment: the records whose Kafka time lies within the
    horizon before the last committed record's (offsets_for_times)."""
    last = recs[crash - 1].timestamp_ms
    lo = last - int(op.restore_mode().horizon_s * 1000)
    return [r for r in recs[:crash] if r.timestamp_ms >= lo]


def test_features_restart_replays_its_horizon_and_continues_exactly(tmp_path):
    s = settings(tmp_path, "features")
    values, ts = _stream(400, seed=7)
    recs = records(topics.READINGS, values, ts_ms=ts)
    whole = FeaturesOperator(s, PLANT)
    whole.open(0, KeyedState(0, logged=False))
    want = on(drive(whole, recs, batch=9), topics.FEATURES)
    crash = len(recs) * 2 // 3
    first = FeaturesOperator(s, PLANT)
    first.open(0, KeyedState(0, logged=False))
    before = on(drive(first, recs[:crash], batch=9), topics.FEATURES)
    again = FeaturesOperator(s, PLANT)  # a new process: nothing in memory
    again.open(0, KeyedState(0, logged=False))
    replay = _replayed(again, recs, crash)
    assert 0 < len(replay) < crash
    muted = BatchEmitter(PREFIX + topics.DEADLETTER, "w1")
    muted.muted = True
    assert drive(again, replay, batch=50, emitter=muted) == []
    after = on(drive(again, recs[crash:], batch=4), topics.FEATURES)
    assert before + after == want
    row = fc.decode(after[0][1])[0]
    assert not np.isnan(row.scales["1s"]).any()  # windows full right after the restart


@pytest.fixture
def feature_records(tiny_models):
    values, ts = _stream(240, seed=4)
    eng = WindowEngine(PLANT.features, PLANT.asset_tags())
    sizes = {s.name: s.size_ns for s in PLANT.features.scales}
    fhash = PLANT.features.hash(PLANT.asset_tags()["pump-1"])
    from tocsin.contracts.readings import ReadingsFrame

    rows = []
    for v in values:
        f = ReadingsFrame.decode(v)
        eng.add(f.asset, f.tags, f.ts, f.values, f.quality)
        rows += eng.close_ready()
    msgs = [fc.encode(r, eng.names, sizes, fhash) for r in rows]
    return records(topics.FEATURES, msgs, ts_ms=[r.end // 1_000_000 for r in rows])


def test_anomaly_operator_sends_what_the_scorer_gives(tmp_path, tiny_models, feature_records):
    root, art, _ = tiny_models
    pure = AnomalyScorer(ModelRegistry(root), PLANT.asset_types())
    pure.refresh()
    want = pure.process([fc.decode(r.value)[0] for r in feature_records], 0)
    assert sum(w.models["lstm_ae"] is not None for w in want) > 5, "no power: few sequences"
    op = AnomalyOperator(settings(tmp_path, "anomaly", model_dir=root), PLANT)
    op.open(0, KeyedState(0, logged=False))
    garbage = Record(PREFIX + topics.FEATURES, 0, 10_000, b"pump-1",
                     b'{"schema": "tocsin.features/1"}')
    recs = feature_records[:4] + [garbage] + feature_records[4:]
    sent = drive(op, recs, batch=16)
    got = [Scores.decode(v) for _, v in on(sent, topics.SCORES)]
    _same_scores(got, want)
    assert got[0].model_version == art.version
    (dl,) = [DeadLetter.decode(v) for _, v in on(sent, topics.DEADLETTER)]
    assert dl.offset == 10_000 and dl.stage == "decode"


def test_anomaly_restart_replays_its_sequences_and_continues(tmp_path, tiny_models,
                                                             feature_records):
    root = tiny_models[0]
    s = settings(tmp_path, "anomaly", model_dir=root)
    whole = AnomalyOperator(s, PLANT)
    whole.open(0, KeyedState(0, logged=False))
    want = [Scores.decode(v) for _, v in on(drive(whole, feature_records, 8), topics.SCORES)]
    crash = len(feature_records) * 3 // 4
    first = AnomalyOperator(s, PLANT)
    first.open(0, KeyedState(0, logged=False))
    before = on(drive(first, feature_records[:crash], 8), topics.SCORES)
    again = AnomalyOperator(s, PLANT)
    again.open(0, KeyedState(0, logged=False))
    replay = _replayed(again, feature_records, crash)
    assert 0 < len(replay) < crash
    muted = BatchEmitter(PREFIX + topics.DEADLETTER, "w1")
    muted.muted = True
    assert drive(again, replay, 32, emitter=muted) == []
    after = on(drive(again, feature_records[crash:], 3), topics.SCORES)
    got = [Scores.decode(v) for _, v in before + after]
    _same_scores(got, want)
    # no warm-up after the restart: the first score already has its LSTM-AE sequence
    assert Scores.decode(after[0][1]).models["lstm_ae"] is not None


def _same_scores(got: list[Scores], want: list[Scores]) -> None:
    """Equal, up to float rounding: ONNX Runtime may round differently with another batch
    composition (batches differ between runs and around a restart)."""
    assert [(g.asset, g.ts, g.source_ts) for g in got] == [(w.asset, w.ts, w.source_ts)
                                                           for w in want]
    for g, w in zip(got, want):
        assert set(g.models) == set(w.models)
        for name, ws in w.models.items():
            gs = g.models[name]
            assert (gs is None) == (ws is None), (name, g.ts)
            if ws is not None:
                assert gs.score == pytest.approx(ws.score, rel=1e-4, abs=1e-6), name


def test_replay_horizons_cover_the_state(tmp_path, tiny_models):
    feats = FeaturesOperator(settings(tmp_path, "features"), PLANT).restore_mode()
    assert feats.kind == "replay" and feats.horizon_s >= 2 * 60 + 10 + 2
    an = AnomalyOperator(settings(tmp_path, "anomaly", model_dir=tiny_models[0]), PLANT)
    seq = max(m.seq_len for m in an.registry.models.values())
    hop = PLANT.features.scales[0].hop_ns / NS
    assert an.restore_mode().horizon_s >= seq * hop + 10
