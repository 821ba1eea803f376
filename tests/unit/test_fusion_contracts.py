"""Fused alert events and acks against their JSON Schemas, built by the real engine."""

from __future__ import annotations

import jsonschema
import orjson
import pytest

from tocsin.config.fusion import load_fusion_config
from tocsin.config.plant import load_plant
from tocsin.contracts._codec import json_schema
from tocsin.contracts.acks import Ack
from tocsin.contracts.alerts import Alert
from tocsin.contracts.scores import ModelScore, Scores
from tocsin.detectors.fusion import FusionEngine
from tocsin.detectors.fusion_bn import FusionModel, expert_network
from tocsin.detectors.fusion_train import assets_from_plant, specs_for
from tocsin.errors import SchemaError

FUSION = json_schema("fusion.v1.json")
ALERT = json_schema("alert.v1.json")
ACK = json_schema("ack.v1.json")
NS = 1_000_000_000


def test_schema_examples_validate():
    for ex in FUSION["examples"]:
        jsonschema.validate(ex, FUSION)
        jsonschema.validate(ex, ALERT)
        Alert.decode(orjson.dumps(ex))
    for ex in ACK["examples"]:
        jsonschema.validate(ex, ACK)
        assert Ack.decode(orjson.dumps(ex)).user == "ann"


def test_engine_events_match_the_schemas():
    cfg = load_fusion_config()
    assets = assets_from_plant(load_plant())
    model = FusionModel({at: expert_network(cfg, s) for at, s in specs_for(cfg, assets).items()})
    eng = FusionEngine(cfg, model, assets)
    hot = {"vibration_rms": 0.8, "bearing_temp": 0.2}
    out = []
    for i in range(5):
        s = Scores("pump-1", "centrifugal-pump", (100 + i) * NS,
                   {"iforest": ModelScore(9.0, 1.0), "lstm_ae": ModelScore(9.0, 1.0, hot)},
                   "v", "h", source_ts=(100 + i) * NS - 1)
        out += eng.on_scores(s, 0)
    assert out and out[0].event.value == "raised" and out[0].rule == "mechanical"
    out += eng.on_ack(Ack(out[0].alert_id, "ann", 200 * NS), 0)
    assert out[-1].event.value == "acknowledged"
    for a in out:
        doc = orjson.loads(a.encode())
        jsonschema.validate(doc, FUSION)
        jsonschema.validate(doc, ALERT)
        assert Alert.decode(a.encode()).details == doc["details"]


def test_ack_errors_name_the_field():
    with pytest.raises(SchemaError, match="'user'"):
        Ack.decode(orjson.dumps({"schema": "tocsin.ack/1", "alert_id": "x", "ts": 1}))
    with pytest.raises(SchemaError, match="'alert_id'"):
        Ack.decode(orjson.dumps({"schema": "tocsin.ack/1", "alert_id": "", "user": "a",
                                 "ts": 1}))
