"""The fusion engine's per-asset state survives a trip through bytes: an engine rebuilt from
the dumps at any point of a stream (a restart restoring its changelog) gives exactly the
fused alerts an uninterrupted engine gives, the open episode under its id, acks kept."""

from __future__ import annotations

import numpy as np
import pytest

from tests.unit.test_fusion_inputs import _expert
from tocsin.config.fusion import load_fusion_config
from tocsin.config.plant import load_plant
from tocsin.contracts.acks import Ack
from tocsin.contracts.alerts import Alert, AlertEvent, Severity, alert_id
from tocsin.contracts.scores import ModelScore, Scores
from tocsin.detectors.fusion import FusionEngine
from tocsin.detectors.fusion_state import drop_asset, dump_asset, load_asset
from tocsin.detectors.fusion_train import assets_from_plant

NS = 1_000_000_000
CFG = load_fusion_config()
ASSETS = assets_from_plant(load_plant())
MODEL = _expert(CFG, ASSETS)
HOT = {"pump-1": {"vibration_rms": 0.8, "bearing_temp": 0.2},
       "motor-1": {"motor_current": 0.9, "winding_temp": 0.1}}


def stream(seed: int) -> list[tuple[str, object]]:
    """Score ticks of two assets with intermittent faults, threshold alerts raised and
    cleared (arriving a little before their tick), and an operator's ack of the first
    fused alert (its id is filled in when known)."""
    rng = np.random.default_rng(seed)
    out: list[tuple[str, object]] = []
    for i in range(400):
        for asset, atype in (("pump-1", "centrifugal-pump"), ("motor-1", "induction-motor")):
            fault = (60 <= i < 110) or (200 <= i < 230 and i % 2) or (300 <= i < 320)
            r = float(rng.uniform(3, 9)) if fault else float(rng.uniform(0.1, 0.6))
            ts = (1000 + i) * NS
            if asset == "pump-1" and i in (62, 305):
                tag = "vibration_rms"
                aid = alert_id(asset, "threshold", "high", tag, ts)
                out.append(("alert", Alert(aid, AlertEvent.RAISED, asset, "threshold", "high",
                                           tag, Severity.WARNING, 9.0, 5.0, ts, ts, 0)))
                out.append(("alert", Alert(aid, AlertEvent.CLEARED, asset, "threshold",
                                           "high", tag, Severity.WARNING, 1.0, 5.0, ts + 20 * NS,
                                           ts, 0)))
            out.append(("scores", Scores(asset, atype, ts, {
                "iforest": ModelScore(r, 1.0),
                "lstm_ae": ModelScore(r, 1.0, HOT[asset])}, "v1", "h", source_ts=ts)))
            if asset == "pump-1" and i == 80:
                out.append(("ack", "ann"))
    return out


def feed(engine: FusionEngine, item, acked: dict) -> list[Alert]:
    kind, x = item
    if kind == "alert":
        engine.on_threshold(x)
        return []
    if kind == "ack":
        aid = engine.open_alert("pump-1")
        return engine.on_ack(Ack(aid, x, 1080 * NS), 0) if aid else []
    return engine.on_scores(x, 0)


def fresh() -> FusionEngine:
    return FusionEngine(CFG, MODEL, ASSETS)


def run(items, restart_at: set[int] = frozenset()) -> list[bytes]:
    eng, out, acked = fresh(), [], {}
    for i, item in enumerate(items):
        if i in restart_at:
            dumps = [dump_asset(eng, a) for a in sorted(eng._state)]
            eng = fresh()
            for d in dumps:
                load_asset(eng, d)
        out += [a.encode() for a in feed(eng, item, acked)]
    return out


@pytest.mark.parametrize("seed", [1])
def test_restore_at_any_point_gives_the_same_alerts(seed):
    items = stream(seed)
    want = run(items)
    events = [Alert.decode(b) for b in want]
    kinds = [a.event.value for a in events]
    assert "raised" in kinds and "acknowledged" in kinds and "cleared" in kinds
    # restarts everywhere that matters: mid 3-of-5 window, open episode, during the hold
    for cut in (70, 150, 190, 230, 250, 420, 470, 610, 650):
        assert run(items, {cut}) == want, cut
    assert run(items, set(range(0, len(items), 37))) == want


def test_an_open_episode_continues_under_its_id_and_stays_acknowledged():
    items = stream(3)
    eng = fresh()
    for item in items[:200]:  # pump-1 open and acked by now (fault from tick 60, ack at 80)
        feed(eng, item, {})
    aid = eng.open_alert("pump-1")
    assert aid is not None
    data = dump_asset(eng, "pump-1")
    other = fresh()
    load_asset(other, data)
    assert other.open_alert("pump-1") == aid
    assert other._state["pump-1"].lifecycle.open.acked_by == "ann"
    assert dump_asset(other, "pump-1") == data  # a fixed point: nothing lost or added
    drop_asset(other, "pump-1")
    assert other.open_alert("pump-1") is None


def test_a_dump_of_another_format_is_refused():
    eng = fresh()
    eng.on_scores(stream(1)[0][1], 0)
    data = dump_asset(eng, "pump-1").replace(b'"v":1', b'"v":99')
    with pytest.raises(ValueError, match="format 99"):
        load_asset(fresh(), data)
