"""The Faust app: topic declarations and thin agent shells around the pure detectors.

Each agent decodes, calls a pure object, and sends the result. Anything that cannot be decoded
or processed goes to the dead-letter topic with the reason, and the agent keeps running (the
poison rule: any exception on one record, not only a SchemaError). Samples with implausible
event times are dropped before any detector sees them and the frame is dead-lettered with
the reason (stage "guard"); frames of assets without limits are counted, never kept per asset.
"""

from __future__ import annotations

import logging
import time

import faust

from tocsin.config.kafka_security import kafka_security
from tocsin.config.plant import load_plant
from tocsin.config.worker import Settings
from tocsin.connectors import kafka_admin, telemetry
from tocsin.contracts import topics
from tocsin.contracts.eventtime import TimeGuard
from tocsin.detectors.bounds import Throttled
from tocsin.detectors.intake import ReadingsIntake
from tocsin.detectors.threshold_alerts import alerter_from_plant
from tocsin.streams import metrics
from tocsin.streams.anomaly_agents import add_feature_agents
from tocsin.streams.deadletters import dead_letterer, reason
from tocsin.streams.observe import instrument

log = logging.getLogger("tocsin.worker")


def raw_topic(app: faust.App, name: str, partitions: int) -> faust.TopicT:
    return app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw",
                     value_serializer="raw", partitions=partitions)


def create_app(settings: Settings) -> faust.App:
    plant = load_plant(settings.plant_config)
    alerter = alerter_from_plant(plant)
    app = faust.App(
        f"{settings.app_id}-{settings.topic_prefix}".rstrip("-"),
        **kafka_security().faust(),
        broker=settings.kafka_url,
        datadir=str(settings.data_dir),
        web_enabled=False,
        producer_linger=0.0,
        producer_acks=-1,
        topic_partitions=settings.partitions,
        topic_replication_factor=kafka_admin.replication_factor(settings.broker, settings.replication),
        broker_commit_interval=1.0,
        stream_wait_empty=False,
        consumer_auto_offset_reset="earliest",
    )
    readings = raw_topic(app, settings.topic(topics.READINGS), settings.partitions)
    raw_topic(app, settings.topic(topics.ALERTS), settings.partitions)  # declared
    features_topic = raw_topic(app, settings.topic(topics.FEATURES), settings.partitions)
    scores_topic = raw_topic(app, settings.topic(topics.SCORES), settings.partitions)
    deadletter = raw_topic(app, settings.topic(topics.DEADLETTER), settings.partitions)
    worker = settings.worker_name
    m_time = metrics.PROCESS_SECONDS.labels("thresholds")
    m_frames = metrics.FRAMES.labels("thresholds")
    m_samples = metrics.SAMPLES.labels("thresholds")
    m_alerts = {e: metrics.ALERTS.labels("threshold", e) for e in
                ("raised", "updated", "acknowledged", "cleared")}

    dead_letter = dead_letterer(deadletter, worker, settings.deadletter_max_payload,
                                settings.report_interval_s)

    alerts_name = settings.topic(topics.ALERTS)

    def _delivery(fut) -> None:
        if not fut.cancelled() and fut.exception() is not None:
            log.error("alert not delivered to %s: %r", alerts_name, fut.exception())

    async def emit(alert) -> None:
        # straight to the app's producer: Faust's Topic.send machinery cost as much per
        # message as the detector itself. Still at-least-once: Faust flushes this producer
        # before it commits the input offsets.
        fut = await app.producer.send(alerts_name, alert.alert_id.encode(), alert.encode(),
                                      None, None, None)
        fut.add_done_callback(_delivery)
        telemetry.observe_latency("alert", alert.source_ts, alert.emitted_ts)

    def _sent(fut) -> None:
        if not fut.cancelled() and fut.exception() is not None:
            log.error("message not delivered: %r", fut.exception())

    async def producer_send(topic: str, key: bytes, value: bytes) -> None:
        fut = await app.producer.send(topic, key, value, None, None, None)
        fut.add_done_callback(_sent)

    guard = TimeGuard(settings.max_future_skew_s, settings.min_event_year)
    intake = ReadingsIntake(guard, settings.report_interval_s, "thresholds")
    n_unknown = [0]
    add_feature_agents(app, settings, plant, readings, features_topic, scores_topic,
                       dead_letter, producer_send, guard)
    instrument(app, topic_prefix=settings.topic_prefix)
    telemetry.track_state("thresholds", lambda: len(alerter._detectors))
    if "thresholds" not in settings.agent_set:
        app.tocsin_settings = settings  # type: ignore[attr-defined]
        return app

    unknown = Throttled(log, "frames of assets without limits in the plant config (counted "
                        "in tocsin_unconfigured_asset_frames_total, not checked)",
                        settings.report_interval_s)
    m_unknown = metrics.UNKNOWN_ASSETS

    @app.agent(readings, name="thresholds")
    async def thresholds(stream):
        async for event in stream.events():
            now = time.time_ns()
            try:  # the poison rule: any failure on one record is a dead letter, never a crash
                got = intake.take(event.value, now)
            except Exception as exc:
                await dead_letter(event, reason(exc), "decode")
                continue
            frame = got.frame
            telemetry.observe_frame("worker", frame.ts)
            if got.refused:
                metrics.REFUSED.labels("thresholds", "event_time").inc(got.refused)
                await dead_letter(event, got.reason, "guard")
            t0 = time.perf_counter()
            try:
                out = alerter.process(frame, now)
            except Exception as exc:  # a bug must not stop the stream; keep the input
                log.exception("threshold processing failed for asset %s", frame.asset)
                await dead_letter(event, reason(exc), "process")
                continue
            m_time.observe(time.perf_counter() - t0)
            m_frames.inc()
            m_samples.inc(len(frame))
            if alerter.unknown_frames != n_unknown[0]:
                n_unknown[0] = alerter.unknown_frames
                m_unknown.inc()
                unknown.note("frames", example=f"asset {frame.asset!r}")
            for alert in out:
                await emit(alert)
                m_alerts[alert.event.value].inc()

    app.tocsin_settings = settings  # type: ignore[attr-defined]
    return app
