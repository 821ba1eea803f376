"""The worker's Faust agents in process: features, anomaly and the dead-letter path (the
threshold path is a runtime operator: tests/unit/test_thresholds_operator.py).

Each test builds the real app (:func:`tocsin.streams.app.create_app`) and drives one agent with
Faust's own test context (``agent.test_context()``: the agent reads an in-memory channel, its
stream, events and batching are Faust's). faust-streaming 0.15 has no in-memory broker
(``memory://`` is not a transport there), so the one stand-in is the Kafka producer: a recorder
of what the agents send, installed as ``app.producer``. Everything between the bytes in and the
bytes out is the production code; the expectations come from the pure cores on the same input.
"""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
from faust.types import TP, RecordMetadata

from tests.waiting import async_wait_for
from tocsin.config.plant import load_plant
from tocsin.config.worker import load_settings
from tocsin.connectors.model_sources import simulated_frames
from tocsin.contracts import features as fc
from tocsin.contracts import topics
from tocsin.contracts.deadletter import DeadLetter
from tocsin.contracts.readings import ReadingsFrame
from tocsin.contracts.scores import Scores
from tocsin.detectors.windows import WindowEngine
from tocsin.models.scoring import AnomalyScorer, ModelRegistry
from tocsin.streams import metrics
from tocsin.streams.app import create_app

PREFIX = "u."


class RecordingProducer:
    """Stands in for the Kafka producer (the only part that needs a broker): keeps every
    message the app sends, in order, and acknowledges it at once."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes | None]] = []

    async def maybe_start(self) -> None:
        return None

    async def send(self, topic, key, value, partition=None, timestamp=None, headers=None, *,
                   transactional_id=None):
        self.sent.append((topic, key, value))
        fut = asyncio.get_running_loop().create_future()
        fut.set_result(RecordMetadata(topic=topic, partition=0, topic_partition=TP(topic, 0),
                                      offset=len(self.sent) - 1, timestamp=time.time(),
                                      timestamp_type=0))
        return fut

    async def send_and_wait(self, *args, **kwargs):
        return await (await self.send(*args, **kwargs))

    def on(self, name: str) -> list[tuple[bytes | None, bytes | None]]:
        return [(k, v) for t, k, v in self.sent if t == PREFIX + name]


def _app(tmp_path, agents: str, **settings):
    s = load_settings(broker="127.0.0.1:1", topic_prefix=PREFIX, partitions=1,
                      data_dir=tmp_path / "worker", agents=agents, batch_wait_s=0.01, **settings)
    app = create_app(s)
    app.producer = RecordingProducer()
    return app, app.agents[agents]


async def _until(producer: RecordingProducer, name: str, n: int, timeout: float = 30.0):
    await async_wait_for(lambda: len(producer.on(name)) >= n, timeout,
                         f"{n} message(s) on {PREFIX + name}",
                         seen=lambda: [(t, len(v or b"")) for t, _, v in producer.sent])
    return producer.on(name)


def _frame(values: dict[str, float], ts: int, seq: int, asset: str = "pump-1") -> ReadingsFrame:
    return ReadingsFrame(asset, list(values), np.full(len(values), ts, np.int64),
                         np.array(list(values.values()), float), np.zeros(len(values), np.uint8),
                         seq=seq)


def _dead_letters_counted(topic: str, stage: str) -> float:
    return metrics.DEADLETTERS.labels(topic, stage)._value.get()


async def test_features_agent_sends_what_the_window_engine_closes(tmp_path):
    plant = load_plant(None)
    app, agent = _app(tmp_path, "features")
    frames = list(simulated_frames(60, seed=3, assets=["pump-1"]))
    # the expectation: the pure engine fed the same frames
    engine = WindowEngine(plant.features, plant.asset_tags())
    for f in frames:
        engine.add(f.asset, f.tags, f.ts, f.values, f.quality)
    want = engine.close_ready()
    assert len(want) > 10, "test has no power: too few windows closed"
    garbage = b"\x00not a frame"
    async with agent.test_context() as ctx:
        for i, f in enumerate(frames):
            await ctx.put(f.encode(), key=b"pump-1", wait=False)
            if i == 20:  # without the thresholds agent, the features agent dead-letters
                await ctx.put(garbage, key=b"pump-1", wait=False)
        sent = await _until(app.producer, topics.FEATURES, len(want))
        dls = await _until(app.producer, topics.DEADLETTER, 1)
    assert len(sent) == len(want)
    got = [fc.decode(v) for _, v in sent]
    for (row, names, fhash), exp, (key, _) in zip(got, want, sent):
        assert key == b"pump-1" and row.asset == exp.asset and row.end == exp.end
        assert row.tags == exp.tags and names == list(engine.names)
        assert fhash == plant.features.hash(plant.asset_tags()["pump-1"])
        for scale, mat in exp.scales.items():
            np.testing.assert_allclose(row.scales[scale], mat, rtol=1e-12, equal_nan=True)
            assert row.counts[scale].tolist() == exp.counts[scale].tolist()
    (dl,) = [DeadLetter.decode(v) for _, v in dls]
    assert dl.raw_payload() == garbage and dl.offset == 21 and dl.stage == "decode"


async def test_anomaly_agent_sends_what_the_scorer_gives(tmp_path, tiny_models):
    root, art, _ = tiny_models
    plant = load_plant(None)
    frames = list(simulated_frames(90, seed=4, assets=["pump-1"],
                                   faults=[{"asset": "pump-1", "fault": "bearing_wear",
                                            "start": 45}]))
    engine = WindowEngine(plant.features, plant.asset_tags())
    for f in frames:
        engine.add(f.asset, f.tags, f.ts, f.values, f.quality)
    rows = engine.close_ready()
    sizes = {s.name: s.size_ns for s in plant.features.scales}
    fhash = plant.features.hash(plant.asset_tags()["pump-1"])
    messages = [fc.encode(r, engine.names, sizes, fhash) for r in rows]
    # the expectation: the pure scorer with the same model on the same rows
    pure = AnomalyScorer(ModelRegistry(root), plant.asset_types())
    pure.refresh()
    want = pure.process([fc.decode(m)[0] for m in messages], 0)
    assert len(want) > 5, "test has no power: too few ticks scored"

    app, agent = _app(tmp_path, "anomaly", model_dir=root)
    garbage = b'{"schema": "tocsin.features/1"}'
    async with agent.test_context() as ctx:
        for i, m in enumerate(messages):
            await ctx.put(m, key=b"pump-1", wait=False)
            if i == 3:
                await ctx.put(garbage, key=b"pump-1", wait=False)
        sent = await _until(app.producer, topics.SCORES, len(want), timeout=60)
        dls = await _until(app.producer, topics.DEADLETTER, 1)
    got = [Scores.decode(v) for _, v in sent]
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert (g.asset, g.asset_type, g.ts, g.source_ts) == (w.asset, w.asset_type, w.ts,
                                                              w.source_ts)
        assert g.model_version == art.version == w.model_version
        assert set(g.models) == set(w.models) and {"iforest", "lstm_ae"} <= set(g.models)
        for name, ws in w.models.items():
            gs = g.models[name]
            assert (gs is None) == (ws is None), name
            if ws is not None:
                assert gs.ratio == pytest.approx(ws.ratio, rel=1e-4, abs=1e-6), name
    assert all(k == b"pump-1" for k, _ in sent)
    (dl,) = [DeadLetter.decode(v) for _, v in dls]
    assert dl.source_topic == PREFIX + topics.FEATURES and dl.raw_payload() == garbage
    assert dl.offset == 4 and dl.stage == "decode"


async def test_anomaly_agent_without_a_model_scores_nothing_and_keeps_running(tmp_path):
    plant = load_plant(None)
    app, agent = _app(tmp_path, "anomaly", model_dir=tmp_path / "no-models")
    engine = WindowEngine(plant.features, plant.asset_tags())
    for f in simulated_frames(30, seed=5, assets=["pump-1"]):
        engine.add(f.asset, f.tags, f.ts, f.values, f.quality)
    sizes = {s.name: s.size_ns for s in plant.features.scales}
    rows = engine.close_ready()
    async with agent.test_context() as ctx:
        for r in rows:
            await ctx.put(fc.encode(r, engine.names, sizes, "h"), key=b"pump-1", wait=False)
        await ctx.put(b"[]", key=b"pump-1", wait=False)  # and then a bad one: still read
        await _until(app.producer, topics.DEADLETTER, 1)
    assert app.producer.on(topics.SCORES) == []
