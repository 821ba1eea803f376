"""Chaos test (issue 15): a scripted plant scenario with known faults flows through `tocsin
worker` (the threshold path on the runtime, exactly once) while workers are killed with
SIGKILL at random moments and restarted, a third worker joins and one leaves, and (when the
3-broker cluster fixture is available) one broker is killed and restarted. A read_committed
consumer must see exactly the golden alert events: the same pure alerter run offline over the
same readings (0 lost, 0 duplicated, none left open, every id's events in order).

TOCSIN_CHAOS_SECONDS (default 60) sets the scenario length; benchmarks/chaos_soak.py runs it
longer. The fraud part can reuse tests/integration/chaos.py (Fleet, run_schedule, Collector).
"""

from __future__ import annotations

import os
import random
import threading
import time
import uuid
from collections import Counter

import pytest
import yaml
from confluent_kafka import Producer

from tests.integration.chaos import Collector, Fleet, run_schedule, worker_env
from tests.waiting import wait_for
from tocsin.config.plant import load_plant
from tocsin.connectors import kafka_admin
from tocsin.connectors.simulator.plant import Plant
from tocsin.connectors.simulator.scenario import EPOCH_2026
from tocsin.contracts import topics
from tocsin.contracts.alerts import Alert
from tocsin.contracts.readings import ReadingsFrame
from tocsin.detectors.threshold_alerts import alerter_from_plant

pytestmark = pytest.mark.integration
RATE_HZ = 5.0
KINDS = {"pump": "pump-1", "motor": "motor-1", "press": "press-1"}  # demo asset per kind
# (kind, fault, start s, end s) per copy of an asset kind; copies get shifted times
FAULTS = [("pump", "over_temperature", 8, 30), ("motor", "voltage_sag", 12, 26),
          ("press", "valve_sticking", 10, 40), ("pump", "motor_overload", 35, 50),
          ("motor", "current_spikes", 30, 45), ("press", "leak", 42, 55)]
COPIES = 3  # 9 assets over 4 partitions


def plant_config(path) -> list[tuple[str, str]]:
    """The demo plant's limits for COPIES assets of each kind; -> (asset, kind)."""
    demo = load_plant(None).model_dump(mode="json")
    assets, out = {}, []
    for kind, src in KINDS.items():
        for i in range(1, COPIES + 1):
            name = f"{kind}-{i}"
            assets[name] = demo["assets"][src]
            out.append((name, kind))
    demo["assets"] = assets
    path.write_text(yaml.safe_dump(demo))
    return out


def scenario(assets: list[tuple[str, str]], seconds: float) -> list[ReadingsFrame]:
    plant = Plant(dict(assets), seed=11)
    events = []
    for n, (name, kind) in enumerate(assets):
        for k, fault, start, end in FAULTS:
            if k == kind:
                shift = (n * 3) % 10
                events.append((start + shift, "inject", name, fault))
                events.append((end + shift, "clear", name, fault))
    frames, dt = [], 1.0 / RATE_HZ
    base = EPOCH_2026 * 1_000_000_000
    for i in range(1, int(seconds * RATE_HZ) + 1):
        t = i * dt
        for at, what, name, fault in events:
            if t - dt < at <= t:
                (plant.inject if what == "inject" else plant.clear)(name, fault, at)
        ts = base + round(t * 1e9)
        for asset, values in plant.step(t, dt).items():
            frames.append(ReadingsFrame.from_samples(
                asset, [(tag, ts, v, 0) for tag, v in values.items()], source="sim://chaos",
                seq=i))
    return frames


def _feed(p: Producer, topic: str, frames: list[ReadingsFrame], per_step: int) -> None:
    """The scenario at 1x: one step (a frame per asset) every 1 / RATE_HZ s."""
    t0 = time.monotonic()
    for i, f in enumerate(frames):
        p.produce(topic, f.encode(), f.asset.encode())
        if i % per_step == per_step - 1:
            p.poll(0)
            wait = t0 + (i // per_step + 1) / RATE_HZ - time.monotonic()
            if wait > 0:
                time.sleep(wait)
    assert p.flush(60) == 0


def identity(a: Alert) -> tuple:
    return (a.alert_id, a.event.value, a.source_ts, round(a.value, 9))


def _cluster(request):
    try:
        return request.getfixturevalue("kafka_cluster")
    except pytest.FixtureLookupError:
        return None


def test_chaos_exactly_the_golden_alerts(request, kafka, tmp_path):
    seconds = float(os.environ.get("TOCSIN_CHAOS_SECONDS", "60"))
    cluster = _cluster(request)
    bootstrap = cluster.bootstrap if cluster is not None else kafka
    cfg = tmp_path / "plant.yaml"
    assets = plant_config(cfg)
    frames = scenario(assets, seconds)
    pure = alerter_from_plant(load_plant(cfg))
    golden = Counter(identity(a) for f in frames
                     for a in pure.process(ReadingsFrame.decode(f.encode()), 0))
    assert sum(golden.values()) >= 20, "the scenario must raise and clear alarms"

    prefix = f"c{uuid.uuid4().hex[:8]}."
    kafka_admin.ensure_topics(bootstrap, [prefix + t for t in topics.ALL], 4)
    fleet = Fleet(["worker"], worker_env(bootstrap, prefix, TOCSIN_AGENTS="thresholds",
                                         TOCSIN_PLANT_CONFIG=str(cfg)), tmp_path)
    out = Collector(bootstrap, prefix + topics.ALERTS, Alert.decode)
    rng = random.Random()
    seed = rng.randrange(1 << 30)
    rng.seed(seed)
    extra = []
    if cluster is not None:
        extra = [(seconds * 0.3, lambda: cluster.kill(2), "kill broker 2"),
                 (seconds * 0.5, lambda: cluster.restart(2, timeout=120), "restart broker 2")]
    p = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random",
                  "enable.idempotence": True, "linger.ms": 5})
    try:
        fleet.start("w1")
        fleet.start("w2")
        feeder = threading.Thread(target=_feed, args=(p, prefix + topics.READINGS, frames,
                                                     len(assets)), daemon=True)
        feeder.start()
        names = ["w1", "w2"]
        run_schedule(fleet, names, lambda: not feeder.is_alive() and fleet.kills >= 4, rng,
                     add="w3", remove="w2", extra=extra, gap_s=(2.0, 7.0))
        feeder.join()
        want = sum(golden.values())
        wait_for(lambda: len(out.items) >= want, 240, f"{want} alert events",
                 seen=lambda: f"{len(out.items)} so far; {fleet.events}")
        time.sleep(5)  # a late duplicate would show now
    finally:
        out.close()
        fleet.stop_all()
    got = Counter(identity(a) for a in out.items)
    lost, dup = golden - got, got - golden
    print(f"\nchaos (seed {seed}, {'3-broker cluster' if cluster else 'single broker'}): "
          f"survived {fleet.survived()}; events: {fleet.events}; "
          f"{sum(got.values())} alert events, {len(lost)} lost, {sum(dup.values())} extra")
    assert not lost and not dup, f"lost {list(lost)[:5]} extra {list(dup)[:5]} (seed {seed})"
    by_id: dict[str, list[str]] = {}
    for a in out.items:
        by_id.setdefault(a.alert_id, []).append(a.event.value)
    assert all(ev[:2] in (["raised"], ["raised", "cleared"]) and len(ev) <= 2
               for ev in by_id.values()), "an alarm's events out of order"
    golden_open = {k[0] for k in golden if k[1] == "raised"} - {k[0] for k in golden
                                                                if k[1] == "cleared"}
    left_open = {i for i, ev in by_id.items() if ev == ["raised"]} - golden_open
    assert not left_open, f"alarms left open: {sorted(left_open)[:5]}"
    assert fleet.kills >= 4
