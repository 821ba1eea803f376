"""The fusion worker (Faust): threshold alerts + scores -> fused alerts with a lifecycle.

Inputs: ``plant.alerts`` (threshold alerts; fused ones are skipped so the loop cannot feed
itself), ``plant.scores`` and ``plant.alerts.acks``. Outputs: lifecycle events on
``plant.alerts`` (key = alert id) and the current state of each open alert on the compacted
``plant.alerts.open`` (a cleared alert becomes a tombstone). Each agent decodes and calls the
pure :class:`~tocsin.detectors.fusion.FusionEngine`; bad input goes to the dead-letter topic.

The engine keeps per-asset state in this process, and the inputs are keyed differently
(scores by asset, alerts by alert id), so run ONE fusion worker per topic prefix. On start the
worker takes over the alerts left open on ``plant.alerts.open`` (`resume_open_alerts`), so a
restart continues an open episode under its id; the rest of the state (active threshold
alerts, the hold timer, raise counts) starts again from the inputs read after the restart.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import faust
from prometheus_client import Histogram

from tocsin.config.fusion import load_fusion_config
from tocsin.config.kafka_security import client_conf, kafka_security
from tocsin.config.plant import load_plant
from tocsin.config.worker import Settings
from tocsin.connectors import kafka_admin, telemetry
from tocsin.contracts import topics
from tocsin.contracts.acks import Ack
from tocsin.contracts.alerts import Alert, AlertEvent
from tocsin.contracts.scores import Scores
from tocsin.detectors.bounds import Throttled
from tocsin.detectors.fusion import FusionEngine
from tocsin.detectors.fusion_bn import FusionModel, expert_network
from tocsin.detectors.fusion_config import FusionConfig
from tocsin.detectors.fusion_train import assets_from_plant, specs_for
from tocsin.errors import ServiceError, TocsinError
from tocsin.streams import metrics
from tocsin.streams.app import raw_topic
from tocsin.streams.deadletters import dead_letterer, reason
from tocsin.streams.observe import instrument

log = logging.getLogger("tocsin.fusion")
FUSE_SECONDS = Histogram("tocsin_fusion_tick_seconds", "Fusion time per score tick (join, "
                         "inference, lifecycle)", buckets=(2e-5, 5e-5, 1e-4, 2.5e-4, 1e-3,
                                                           5e-3, 2.5e-2))


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

    names = [settings.topic(t) for t in (*topics.ALL, topics.ALERT_ACKS)]
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


def resume_open_alerts(settings: Settings, engine: FusionEngine) -> int:
    """Hand the fused alerts a previous worker left open (compacted ``plant.alerts.open``) to
    the engine, so a restart continues their episodes under the same ids instead of raising
    new ones and leaving the old ones open forever. Returns how many were taken over."""
    from tocsin.streams.open_alerts import read_open_alerts

    open_, errors = read_open_alerts(settings.broker, settings.topic(topics.ALERTS_OPEN))
    for err in errors:
        log.warning("open-alerts topic: %s", err)
    n = sum(engine.resume(a) for a in sorted(open_.values(), key=lambda a: a.opened_ts))
    if n:
        log.info("took over %d open fused alert(s) from the previous run", n)
    return n


def load_network(path: str | Path) -> FusionModel:
    """Load a trained network and precompute its posterior tables (seconds: run it off the
    event loop when the worker is running)."""
    model = FusionModel.load(path)
    for net in model.networks.values():
        net.warm()
    return model


def create_fusion_app(settings: Settings, engine: FusionEngine, watch: Path | None = None,
                      current: str | None = None) -> faust.App:
    """``watch``: the model root's fusion/ folder; a newer network there is loaded (off the
    event loop) and swapped in without a restart. ``current``: the network loaded now."""
    app = faust.App(
        f"{settings.app_id}-fusion-{settings.topic_prefix}".rstrip("-"),
        **kafka_security().faust(),
        broker=settings.kafka_url, datadir=str(settings.data_dir), web_enabled=False,
        producer_linger=0.0, producer_acks=-1, topic_partitions=settings.partitions,
        topic_replication_factor=kafka_admin.replication_factor(settings.broker, settings.replication),
        broker_commit_interval=1.0, stream_wait_empty=False,
        consumer_auto_offset_reset="earliest",
    )
    p = settings.partitions
    alerts_t = raw_topic(app, settings.topic(topics.ALERTS), p)
    scores_t = raw_topic(app, settings.topic(topics.SCORES), p)
    acks_t = raw_topic(app, settings.topic(topics.ALERT_ACKS), p)
    deadletter = raw_topic(app, settings.topic(topics.DEADLETTER), p)
    alerts_name, open_name = settings.topic(topics.ALERTS), settings.topic(topics.ALERTS_OPEN)
    worker = f"{settings.worker_name}-fusion"
    m_alerts = {e.value: metrics.ALERTS.labels("fusion", e.value) for e in AlertEvent}

    dead_letter = dead_letterer(deadletter, worker, settings.deadletter_max_payload,
                                settings.report_interval_s)
    skipped = Throttled(log, "score ticks skipped (no fusion network for the asset type, or "
                        f"beyond {settings.max_unknown_assets} assets outside the plant config)",
                        settings.report_interval_s)
    seen = [0, 0]

    def _delivery(fut) -> None:
        if not fut.cancelled() and fut.exception() is not None:
            log.error("fused alert not delivered: %r", fut.exception())

    async def emit(alerts: list[Alert]) -> None:
        for a in alerts:
            key = a.alert_id.encode()
            data = a.encode()
            for topic, value in ((alerts_name, data),
                                 (open_name, None if a.event is AlertEvent.CLEARED else data)):
                fut = await app.producer.send(topic, key, value, None, None, None)
                fut.add_done_callback(_delivery)
            m_alerts[a.event.value].inc()
            telemetry.observe_latency("fusion", a.source_ts)
            log.info("%s %s %s", a.event.value, a.alert_id, a.message)

    async def handle(event, decode, process) -> None:
        try:  # the poison rule: any failure on one record is a dead letter, never a crash
            obj = decode(event.value)
        except Exception as exc:
            await dead_letter(event, reason(exc), "decode")
            return
        try:
            out = process(obj)
        except Exception as exc:  # a bug must not stop the stream; keep the input
            log.exception("fusion failed on %s", event.message.topic)
            await dead_letter(event, reason(exc), "process")
            return
        await emit(out)

    def on_scores(s: Scores) -> list[Alert]:
        t0 = time.perf_counter()
        out = engine.on_scores(s, time.time_ns())
        FUSE_SECONDS.observe(time.perf_counter() - t0)
        if engine.skipped != seen[0]:
            seen[0] = engine.skipped
            skipped.note("no_network", example=f"asset {s.asset!r} type {s.asset_type!r}")
        if engine.refused != seen[1]:
            skipped.note("over_cap", engine.refused - seen[1], f"asset {s.asset!r}")
            seen[1] = engine.refused
        return out

    def on_ack(a: Ack) -> list[Alert]:
        out = engine.on_ack(a, time.time_ns())
        if not out:
            log.warning("ack of %s by %s changed nothing (not open, or already acked)",
                        a.alert_id, a.user)
        return out

    def on_alert(a: Alert) -> list[Alert]:
        engine.on_threshold(a)  # fused alerts (our own output) are ignored inside
        return []

    if watch is not None:
        loaded = {"path": current, "failed": None}

        @app.timer(interval=settings.model_poll_s)
        async def reload_network():
            from tocsin.models import fusion_store

            newest = fusion_store.newest(watch.parent)
            if newest is None or str(newest) in (loaded["path"], loaded["failed"]):
                return
            try:
                model = await asyncio.get_running_loop().run_in_executor(None, load_network,
                                                                         newest)
            except TocsinError as exc:
                loaded["failed"] = str(newest)  # do not retry the same file every poll
                log.error("fusion network %s not loaded, keeping %s: %s", newest,
                          engine.model.version, exc)
                return
            old = engine.model.version
            engine.set_model(model)
            telemetry.set_model_version("fusion", str(model.version))
            loaded["path"] = str(newest)
            metrics.MODEL_RELOADS.labels("fusion").inc()
            log.info("fusion network %s -> %s (%s)", old, model.version, newest)

    @app.agent(alerts_t, name="fusion-alerts")
    async def alerts_in(stream):
        async for event in stream.events():
            await handle(event, Alert.decode, on_alert)

    @app.agent(scores_t, name="fusion-scores")
    async def scores_in(stream):
        async for event in stream.events():
            await handle(event, Scores.decode, on_scores)

    @app.agent(acks_t, name="fusion-acks")
    async def acks_in(stream):
        async for event in stream.events():
            await handle(event, Ack.decode, on_ack)

    instrument(app, topic_prefix=settings.topic_prefix)
    telemetry.set_model_version("fusion", str(engine.model.version))
    telemetry.track_state("fusion", lambda: len(engine._state))
    app.tocsin_settings = settings  # type: ignore[attr-defined]
    return app
