"""SIMULATED fusion inputs on Kafka, and training on simulated scenarios.

Until the anomaly models publish real ``plant.scores``, these feed the fusion worker with the
simulator's threshold alerts and the stand-in scorer's ticks (both documented in
tocsin/connectors/simulator/), so the fused alerts can be demonstrated and tested end to end.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from tocsin.connectors.simulator.fusion_stream import (fault_scenarios, fit_scorers, simulate)
from tocsin.connectors.simulator.scenario import FaultEvent, Scenario
from tocsin.contracts.alerts import Alert
from tocsin.contracts.scores import Scores
from tocsin.detectors.fusion_bn import FusionModel
from tocsin.detectors.fusion_config import load_fusion_config
from tocsin.detectors.fusion_train import assets_from_plant, train
from tocsin.plantconfig import load_plant
from tocsin.streams import topics
from tocsin.streams.settings import Settings


def train_simulated(config_path=None, seeds: Iterable[int] = (1, 2, 3)
                    ) -> tuple[FusionModel, float]:
    t0 = time.monotonic()
    plant = load_plant()
    cfg = load_fusion_config(config_path)
    scorers = fit_scorers(plant)
    streams = []
    for seed in seeds:
        for sc in fault_scenarios(seed):
            s = simulate(sc, scorers, plant)
            streams.append((s.items, s.label))
    model = train(cfg, assets_from_plant(plant), streams, {
        "source": "simulated scenarios (tocsin.connectors.simulator.fusion_stream)",
        "seeds": list(seeds), "scores": "simulated stand-in scorer"})
    return model, time.monotonic() - t0


def messages(items) -> list[tuple[str, bytes, bytes]]:
    """(topic name, key, value) of a simulated stream, in event order."""
    out = []
    for kind, x in items:
        if kind == "alert":
            a: Alert = x
            out.append((topics.ALERTS, a.alert_id.encode(), a.encode()))
        else:
            s: Scores = x
            out.append((topics.SCORES, s.asset.encode(), s.encode()))
    return out


def feed_simulated(settings: Settings, *, asset: str, fault: str, at: float, until: float,
                   seconds: float, seed: int, speed: float = 0.0,
                   scores_only: bool = False) -> int:
    from confluent_kafka import Producer

    topics.ensure_topics(settings.broker, [settings.topic(t) for t in topics.ALL],
                         settings.partitions)
    plant = load_plant(settings.plant_config)
    sc = Scenario(seed=seed, seconds=seconds, assets=[asset],
                  faults=[FaultEvent(asset=asset, fault=fault, start=at, end=until)])
    now = time.time()
    start_s = int(now) if speed > 0 else int(now - seconds)
    stream = simulate(sc, fit_scorers(plant), plant, start_s=start_s)
    p = Producer({"bootstrap.servers": settings.broker, "enable.idempotence": True,
                  "linger.ms": 0 if speed > 0 else 5})
    n = 0
    t_wall0, t_ev0 = time.monotonic(), start_s * 1e9
    for kind, x in stream.items:
        if scores_only and kind == "alert":
            continue
        if speed > 0:
            ev = x.source_ts if kind == "alert" else x.ts
            delay = (ev - t_ev0) / 1e9 / speed - (time.monotonic() - t_wall0)
            if delay > 0:
                p.flush(delay)
                time.sleep(max(0.0, (ev - t_ev0) / 1e9 / speed - (time.monotonic() - t_wall0)))
        if kind == "scores":
            x.emitted_ts = time.time_ns()
        (topic, key, value), = messages([(kind, x)])
        p.produce(settings.topic(topic), value, key=key)
        p.poll(0)
        n += 1
    p.flush(30)
    return n
