"""The imaging stream processor (Faust): `imaging.studies` -> `imaging.findings`.

Dynamic batching: the agent takes up to `max_batch` images or whatever arrived within
`max_wait_ms`, prepares each one (pure preprocessing and region-of-interest search), and runs
one backend call for the whole batch. Input offsets are acknowledged only after the batch is
handled. A message that cannot be decoded, or an image that cannot be prepared (unsupported
modality, bad geometry), goes to the dead-letter topic with the reason; the stream goes on.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Literal

import faust
from prometheus_client import Counter, Histogram
from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from tocsin.config.kafka_security import kafka_security
from tocsin.config.worker import Settings
from tocsin.connectors import kafka_admin, telemetry
from tocsin.contracts import topics
from tocsin.contracts.imaging import StudyImage
from tocsin.errors import ConfigError, TocsinError
from tocsin.models.imaging.artifacts import ImagingArtifact, default_dir
from tocsin.models.imaging.backend import load_backend
from tocsin.models.imaging.reader import Reader
from tocsin.streams.app import raw_topic
from tocsin.streams.deadletters import dead_letterer, reason
from tocsin.streams.observe import instrument

log = logging.getLogger("tocsin.imaging")

IMAGES = Counter("tocsin_imaging_images_total", "Images read", ["model", "branch"])
BATCH = Histogram("tocsin_imaging_batch_size", "Images per inference batch",
                  buckets=(1, 2, 4, 8, 16, 32, 64))
INFER = Histogram("tocsin_imaging_inference_seconds", "Backend time per batch",
                  buckets=(1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 1.0))


class ImagingSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TOCSIN_IMAGING_", extra="ignore",
                                      protected_namespaces=())

    model_dir: Path = Field(default_factory=default_dir, description="trained model folder")
    model: Literal["student-int8", "student-fp32"] = "student-int8"
    backend: Literal["onnxruntime", "tensorrt"] = "onnxruntime"
    threads: int = Field(1, ge=1, le=64, description="ONNX Runtime intra-op threads")
    max_batch: int = Field(16, ge=1, le=1024, description="images per inference batch")
    max_wait_ms: float = Field(20.0, gt=0, description="longest wait to fill a batch")


def load_imaging_settings(**overrides) -> ImagingSettings:
    try:
        return ImagingSettings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        lines = [f"  TOCSIN_IMAGING_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}"
                 for e in exc.errors()]
        raise ConfigError("invalid imaging settings:\n" + "\n".join(lines)) from exc


def create_imaging_app(settings: Settings, im: ImagingSettings) -> faust.App:
    artifact = ImagingArtifact.load(im.model_dir)
    backend = load_backend(im.backend, artifact.model_path(im.model), im.threads,
                           int8=im.model == "student-int8")
    reader = Reader(artifact, backend, im.model)
    app = faust.App(
        f"{settings.app_id}-imaging-{settings.topic_prefix}".rstrip("-"),
        **kafka_security().faust(),
        broker=settings.kafka_url, datadir=str(settings.data_dir), web_enabled=False,
        producer_linger=0.0, producer_acks=-1, topic_partitions=settings.partitions,
        topic_replication_factor=kafka_admin.replication_factor(settings.broker, settings.replication),
        broker_commit_interval=1.0, stream_wait_empty=False,
        consumer_auto_offset_reset="earliest", producer_max_request_size=4 << 20,
        consumer_max_fetch_size=8 << 20,
    )
    studies = raw_topic(app, settings.topic(topics.IMAGING_STUDIES), settings.partitions)
    raw_topic(app, settings.topic(topics.IMAGING_FINDINGS), settings.partitions)  # declared
    deadletter = raw_topic(app, settings.topic(topics.DEADLETTER), settings.partitions)
    findings_name = settings.topic(topics.IMAGING_FINDINGS)
    worker = settings.worker_name

    dead_letter = dead_letterer(deadletter, worker, settings.deadletter_max_payload,
                                settings.report_interval_s)

    def _delivery(fut) -> None:
        if not fut.cancelled() and fut.exception() is not None:
            log.error("finding not delivered to %s: %r", findings_name, fut.exception())

    @app.agent(studies, name="imaging")
    async def imaging(stream):
        async for events in stream.take_events(im.max_batch, within=im.max_wait_ms / 1000):
            ready, ready_events = [], []
            for event in events:
                try:  # the poison rule: any failure on one record is a dead letter
                    msg = StudyImage.decode(event.value)
                except Exception as exc:
                    await dead_letter(event, reason(exc), "decode")
                    continue
                try:
                    ready.append(reader.prepare(msg))
                    ready_events.append(event)
                except TocsinError as exc:  # unsupported modality, bad pixels or geometry
                    await dead_letter(event, f"sop {msg.sop_uid}: {exc}", "process")
                except Exception as exc:  # a bug must not stop the stream; keep the input
                    log.exception("preparing %s failed", msg.sop_uid)
                    await dead_letter(event, reason(exc), "process")
            if not ready:
                continue
            t0 = time.perf_counter()
            try:
                out = reader.read(ready)
            except Exception:
                log.exception("inference failed for a batch of %d; reading one by one",
                              len(ready))
                out = []
                for p, event in zip(ready, ready_events):  # only failing images dead-letter
                    try:
                        out += reader.read([p])
                    except Exception as exc:
                        await dead_letter(event, f"inference: {reason(exc)}", "process")
            INFER.observe(time.perf_counter() - t0)
            BATCH.observe(len(ready))
            for f in out:
                fut = await app.producer.send(findings_name, f.study_uid.encode(), f.encode(),
                                              None, None, None)
                fut.add_done_callback(_delivery)
                IMAGES.labels(im.model, f.model["branch"]).inc()
                log.info("finding %s %s p=%.3f roi=%s batch=%d", f.modality, f.sop_uid,
                         f.probability, (f.roi["row"], f.roi["col"]), f.batch_size)

    app.tocsin_settings = settings  # type: ignore[attr-defined]
    instrument(app, topic_prefix=settings.topic_prefix)
    telemetry.set_model_version("imaging", str(artifact.version))
    return app
