"""The fusion worker: threshold alerts + scores -> fused alerts with a lifecycle.

Set-up here (the engine, the network, the topics); the stream stages run on the exactly-once
runtime (:mod:`tocsin.streams.fusion_ops`): state per asset in a changelog, partitioned by
asset, so any number of fusion workers of one prefix split the assets, and a restart or a
rebalance continues every episode under its id with its counters and hold timer.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from tocsin.config.fusion import load_fusion_config
from tocsin.config.kafka_security import client_conf
from tocsin.config.plant import load_plant
from tocsin.config.worker import Settings
from tocsin.connectors import kafka_admin
from tocsin.contracts import topics
from tocsin.detectors.fusion import FusionEngine
from tocsin.detectors.fusion_bn import FusionModel, expert_network
from tocsin.detectors.fusion_config import FusionConfig
from tocsin.detectors.fusion_train import assets_from_plant, specs_for
from tocsin.errors import ServiceError

log = logging.getLogger("tocsin.fusion")


def load_engine(settings: Settings, config_path: str | Path | None,
                model_path: str | Path | None) -> FusionEngine:
    cfg: FusionConfig = load_fusion_config(config_path)
    assets = assets_from_plant(load_plant(settings.plant_config))
    if model_path:
        model = FusionModel.load(model_path)
    else:
        log.warning("no trained fusion network given (--model); using the config's expert "
                    "priors. Train one with `tocsin train fusion`.")
        model = FusionModel({at: expert_network(cfg, spec)
                             for at, spec in specs_for(cfg, assets).items()},
                            {"source": "expert priors from the config"})
    t0 = time.perf_counter()
    sizes = {at: net.warm() for at, net in model.networks.items()}
    log.info("fusion posterior tables precomputed (exact, pgmpy VE) in %.1fs: %s",
             time.perf_counter() - t0, sizes)
    return FusionEngine(cfg, model, assets, max_unknown_assets=settings.max_unknown_assets)


def ensure_fusion_topics(settings: Settings) -> None:
    """The shared topics, the ack topic, and the compacted open-alerts topic."""
    from confluent_kafka.admin import AdminClient, NewTopic

    from tocsin.streams.fusion_ops import FUSION_IN

    names = [settings.topic(t) for t in (*topics.ALL, topics.ALERT_ACKS, FUSION_IN)]
    kafka_admin.ensure_topics(settings.broker, names, settings.partitions,
                              replication=settings.replication)
    admin = AdminClient(client_conf(settings.broker))
    compacted = [settings.topic(t) for t in topics.COMPACTED]
    existing = set(admin.list_topics(timeout=30).topics)
    rf = kafka_admin.replication_factor(settings.broker, settings.replication)
    new = [NewTopic(n, settings.partitions, rf, config={"cleanup.policy": "compact"})
           for n in compacted if n not in existing]
    for name, fut in (admin.create_topics(new, operation_timeout=30).items() if new else []):
        try:
            fut.result(30)
        except Exception as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise ServiceError(f"cannot create topic {name}: {exc}") from exc
    kafka_admin.wait_visible(admin, compacted, 30)


def load_network(path: str | Path) -> FusionModel:
    """Load a trained network and precompute its posterior tables (seconds: run it off the
    event loop when the worker is running)."""
    model = FusionModel.load(path)
    for net in model.networks.values():
        net.warm()
    return model


def serve_fusion(settings: Settings, engine: FusionEngine, watch: Path | None = None,
                 current: str | None = None) -> None:
    """Run the route and the fusion operator (runtime threads) until SIGTERM/SIGINT."""
    from tocsin.streams.fusion_ops import FusionOperator, FusionRoute
    from tocsin.streams.runtime.runner import Runner
    from tocsin.streams.runtime.worker import serve

    runners = [Runner(FusionRoute(settings), settings),
               Runner(FusionOperator(settings, engine, watch, current), settings)]

    def ready() -> None:
        for r in runners:
            while not r.ready.wait(0.5):
                if r.stopping.is_set():
                    return
        log.info("fusion: ready (route and fusion operator assigned and restored)")

    import threading

    threading.Thread(target=ready, daemon=True, name="fusion-ready").start()
    serve(runners)
