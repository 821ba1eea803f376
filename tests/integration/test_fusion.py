"""The fusion worker on a real broker. Inputs: SIMULATED readings through the real threshold
alerter and through real (tiny, trained in a fixture) Isolation Forest + LSTM-AE models of the
pump, the network learned on those scores; the flapping test hand-writes its score ticks."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import orjson
import pytest

from tests.integration.kafka_helpers import collect, produce, read_committed, wait_committed
from tocsin.config.fusion import load_fusion_config
from tocsin.config.plant import load_plant
from tocsin.connectors.simulator.fusion_stream import ModelScores, simulate
from tocsin.connectors.simulator.hostile import hostile_variants, refused_by
from tocsin.connectors.simulator.scenario import FaultEvent, Scenario
from tocsin.contracts import Alert, DeadLetter, topics
from tocsin.contracts.acks import Ack
from tocsin.contracts.alerts import AlertEvent, Severity
from tocsin.contracts.scores import ModelScore, Scores
from tocsin.detectors.fusion import FusionEngine
from tocsin.detectors.fusion_bn import FusionModel
from tocsin.detectors.fusion_train import assets_from_plant
from tocsin.errors import SchemaError
from tocsin.models import fusion_store
from tocsin.streams.fusion_feed import messages, train_simulated
from tocsin.streams.fusion_ops import FUSION_IN

pytestmark = pytest.mark.integration
NS = 1_000_000_000
# each fault after the models' warm-up (fusion_stream.WARMUP_S), 40 s, then 100 s of normal
# operation (more than fusion_stream.SETTLE_S: the models' windows must let go of the fault)
FAULTS = [("bearing_wear", "mechanical", 100), ("motor_overload", "electrical", 240),
          ("leak", "hydraulic", 380), ("over_temperature", "thermal", 520)]


@pytest.fixture(scope="session")
def scorers(tiny_models):
    """The real scoring path (window engine + AnomalyScorer) with the tiny pump model."""
    return ModelScores(tiny_models[0], assets=["pump-1"])


@pytest.fixture(scope="session")
def fusion_model(tmp_path_factory, scorers):
    """The pump's network learned on those real scores (seed 1; the tests run other seeds)."""
    model, _ = train_simulated(scorers, None, seeds=(1,), assets=["pump-1"])
    return model, fusion_store.save(model, tmp_path_factory.mktemp("fusion-root"))


@pytest.fixture
def fusion_worker(spawn, fusion_model):
    w = spawn("fusion", "worker", "--model", str(fusion_model[1]), name="fusion")
    w.wait_for(READY, timeout=120)
    return w


READY = "fusion: ready"


def _group(prefix: str) -> str:
    return f"tocsin-{prefix}fusion-route"  # the route's consumer group (runtime naming)


def _settled(kafka, prefix) -> None:
    """Every input routed, and every routed record fused and committed."""
    for t in (topics.SCORES, topics.ALERTS):
        wait_committed(kafka, _group(prefix), prefix + t)
    wait_committed(kafka, f"tocsin-{prefix}fusion", prefix + FUSION_IN)


def _feed(kafka, prefix, items):
    """Threshold alerts first, then (after the worker has read them) the score ticks: the two
    topics are read concurrently, and the engine joins them on event time."""
    msgs = messages(items)
    for topic in (topics.ALERTS, topics.SCORES):
        produce(kafka, prefix + topic, [(k, v) for t, k, v in msgs if t == topic])
        if topic == topics.ALERTS:
            wait_committed(kafka, _group(prefix), prefix + topics.ALERTS)


def _alert_or_none(data: bytes) -> Alert | None:
    try:
        return Alert.decode(data)
    except SchemaError:  # the hostile records some tests put on the topic
        return None


def _fused(kafka, prefix, until, timeout=90):
    got = collect(kafka, prefix + topics.ALERTS, lambda it: until([a for _, a in it
                                                                   if a and a.kind == "fusion"]),
                  timeout=timeout, decode=_alert_or_none)
    return [a for _, a in got if a and a.kind == "fusion"]


def _strip(a: Alert) -> bytes:
    d = orjson.loads(a.encode())
    d.pop("emitted_ts")
    return orjson.dumps(d, option=orjson.OPT_SORT_KEYS)


def test_each_fault_type_is_one_alert_and_reprocessing_adds_nothing(
        kafka, prefix, fusion_worker, fusion_model, scorers):
    sc = Scenario(seed=42, seconds=660, assets=["pump-1"], faults=[
        FaultEvent(asset="pump-1", fault=f, start=t0, end=t0 + 40) for f, _, t0 in FAULTS])
    stream = simulate(sc, scorers)
    _feed(kafka, prefix, stream.items)
    events = _fused(kafka, prefix, lambda fs: sum(a.event.value == "cleared" for a in fs)
                    >= len(FAULTS))
    raised = [a for a in events if a.event.value == "raised"]
    assert len(raised) == len(FAULTS), [(a.rule, a.message) for a in events]
    base = stream.truth[0]["start_ns"] - FAULTS[0][2] * NS
    for a, (fault, ftype, t0) in zip(sorted(raised, key=lambda a: a.opened_ts), FAULTS):
        assert base + t0 * NS <= a.opened_ts < base + (t0 + 40) * NS, fault
        # the fault type on top while the fault is on: the alert's last event before it ends
        # (the first tick may still be unsure: one tick of evidence from a tiny model)
        during = [e for e in events if e.alert_id == a.alert_id
                  and e.details["tick_ts"] < base + (t0 + 40) * NS]
        last = max(during, key=lambda e: e.details["tick_ts"])
        assert last.rule == ftype == last.details["fault_type"], (fault, [
            (e.event.value, e.rule, e.value) for e in during])
        post = last.details["posterior"]
        assert max(post, key=lambda k: post[k] if k != "normal" else -1) == ftype
        assert a.details["model_versions"]["fusion"] == fusion_model[0].version
        assert a.details["evidence"]["scores"]["lstm_ae"]["ratio"] > 0
    # the same input again (a redelivery or a replay): no new events, no duplicates
    _feed(kafka, prefix, stream.items)
    _settled(kafka, prefix)  # all of it processed
    again = [a for _, a in read_committed(kafka, prefix + topics.ALERTS, decode=Alert.decode)
             if a.kind == "fusion"]
    assert sorted(map(_strip, again)) == sorted(map(_strip, events))  # partitions interleave
    # and the worker's events are exactly what the pure engine gives for the same input
    engine = FusionEngine(load_fusion_config(), FusionModel.load(fusion_model[1]),
                          assets_from_plant(load_plant()))
    pure = []
    for kind, x in stream.items:
        if kind == "alert":
            engine.on_threshold(x)
    for kind, x in stream.items:
        if kind == "scores":
            pure += engine.on_scores(x, 0)
    by_id = sorted(events, key=lambda a: (a.opened_ts, a.source_ts, a.event.value))
    assert sorted(map(_strip, by_id)) == sorted(map(_strip, pure))


def _split(items, cut: int):
    """The inputs before event time ``cut`` and those from it on."""
    def ts(k, x):
        return x.source_ts if k == "alert" else x.ts
    return ([(k, x) for k, x in items if ts(k, x) < cut],
            [(k, x) for k, x in items if ts(k, x) >= cut])


def _cli(kafka, prefix, *args):
    return subprocess.run([sys.executable, "-m", "tocsin.cli", "alerts", *args, "--broker",
                           kafka, "--prefix", prefix], capture_output=True, text=True,
                          timeout=60)


def test_hot_reload_then_ack_and_clear_through_the_cli(kafka, prefix, spawn, tmp_path,
                                                      fusion_model, scorers):
    # the worker starts with no trained network (expert priors) and watches its model root;
    # the trained one appears there while it runs and is swapped in without a restart
    root = tmp_path / "models"
    w = spawn("fusion", "worker", name="fusion", TOCSIN_MODEL_DIR=str(root),
              TOCSIN_MODEL_POLL_S="1")
    w.wait_for(READY, timeout=120)
    assert "expert priors" in w.text()
    fusion_store.save(fusion_model[0], root)
    w.wait_for(f"-> {fusion_model[0].version}", timeout=60)

    sc = Scenario(seed=5, seconds=200, assets=["pump-1"], faults=[
        FaultEvent(asset="pump-1", fault="motor_overload", start=100, end=140)])
    stream = simulate(sc, scorers)
    cut = stream.truth[0]["start_ns"] + 30 * NS
    first, rest = _split(stream.items, cut)
    _feed(kafka, prefix, first)
    (raised,) = _fused(kafka, prefix, lambda fs: any(a.event.value == "raised" for a in fs))
    listed = _cli(kafka, prefix, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    (open_,) = [Alert.decode(line.encode()) for line in listed.stdout.splitlines()]
    assert open_.alert_id == raised.alert_id and open_.rule == "electrical"
    assert open_.details["model_versions"] == {"fusion": fusion_model[0].version,
                                               "scores": scorers.versions["centrifugal-pump"]}

    ack = subprocess.run([sys.executable, "-m", "tocsin.cli", "alerts", "ack",
                          raised.alert_id, "--user", "ann", "--broker", kafka, "--prefix",
                          prefix], capture_output=True, text=True, timeout=60)
    assert ack.returncode == 0, ack.stdout + ack.stderr
    assert "acknowledged" in ack.stdout
    bad = _cli(kafka, prefix, "ack", "pump-1:fnosuchalert")
    assert bad.returncode != 0 and "not an open alert" in bad.stderr
    listed = _cli(kafka, prefix, "list", "--json")
    (open_,) = [Alert.decode(line.encode()) for line in listed.stdout.splitlines()]
    assert open_.event.value == "acknowledged" and open_.details["acked_by"] == "ann"

    _feed(kafka, prefix, rest)
    events = _fused(kafka, prefix, lambda fs: any(a.event.value == "cleared" for a in fs))
    assert [a.event.value for a in events if a.event.value != "updated"] == [
        "raised", "acknowledged", "cleared"]
    assert {a.alert_id for a in events} == {raised.alert_id}
    cleared = events[-1]
    assert cleared.source_ts >= stream.truth[0]["end_ns"]
    assert _cli(kafka, prefix, "list", "--json").stdout.strip() == ""


def test_a_killed_worker_continues_the_open_alert_under_its_id(kafka, prefix, spawn,
                                                                fusion_model, scorers):
    """kill -9 of the fusion worker with an episode open: the next worker restores the
    episode from the changelog and clears THAT alert; a read_committed consumer sees each
    event once."""
    sc = Scenario(seed=7, seconds=200, assets=["pump-1"], faults=[
        FaultEvent(asset="pump-1", fault="motor_overload", start=100, end=140)])
    stream = simulate(sc, scorers)
    cut = stream.truth[0]["start_ns"] + 20 * NS
    first, rest = _split(stream.items, cut)
    a = spawn("fusion", "worker", "--model", str(fusion_model[1]), name="fusion-a")
    a.wait_for(READY, timeout=120)
    _feed(kafka, prefix, first)
    (raised,) = _fused(kafka, prefix, lambda fs: any(e.event.value == "raised" for e in fs))
    _settled(kafka, prefix)
    a.p.kill()  # SIGKILL: no goodbye, no flush
    a.p.wait(10)
    b = spawn("fusion", "worker", "--model", str(fusion_model[1]), name="fusion-b")
    b.wait_for(READY, timeout=120)
    assert raised.alert_id in b.text()  # "partition N restored, ... open alerts: [id]"
    _feed(kafka, prefix, rest)
    events = _fused(kafka, prefix, lambda fs: any(e.event.value == "cleared" for e in fs))
    # one episode: the first worker raised it, the second one cleared it, same id
    assert [e.event.value for e in events if e.event.value != "updated"] == ["raised",
                                                                             "cleared"]
    assert {e.alert_id for e in events} == {raised.alert_id}
    assert _cli(kafka, prefix, "list", "--json").stdout.strip() == ""
    _settled(kafka, prefix)
    seen = [_strip(a) for _, a in read_committed(kafka, prefix + topics.ALERTS,
                                                  decode=Alert.decode) if a.kind == "fusion"]
    assert len(seen) == len(set(seen)) == len(events)  # no duplicate across the kill


def test_flapping_signal_is_one_alert_and_bad_input_is_dead_lettered(kafka, prefix,
                                                                    fusion_worker):
    t0 = int(time.time()) * NS
    # hand-written ticks on the pump (its network learned on real scores): high scores, the
    # reconstruction error mostly on vibration
    contrib = {"vibration_rms": 0.7, "motor_current": 0.1, "flow": 0.1, "bearing_temp": 0.1}

    def tick(i: int, hot: bool) -> Scores:
        r = 6.0 if hot else 0.3
        return Scores("pump-1", "centrifugal-pump", t0 + i * NS,
                      {"iforest": ModelScore(r, 1.0), "lstm_ae": ModelScore(r, 1.0, contrib)},
                      "test-flap", "x", source_ts=t0 + i * NS)

    items = [(b"pump-1", tick(i, (i // 2) % 2 == 0).encode()) for i in range(60)]
    items += [(b"pump-1", tick(i, False).encode()) for i in range(60, 80)]
    garbage = orjson.dumps({"schema": "tocsin.scores/1", "asset": "pump-1"})
    # hostile records on all three inputs (issue 14): each a dead letter, none stops fusion
    thr = Alert("pump-1:h", AlertEvent.RAISED, "pump-1", "threshold", "high", "flow",
                Severity.WARNING, 9.0, 8.0, t0, t0, t0, "x")
    hostile = {topics.SCORES: refused_by(Scores.decode, hostile_variants(orjson.loads(
                   tick(0, True).encode()))),
               topics.ALERTS: refused_by(Alert.decode, hostile_variants(orjson.loads(
                   thr.encode()))),
               topics.ALERT_ACKS: refused_by(Ack.decode, hostile_variants(orjson.loads(
                   Ack("pump-1:h", "ann", t0).encode())))}
    for topic, bad in hostile.items():
        if topic != topics.SCORES:
            produce(kafka, prefix + topic, [(b"pump-1", v) for _, v in bad])
    produce(kafka, prefix + topics.SCORES, items[:30] + [(b"pump-1", garbage)]
            + [(b"pump-1", v) for _, v in hostile[topics.SCORES]] + items[30:])
    events = _fused(kafka, prefix, lambda fs: any(a.event.value == "cleared" for a in fs))
    assert [a.event.value for a in events if a.event.value != "updated"] == ["raised",
                                                                            "cleared"]
    assert events[0].rule == "mechanical"
    n_bad = 1 + sum(len(b) for b in hostile.values())
    dls = collect(kafka, prefix + topics.DEADLETTER, lambda it: len(it) >= n_bad, timeout=60,
                  decode=DeadLetter.decode)
    assert len(dls) == n_bad
    first = [d for _, d in dls if d.raw_payload() == garbage]
    assert len(first) == 1 and "'models'" in first[0].error
    for topic, bad in hostile.items():
        got = sorted(d.raw_payload() for _, d in dls if d.source_topic == prefix + topic
                     and d.raw_payload() != garbage)
        assert got == sorted(v for _, v in bad), topic
    assert np.isfinite(events[0].value)
