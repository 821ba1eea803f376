"""Training the fusion network on SIMULATED scenarios, and SIMULATED fusion inputs on Kafka.

The scenarios' readings are simulated; the threshold alerts come from the real threshold
alerter and the score ticks from the trained anomaly models (:class:`ModelScores`), or, only
when asked for, from the SIMULATED stand-in scorer (tocsin/connectors/simulator/scores.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from tocsin.config.fusion import load_fusion_config
from tocsin.config.kafka_security import client_conf
from tocsin.config.plant import load_plant
from tocsin.config.worker import Settings
from tocsin.connectors import kafka_admin
from tocsin.connectors.model_sources import run_offsets
from tocsin.connectors.simulator.fusion_stream import (
    ScoreSource,
    fault_scenarios,
    simulate,
)
from tocsin.connectors.simulator.plant import DEFAULT_ASSETS
from tocsin.connectors.simulator.scenario import EPOCH_2026, FaultEvent, Scenario
from tocsin.contracts import topics
from tocsin.contracts.alerts import Alert
from tocsin.contracts.scores import Scores
from tocsin.detectors.fusion_bn import FusionModel
from tocsin.detectors.fusion_train import assets_from_plant, train


def train_simulated(scores: ScoreSource, config_path=None, seeds: Iterable[int] = (1, 2, 3),
                    assets: Iterable[str] | None = None, progress=None,
                    normal_s: float = 300.0) -> tuple[FusionModel, float]:
    """Learn the CPDs from every fault of the library (on ``assets``, default all) per seed,
    plus ``normal_s`` of fault-free plant per seed, with the score ticks of ``scores``
    (normally :class:`ModelScores`)."""
    t0 = time.monotonic()
    plant = load_plant()
    cfg = load_fusion_config(config_path)
    keep = set(assets) if assets is not None else None
    streams = []
    for seed in seeds:
        normal = Scenario(seed=seed, seconds=normal_s,
                          assets=sorted(keep) if keep is not None else list(DEFAULT_ASSETS))
        scenarios = [*fault_scenarios(seed), *([normal] if normal_s > 0 else [])]
        # each scenario at its own clock phase, as live starts are (see run_offsets)
        offsets = run_offsets(len(scenarios), seed)
        for sc, off in zip(scenarios, offsets):
            if keep is not None and not keep & set(sc.assets):
                continue
            s = simulate(sc, scores, plant, start_s=EPOCH_2026 + off)
            streams.append((s.items, s.label))
            if progress:
                what = (f"{sc.faults[0].fault} on {sc.assets[0]}" if sc.faults else
                        f"{sc.seconds:.0f}s fault-free")
                progress(f"seed {seed}: {what} ({time.monotonic() - t0:.0f}s)")
    model = train(cfg, assets_from_plant(plant), streams, {
        "source": "simulated scenarios (tocsin.connectors.simulator.fusion_stream)",
        "seeds": list(seeds), "normal_seconds_per_seed": normal_s, "scores": scores.label,
        "score_models": getattr(scores, "versions", {})})
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


def feed_simulated(settings: Settings, scores: ScoreSource, *, asset: str, fault: str,
                   at: float, until: float, seconds: float, seed: int, speed: float = 0.0,
                   scores_only: bool = False) -> int:
    from confluent_kafka import Producer

    kafka_admin.ensure_topics(settings.broker, [settings.topic(t) for t in topics.ALL],
                         settings.partitions)
    plant = load_plant(settings.plant_config)
    sc = Scenario(seed=seed, seconds=seconds, assets=[asset],
                  faults=[FaultEvent(asset=asset, fault=fault, start=at, end=until)])
    now = time.time()
    start_s = int(now) if speed > 0 else int(now - seconds)
    stream = simulate(sc, scores, plant, start_s=start_s)
    p = Producer(client_conf(settings.broker, {"enable.idempotence": True,
                  "linger.ms": 0 if speed > 0 else 5}))
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
