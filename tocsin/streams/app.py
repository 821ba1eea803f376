"""The Faust app of the feature and anomaly agents (tocsin/streams/anomaly_agents.py).

The threshold path runs on Tocsin's own runtime (tocsin/streams/thresholds_op.py, exactly
once); this app keeps the agents not yet ported, with the same poison rule: any exception on
one record is a dead letter with the reason, and the agent keeps running.
"""

from __future__ import annotations

import logging

import faust

from tocsin.config.kafka_security import kafka_security
from tocsin.config.plant import load_plant
from tocsin.config.worker import Settings
from tocsin.connectors import kafka_admin
from tocsin.contracts import topics
from tocsin.contracts.eventtime import TimeGuard
from tocsin.streams.anomaly_agents import add_feature_agents
from tocsin.streams.deadletters import dead_letterer
from tocsin.streams.observe import instrument

log = logging.getLogger("tocsin.worker")


def raw_topic(app: faust.App, name: str, partitions: int) -> faust.TopicT:
    return app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw",
                     value_serializer="raw", partitions=partitions)


def create_app(settings: Settings) -> faust.App:
    plant = load_plant(settings.plant_config)
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

    dead_letter = dead_letterer(deadletter, worker, settings.deadletter_max_payload,
                                settings.report_interval_s)

    def _sent(fut) -> None:
        if not fut.cancelled() and fut.exception() is not None:
            log.error("message not delivered: %r", fut.exception())

    async def producer_send(topic: str, key: bytes, value: bytes) -> None:
        fut = await app.producer.send(topic, key, value, None, None, None)
        fut.add_done_callback(_sent)

    guard = TimeGuard(settings.max_future_skew_s, settings.min_event_year)
    add_feature_agents(app, settings, plant, readings, features_topic, scores_topic,
                       dead_letter, producer_send, guard)
    instrument(app, topic_prefix=settings.topic_prefix)
    app.tocsin_settings = settings  # type: ignore[attr-defined]
    return app
