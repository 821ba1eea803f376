"""The features and anomaly operators on the real broker through kill -9, restarts and a second
worker joining and leaving: a read_committed consumer sees exactly the feature rows the pure
window engine gives for the same input (no duplicate, no loss, full windows right after each
restart) and the scores the pure scorer gives (equal up to float rounding; the LSTM-AE
sequences do not warm up again after a restart)."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Producer

from tests.integration.kafka_helpers import read_committed, wait_committed
from tocsin.config.plant import load_plant
from tocsin.connectors.model_sources import simulated_frames
from tocsin.contracts import features as fc
from tocsin.contracts import topics
from tocsin.contracts.scores import Scores
from tocsin.detectors.windows import WindowEngine
from tocsin.models.scoring import AnomalyScorer, ModelRegistry

pytestmark = pytest.mark.integration
ASSETS = ["pump-1", "motor-1", "press-1"]
PLANT = load_plant(None)


def _produce(kafka: str, topic: str, frames) -> None:
    """Kafka timestamps as a live connector gives them (about the source time), so the replay
    horizon, measured in Kafka time, means event time here."""
    p = Producer({"bootstrap.servers": kafka, "enable.idempotence": True, "linger.ms": 5,
                  "partitioner": "murmur2_random"})
    for f in frames:
        p.produce(topic, f.encode(), key=f.asset.encode(),
                  timestamp=int(f.ts.max()) // 1_000_000)
    assert p.flush(30) == 0


def _expected(frames, root):
    eng = WindowEngine(PLANT.features, PLANT.asset_tags())
    rows = []
    for f in frames:
        eng.add(f.asset, f.tags, f.ts, f.values, f.quality)
        rows += eng.close_ready()
    sizes = {s.name: s.size_ns for s in PLANT.features.scales}
    enc = [fc.encode(r, eng.names, sizes, PLANT.features.hash(PLANT.asset_tags()[r.asset]))
           for r in rows]
    scorer = AnomalyScorer(ModelRegistry(root), PLANT.asset_types())
    scorer.refresh()
    return enc, scorer.process([fc.decode(b)[0] for b in enc], 0)


def _by_asset(items, asset_of):
    out: dict[str, list] = {}
    for x in items:
        out.setdefault(asset_of(x), []).append(x)
    return out


def test_kill9_restart_and_a_second_worker_change_no_output(kafka, prefix, spawn, tiny_models):
    root = tiny_models[0]
    start = int(time.time()) - 900
    frames = list(simulated_frames(420, seed=21, assets=ASSETS, start_s=start,
                                   faults=[{"asset": "pump-1", "fault": "bearing_wear",
                                            "start": 300}]))
    want_rows, want_scores = _expected(frames, root)
    env = dict(TOCSIN_AGENTS="features,anomaly", TOCSIN_MODEL_DIR=str(root))
    third = len(frames) // 3
    readings = prefix + topics.READINGS
    group = f"tocsin-{prefix}features"

    w1 = spawn("worker", name="w1", TOCSIN_WORKER_NAME="w1", **env)
    w1.wait_for("runtime: ready", timeout=120)
    _produce(kafka, readings, frames[:third])
    time.sleep(3)  # mid-stream: some batches committed, others not
    w1.p.kill()  # SIGKILL
    w1.p.wait(10)
    kills = 1
    w1b = spawn("worker", name="w1b", TOCSIN_WORKER_NAME="w1", **env)
    w2 = spawn("worker", name="w2", TOCSIN_WORKER_NAME="w2", **env)  # a worker joins
    w1b.wait_for("runtime: ready", timeout=120)
    _produce(kafka, readings, frames[third:2 * third])
    wait_committed(kafka, group, readings, timeout=120)
    w2.p.kill()  # and leaves, hard: its partitions move back after the session timeout
    w2.p.wait(10)
    kills += 1
    _produce(kafka, readings, frames[2 * third:])
    wait_committed(kafka, group, readings, timeout=120)
    wait_committed(kafka, f"tocsin-{prefix}anomaly", prefix + topics.FEATURES, timeout=120)

    got_rows = [v for _, v in read_committed(kafka, prefix + topics.FEATURES)]
    want = _by_asset(want_rows, lambda b: fc.decode(b)[0].asset)
    got = _by_asset(got_rows, lambda b: fc.decode(b)[0].asset)
    assert got.keys() == want.keys()
    for asset in want:  # byte for byte: no duplicate, no loss, no partial window
        assert got[asset] == want[asset], asset

    scores = [Scores.decode(v) for _, v in read_committed(kafka, prefix + topics.SCORES)]
    assert [(s.asset, s.ts) for s in sorted(scores, key=lambda s: (s.asset, s.ts))] == \
        [(s.asset, s.ts) for s in sorted(want_scores, key=lambda s: (s.asset, s.ts))]
    by_ts = {(s.asset, s.ts): s for s in want_scores}
    for s in scores:
        w = by_ts[(s.asset, s.ts)]
        for name, ws in w.models.items():
            gs = s.models[name]
            assert (gs is None) == (ws is None), (name, s.ts)  # no warm-up after a restart
            if ws is not None:
                assert gs.score == pytest.approx(ws.score, rel=1e-4, abs=1e-6)
    print(f"\nfeatures+anomaly: {kills} kill -9, 1 worker added and removed; "
          f"{len(got_rows)} feature rows and {len(scores)} scores, as the pure cores give")
