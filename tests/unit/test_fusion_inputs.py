"""The fusion's inputs from the real anomaly models, the fusion network's place in the model
root, and swapping a network into a running engine."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from click.testing import CliRunner

from tocsin.config.fusion import load_fusion_config
from tocsin.config.plant import load_plant
from tocsin.connectors.simulator.fusion_stream import (
    WARMUP_S,
    ModelScores,
    fault_scenarios,
    simulate,
)
from tocsin.connectors.simulator.scenario import FaultEvent, Scenario
from tocsin.contracts.scores import ModelScore, Scores
from tocsin.detectors.fusion import FusionEngine
from tocsin.detectors.fusion_bn import FusionModel, expert_network
from tocsin.detectors.fusion_train import assets_from_plant, specs_for
from tocsin.errors import ConfigError, ModelError
from tocsin.models import artifacts, fusion_store
from tocsin.models.offline import score_frames

NS = 1_000_000_000


def _expert(cfg, assets, **trained_on) -> FusionModel:
    return FusionModel({at: expert_network(cfg, s) for at, s in specs_for(cfg, assets).items()},
                       trained_on)


def test_model_scores_are_the_stream_scorers_scores_in_event_order(tiny_models):
    root, art, cfg = tiny_models
    plant = load_plant()
    sc = Scenario(seed=11, seconds=130, assets=["pump-1"], faults=[
        FaultEvent(asset="pump-1", fault="leak", start=WARMUP_S, end=120)])
    st = simulate(sc, ModelScores(root, plant, assets=["pump-1"]), plant, keep_frames=True)
    ticks = [x for k, x in st.items if k == "scores"]
    # the stream's offline path (window engine + AnomalyScorer) gives the same ticks; only
    # source_ts (newest sample when the window closed) depends on the batching, and the
    # offline path also flushes the last, partly filled window at the end
    ref = score_frames(st.frames, spec=plant.features, asset_tags=plant.asset_tags(),
                       asset_types=plant.asset_types(), model_root=root)

    def same(s):
        return (s.ts, s.encode().replace(f'"source_ts":{s.source_ts},'.encode(), b""))

    assert [same(s) for s in ticks] == [same(s) for s in ref[:len(ticks)]]
    # (the ticks within the allowed lateness of the end, which a live stream has not closed)
    assert 0 < len(ref) - len(ticks) <= plant.features.allowed_lateness_s + 2
    assert all(s.ts <= s.source_ts + NS for s in ticks)
    assert {s.model_version for s in ticks} == {art.version}
    # event order: ticks ascend, and every alert precedes the first tick at/after its time
    ts = [s.ts for s in ticks]
    assert ts == sorted(ts) and len(ts) >= 125
    last = None
    for kind, x in st.items:
        if kind == "alert":
            assert last is None or x.source_ts > last
        else:
            last = x.ts
    # the LSTM-AE warms up over its sequence, then scores every tick
    ae = [s.models["lstm_ae"] for s in ticks]
    assert ae[0] is None and all(m is not None for m in ae[cfg.seq_len:])


def test_missing_models_name_tocsin_train(tmp_path):
    with pytest.raises(ModelError, match="run `tocsin train` first"):
        ModelScores(tmp_path / "none")
    from tocsin.cli import main

    res = CliRunner().invoke(main, ["train", "fusion", "--model-dir", str(tmp_path / "none")])
    assert res.exit_code != 0 and "`tocsin train`" in res.output


def test_fault_scenarios_start_after_the_warm_up():
    scs = fault_scenarios(1)
    assert scs and all(s.faults[0].start >= WARMUP_S for s in scs)
    with pytest.raises(ConfigError, match="warm-up"):
        fault_scenarios(1, start=40.0)


def test_networks_are_versioned_in_the_model_root(tiny_models, tmp_path):
    cfg = load_fusion_config()
    assets = assets_from_plant(load_plant())
    a, b = _expert(cfg, assets, n=1), _expert(cfg, assets, n=2)
    assert fusion_store.newest(tmp_path) is None
    t = datetime(2026, 1, 1, tzinfo=timezone.utc)
    pb = fusion_store.save(b, tmp_path, now=t.replace(hour=2))
    pa = fusion_store.save(a, tmp_path, now=t.replace(hour=1))
    (tmp_path / "fusion" / ".tmp-half-written").mkdir()
    assert fusion_store.versions(tmp_path) == [pa.parent, pb.parent]
    assert fusion_store.newest(tmp_path) == pb == tmp_path / "fusion" / pb.parent.name / \
        "network.json"
    assert FusionModel.load(pb).trained_on == {"n": 2}
    # beside the anomaly models, the fusion folder is not taken for an asset type
    root, _, _ = tiny_models
    fusion_store.save(a, root)
    assert "fusion" not in artifacts.asset_types(root)


def test_set_model_keeps_the_open_alert():
    cfg = load_fusion_config()
    assets = assets_from_plant(load_plant())
    eng = FusionEngine(cfg, _expert(cfg, assets), assets)
    hot = {"vibration_rms": 0.8, "bearing_temp": 0.2}

    def tick(i, r):
        return Scores("pump-1", "centrifugal-pump", (100 + i) * NS,
                      {"iforest": ModelScore(r, 1.0), "lstm_ae": ModelScore(r, 1.0, hot)},
                      "v", "h", source_ts=(100 + i) * NS)

    out = [a for i in range(3) for a in eng.on_scores(tick(i, 9.0), 0)]
    assert [a.event.value for a in out] == ["raised"]
    new = FusionModel(_expert(cfg, assets).networks, {}, "fusion-test-new")
    eng.set_model(new)
    more = [a for i in range(3, 40) for a in eng.on_scores(tick(i, 0.2), 0)]
    assert more[-1].event.value == "cleared" and more[-1].alert_id == out[0].alert_id
    assert more[-1].details["model_versions"]["fusion"] == new.version != out[0].details[
        "model_versions"]["fusion"]


def test_a_restarted_engine_takes_over_the_open_alert_under_its_id():
    from tocsin.contracts.acks import Ack
    from tocsin.contracts.alerts import Alert

    cfg = load_fusion_config()
    assets = assets_from_plant(load_plant())
    hot = {"vibration_rms": 0.8, "bearing_temp": 0.2}

    def tick(i, r):
        return Scores("pump-1", "centrifugal-pump", (100 + i) * NS,
                      {"iforest": ModelScore(r, 1.0), "lstm_ae": ModelScore(r, 1.0, hot)},
                      "v", "h", source_ts=(100 + i) * NS)

    first = FusionEngine(cfg, _expert(cfg, assets), assets)
    out = [a for i in range(3) for a in first.on_scores(tick(i, 9.0), 0)]
    (raised,) = out
    (acked,) = first.on_ack(Ack(raised.alert_id, "ann", 103 * NS), 0)
    # what the open-alerts topic holds is the newest event; it goes through the wire format
    newest = Alert.decode(acked.encode())

    second = FusionEngine(cfg, _expert(cfg, assets), assets)
    assert second.resume(newest) and not second.resume(newest)
    assert second.open_alert("pump-1") == raised.alert_id
    assert second.on_scores(tick(2, 9.0), 0) == []  # already seen by the first engine
    more = [a for i in range(3, 8) for a in second.on_scores(tick(i, 9.0), 0)]
    assert all(a.event.value != "raised" for a in more)
    more += [a for i in range(8, 40) for a in second.on_scores(tick(i, 0.2), 0)]
    cleared = more[-1]
    assert cleared.event.value == "cleared" and cleared.alert_id == raised.alert_id
    assert cleared.opened_ts == raised.opened_ts and cleared.details["acked_by"] == "ann"
    assert {a.alert_id for a in more} == {raised.alert_id}
    # a cleared alert or a threshold alert is not taken over
    assert not FusionEngine(cfg, _expert(cfg, assets), assets).resume(cleared)
