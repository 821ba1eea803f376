"""DICOM ingest into `imaging.studies`: a C-STORE receiver (pynetdicom), as PACS and
modalities send images, and a folder watcher for DICOM exports.

Both turn a pydicom dataset into a `StudyImage` message and publish it with an idempotent
producer, waiting for Kafka's acknowledgement before answering the sender, so a C-STORE
success means the image is in Kafka. Anything that cannot be decoded or is not supported
(another modality, colour or multi-frame images, pixel data pydicom cannot decode) is refused
with a DIMSE failure status (C-STORE) or logged (watcher) and sent to the dead-letter topic
with pydicom's error. Kafka being unreachable is answered "out of resources" so the sender
retries later; nothing is acknowledged that is not stored.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import numpy as np
from confluent_kafka import Producer

from tocsin.config.kafka_security import client_conf
from tocsin.contracts.deadletter import PAYLOAD_LIMIT, Origin, envelope
from tocsin.contracts.imaging import StudyImage
from tocsin.errors import ConnectorError, DataError

log = logging.getLogger(__name__)

SUPPORTED_MODALITIES = ("CT", "MR")


class DicomRejected(DataError):
    """A DICOM object that will not be processed; `status` is the DIMSE failure to answer."""

    def __init__(self, reason: str, status: int = 0xC210):
        super().__init__(reason)
        self.status = status


def dataset_to_image(ds, *, source: str, sender: str, store_dir: Path | None = None,
                     received_ts: int | None = None) -> StudyImage:
    """pydicom Dataset -> StudyImage; raises DicomRejected naming the attribute at fault."""
    def need(attr: str):
        val = ds.get(attr)
        if val in (None, ""):
            raise DicomRejected(f"DICOM attribute {attr} is missing")
        return val

    modality = str(need("Modality"))
    if modality not in SUPPORTED_MODALITIES:
        raise DicomRejected(f"modality {modality} is not supported (CT, MR)", 0xC211)
    if int(ds.get("SamplesPerPixel", 1)) != 1:
        raise DicomRejected(f"SamplesPerPixel {ds.SamplesPerPixel}: only grey-scale images are "
                            "supported", 0xC211)
    if int(ds.get("NumberOfFrames", 1) or 1) != 1:
        raise DicomRejected(f"NumberOfFrames {ds.NumberOfFrames}: only single-frame images are "
                            "supported", 0xC211)
    spacing = _spacing(ds)
    try:
        arr = ds.pixel_array
    except Exception as exc:  # pydicom raises many kinds; its message is the reason
        raise DicomRejected(f"pixel data cannot be decoded: {type(exc).__name__}: {exc}") from exc
    if arr.ndim != 2:
        raise DicomRejected(f"pixel array has shape {arr.shape}; expected one 2-D slice", 0xC211)
    if arr.dtype.byteorder == ">" or arr.dtype.name not in ("int16", "uint16", "uint8", "int8",
                                                             "int32", "uint32", "float32"):
        arr = arr.astype(np.float32)
    return StudyImage.from_array(
        arr, store_dir=store_dir, study_uid=str(need("StudyInstanceUID")),
        series_uid=str(need("SeriesInstanceUID")), sop_uid=str(need("SOPInstanceUID")),
        modality=modality, vendor=str(ds.get("Manufacturer")) or None,
        spacing=spacing, slope=_number(ds, "RescaleSlope", 1.0),
        intercept=_number(ds, "RescaleIntercept", 0.0),
        photometric=str(ds.get("PhotometricInterpretation", "MONOCHROME2")),
        source=source, sender=sender, received_ts=received_ts or time.time_ns())


def _spacing(ds) -> tuple[float, float]:
    """PixelSpacing as two positive finite mm values; a single value (pydicom gives a DSfloat,
    which has no len) or a bad DS string is a rejection naming the attribute, not a crash."""
    raw = None
    try:
        raw = ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing")
        vals = [float(v) for v in raw] if raw is not None and not isinstance(raw, (str, bytes)) \
            and hasattr(raw, "__iter__") else None
    except Exception as exc:  # pydicom raises ValueError, TypeError, ... for bad DS values
        raise DicomRejected(f"DICOM attribute PixelSpacing is invalid: {exc}") from exc
    if not vals or len(vals) != 2 or not all(0 < v < 1e6 for v in vals):
        raise DicomRejected(f"DICOM attribute PixelSpacing is missing or invalid: {raw!r:.80}; "
                            "two positive values (row, column spacing in mm) are needed")
    return vals[0], vals[1]


def _number(ds, attr: str, default: float) -> float:
    try:
        v = float(ds.get(attr, default) or default)
    except Exception as exc:
        raise DicomRejected(f"DICOM attribute {attr} is invalid: {exc}") from exc
    if not math.isfinite(v):
        raise DicomRejected(f"DICOM attribute {attr} is not finite: {v}")
    return v


class ImagePublisher:
    """Publishes images and dead letters; `publish` returns once Kafka acknowledged."""

    def __init__(self, bootstrap: str, studies_topic: str, deadletter_topic: str,
                 worker: str, failed_dir: Path | None = None, timeout: float = 30.0,
                 deadletter_max_payload: int = PAYLOAD_LIMIT):
        self.producer = Producer(client_conf(bootstrap, {"enable.idempotence": True,
                                  "acks": "all", "linger.ms": 0, "compression.type": "lz4",
                                  "message.max.bytes": 4 << 20,
                                  "message.timeout.ms": int(timeout * 1000),
                                  "client.id": f"tocsin-{worker}"}))
        self.studies, self.deadletter = studies_topic, deadletter_topic
        self.worker, self.failed_dir, self.timeout = worker, failed_dir, timeout
        self.dl_limit = deadletter_max_payload

    def _send(self, topic: str, key: bytes, value: bytes) -> None:
        errors: list = []
        self.producer.produce(topic, value, key=key,
                              on_delivery=lambda err, msg: errors.append(err))
        self.producer.flush(self.timeout)
        if not errors or errors[0] is not None:
            raise ConnectorError(f"Kafka did not acknowledge the message on {topic}: "
                                 f"{errors[0] if errors else 'timed out'}")

    def publish(self, img: StudyImage) -> None:
        self._send(self.studies, img.study_uid.encode(), img.encode())

    def dead_letter(self, raw: bytes, error: str, key: str, kept_at: Path | None = None) -> None:
        """``kept_at``: where the original already lies (the watcher's failed/ folder)."""
        if kept_at is None and len(raw) > self.dl_limit and self.failed_dir is not None:
            self.failed_dir.mkdir(parents=True, exist_ok=True)
            kept_at = self.failed_dir / f"{time.time_ns()}.dcm"
            kept_at.write_bytes(raw)
        if kept_at is not None:
            error = f"{error} (original kept at {kept_at})"
        dl = envelope(raw, error, Origin(self.studies, key=key.encode()), stage="decode",
                      worker=self.worker, ts=time.time_ns(), limit=self.dl_limit)
        self._send(self.deadletter, self.studies.encode(), dl.encode())
        log.warning("dead-lettered DICOM from %s: %s", key, error)


def sample_files() -> list[Path]:
    """The small CT and MR files pydicom ships: the demo's and the tests' studies."""
    from pydicom.data import get_testdata_file

    return [Path(get_testdata_file(n)) for n in ("CT_small.dcm", "MR_small.dcm")]
