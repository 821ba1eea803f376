"""Readings -> features agent -> plant.features -> anomaly agent -> plant.scores, on the real
broker, with a model that appears while the worker runs (hot reload, no restart)."""

from __future__ import annotations

import shutil

import jsonschema
import numpy as np
import orjson

from tests.integration.kafka_helpers import collect, produce
from tocsin.connectors.model_sources import simulated_frames
from tocsin.connectors.simulator.hostile import hostile_variants, refused_by
from tocsin.contracts import features as fc
from tocsin.contracts import topics
from tocsin.contracts._codec import json_schema
from tocsin.contracts.deadletter import DeadLetter
from tocsin.contracts.scores import Scores

NS = 1_000_000_000


def test_features_then_scores_with_a_model_loaded_while_running(kafka, prefix, spawn,
                                                                  tiny_models, tmp_path):
    root, art, _ = tiny_models
    live = tmp_path / "live-models"
    live.mkdir()
    w = spawn("worker", TOCSIN_MODEL_DIR=str(live), TOCSIN_MODEL_POLL_S="0.5")
    w.wait_for("runtime: ready", timeout=90)
    w.wait_for("no trained model for asset type centrifugal-pump", timeout=10)
    frames = list(simulated_frames(200, seed=11, assets=["pump-1"],
                                   faults=[{"asset": "pump-1", "fault": "leak", "start": 120}]))
    t0 = int(frames[0].ts[0])
    produce(kafka, prefix + topics.READINGS, [(b"pump-1", f.encode()) for f in frames[:40]])
    feats = collect(kafka, prefix + topics.FEATURES, until=lambda it: len(it) >= 30,
                    timeout=60)
    assert len(feats) >= 30
    for _, raw in feats[:5]:
        jsonschema.validate(orjson.loads(raw), json_schema("features.v1.json"))
    rows = [fc.decode(raw)[0] for _, raw in feats]
    assert [r.end for r in rows] == sorted(r.end for r in rows)  # one partition per asset
    assert all(r.asset == "pump-1" and "1s" in r.scales for r in rows)

    shutil.copytree(art.path, live / "centrifugal-pump" / art.version)
    w.wait_for(f"model for centrifugal-pump: none -> {art.version}", timeout=30)
    produce(kafka, prefix + topics.READINGS, [(b"pump-1", f.encode()) for f in frames[40:]])
    last_end = (int(frames[-1].ts[-1]) // NS - 2) * NS
    got = collect(kafka, prefix + topics.SCORES, decode=Scores.decode, timeout=90,
                  until=lambda it: any(s.ts >= last_end for _, s in it))
    scores = [s for _, s in got]
    assert scores and all(s.model_version == art.version for s in scores)
    # ticks closed before the model existed were not scored later (no replay of the past)
    assert min(s.ts for s in scores) > t0 + 30 * NS
    rel = np.array([(s.ts - t0) / NS for s in scores])
    ratio = np.array([max(m.ratio for m in s.models.values() if m) for s in scores])
    assert np.median(ratio[rel > 130]) > 3 * np.median(ratio[(rel > 60) & (rel < 118)])
    assert any(s.anomalous and s.top_tags() for s in scores if (s.ts - t0) / NS > 130)

    # hostile feature records (issue 14): each one a dead letter of the anomaly agent, which
    # goes on (the scores above were the good records)
    hostile = refused_by(fc.decode, hostile_variants(orjson.loads(feats[0][1])))
    produce(kafka, prefix + topics.FEATURES, [(b"pump-1", v) for _, v in hostile])
    dls = collect(kafka, prefix + topics.DEADLETTER, lambda it: len(it) >= len(hostile),
                  timeout=60, decode=DeadLetter.decode)
    assert sorted(d.raw_payload() for _, d in dls) == sorted(v for _, v in hostile)
    assert all(d.source_topic == prefix + topics.FEATURES and d.stage == "decode"
               for _, d in dls)
    assert "Traceback" not in w.text()
