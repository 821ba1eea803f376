"""Imaging messages: `imaging.studies` (one image in, keyed by study UID) and
`imaging.findings` (one finding out, keyed by study UID).

An image message carries identity (study, series, SOP instance), modality, vendor, pixel
spacing, the rescale parameters and the stored pixels: inline (base64 of the raw
little-endian array) for small images, or a file reference (a `.npy` written by the
receiver) for large ones, so Kafka messages stay small.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson

from tocsin.contracts._codec import check_schema, loads
from tocsin.contracts._codec import field as get_field
from tocsin.contracts.strict import check_id, check_number
from tocsin.errors import SchemaError

STUDY = "tocsin.imaging.study"
FINDING = "tocsin.imaging.finding"
VERSION = 1
DTYPES = ("int8", "uint8", "int16", "uint16", "int32", "uint32", "float32", "float64")
INLINE_MAX_BYTES = 512 * 1024  # larger pixel arrays go by reference


@dataclass(slots=True)
class StudyImage:
    study_uid: str
    series_uid: str
    sop_uid: str
    modality: str
    vendor: str | None
    rows: int
    cols: int
    spacing: tuple[float, float]  # (row, col) mm
    dtype: str
    slope: float
    intercept: float
    pixels: dict  # {"inline": base64} or {"uri": "file:///...npy"}
    source: str  # "cstore", "watch", ...
    sender: str  # calling AE title or file path
    received_ts: int  # ns
    photometric: str = "MONOCHROME2"

    @classmethod
    def from_array(cls, arr: np.ndarray, *, store_dir: Path | None = None, **kw) -> "StudyImage":
        arr = np.ascontiguousarray(arr)
        if arr.dtype.name not in DTYPES:
            raise SchemaError(f"{STUDY}: pixel dtype {arr.dtype.name} is not supported")
        raw = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
        if len(raw) <= INLINE_MAX_BYTES or store_dir is None:
            pixels = {"inline": base64.b64encode(raw).decode()}
        else:
            store_dir.mkdir(parents=True, exist_ok=True)
            p = (store_dir / f"{kw['sop_uid']}.npy").resolve()
            np.save(p, arr)
            pixels = {"uri": p.as_uri()}
        return cls(rows=arr.shape[0], cols=arr.shape[1], dtype=arr.dtype.name, pixels=pixels, **kw)

    def array(self) -> np.ndarray:
        """The stored pixel values; errors name the field at fault."""
        if "inline" in self.pixels:
            try:
                raw = base64.b64decode(self.pixels["inline"], validate=True)
            except (ValueError, TypeError) as exc:
                raise SchemaError(f"{STUDY}: field 'pixels.inline' is not base64 ({exc})") from exc
            dt = np.dtype(self.dtype).newbyteorder("<")
            if len(raw) != self.rows * self.cols * dt.itemsize:
                need = self.rows * self.cols * dt.itemsize
                raise SchemaError(f"{STUDY}: field 'pixels.inline' has {len(raw)} bytes; rows x "
                                  f"cols x {self.dtype} needs {need}")
            return np.frombuffer(raw, dt).reshape(self.rows, self.cols).astype(self.dtype)
        uri = self.pixels.get("uri")
        if not isinstance(uri, str) or not uri.startswith("file://"):
            raise SchemaError(f"{STUDY}: field 'pixels' needs 'inline' or a file:// 'uri'")
        try:
            arr = np.load(uri[len("file://"):], allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise SchemaError(f"{STUDY}: field 'pixels.uri' cannot be read: {exc}") from exc
        if arr.shape != (self.rows, self.cols):
            raise SchemaError(f"{STUDY}: field 'pixels.uri' holds shape {arr.shape}, "
                              f"expected ({self.rows}, {self.cols})")
        return arr

    def encode(self) -> bytes:
        return orjson.dumps({
            "schema": f"{STUDY}/{VERSION}", "study_uid": self.study_uid,
            "series_uid": self.series_uid, "sop_uid": self.sop_uid, "modality": self.modality,
            "vendor": self.vendor, "rows": self.rows, "cols": self.cols,
            "spacing": list(self.spacing), "dtype": self.dtype, "slope": self.slope,
            "intercept": self.intercept, "photometric": self.photometric,
            "pixels": self.pixels, "source": self.source, "sender": self.sender,
            "received_ts": self.received_ts})

    @classmethod
    def decode(cls, data: bytes) -> "StudyImage":
        obj = loads(data, STUDY)
        check_schema(obj, STUDY, VERSION)
        spacing = get_field(obj, "spacing", list, STUDY)
        if len(spacing) != 2 or not all(type(s) in (int, float) and 0 < s < 1e6
                                        for s in spacing):
            raise SchemaError(f"{STUDY}: field 'spacing' must be two positive numbers (mm), "
                              f"got {spacing!r}")
        dtype = get_field(obj, "dtype", str, STUDY)
        if dtype not in DTYPES:
            raise SchemaError(f"{STUDY}: field 'dtype' must be one of {', '.join(DTYPES)}; "
                              f"got {dtype!r}")
        vendor = obj.get("vendor")
        rows, cols = get_field(obj, "rows", int, STUDY), get_field(obj, "cols", int, STUDY)
        if not (0 < rows <= 65535 and 0 < cols <= 65535):
            raise SchemaError(f"{STUDY}: fields 'rows' and 'cols' must be positive")
        return cls(
            study_uid=check_id(get_field(obj, "study_uid", str, STUDY), "study_uid", STUDY),
            series_uid=check_id(get_field(obj, "series_uid", str, STUDY), "series_uid", STUDY),
            sop_uid=check_id(get_field(obj, "sop_uid", str, STUDY), "sop_uid", STUDY),
            modality=get_field(obj, "modality", str, STUDY),
            vendor=vendor if isinstance(vendor, str) else None,
            rows=rows, cols=cols, spacing=(float(spacing[0]), float(spacing[1])), dtype=dtype,
            slope=check_number(get_field(obj, "slope", (int, float), STUDY), "slope", STUDY),
            intercept=check_number(get_field(obj, "intercept", (int, float), STUDY), "intercept",
                                   STUDY),
            pixels=get_field(obj, "pixels", dict, STUDY),
            source=get_field(obj, "source", str, STUDY),
            sender=get_field(obj, "sender", str, STUDY),
            received_ts=get_field(obj, "received_ts", int, STUDY),
            photometric=_photometric(obj.get("photometric")),
        )


@dataclass(slots=True)
class Finding:
    study_uid: str
    series_uid: str
    sop_uid: str
    modality: str
    vendor: str | None
    probability: float  # P(nodule) of the best region of interest
    positive: bool  # probability > threshold (chosen on simulated validation data)
    threshold: float
    # best region: row, col, rows, cols (original pixels, clipped to the image), center_mm,
    # size_mm (of the full, padded crop)
    roi: dict
    candidates: list  # probability of every region of interest examined
    model: dict  # version, name, backend, branch
    latency_ms: dict  # preprocess, inference (batch), end_to_end (received -> emitted)
    batch_size: int
    received_ts: int
    emitted_ts: int
    notes: list = field(default_factory=list)

    def encode(self) -> bytes:
        return orjson.dumps({
            "schema": f"{FINDING}/{VERSION}", "study_uid": self.study_uid,
            "series_uid": self.series_uid, "sop_uid": self.sop_uid, "modality": self.modality,
            "vendor": self.vendor, "probability": self.probability, "positive": self.positive,
            "threshold": self.threshold, "roi": self.roi, "candidates": self.candidates,
            "model": self.model, "latency_ms": self.latency_ms, "batch_size": self.batch_size,
            "received_ts": self.received_ts, "emitted_ts": self.emitted_ts,
            "notes": self.notes})

    @classmethod
    def decode(cls, data: bytes) -> "Finding":
        obj = loads(data, FINDING)
        check_schema(obj, FINDING, VERSION)
        vendor = obj.get("vendor")
        return cls(
            study_uid=get_field(obj, "study_uid", str, FINDING),
            series_uid=get_field(obj, "series_uid", str, FINDING),
            sop_uid=get_field(obj, "sop_uid", str, FINDING),
            modality=get_field(obj, "modality", str, FINDING),
            vendor=vendor if isinstance(vendor, str) else None,
            probability=float(get_field(obj, "probability", (int, float), FINDING)),
            positive=get_field(obj, "positive", bool, FINDING),
            threshold=float(get_field(obj, "threshold", (int, float), FINDING)),
            roi=get_field(obj, "roi", dict, FINDING),
            candidates=get_field(obj, "candidates", list, FINDING),
            model=get_field(obj, "model", dict, FINDING),
            latency_ms=get_field(obj, "latency_ms", dict, FINDING),
            batch_size=get_field(obj, "batch_size", int, FINDING),
            received_ts=get_field(obj, "received_ts", int, FINDING),
            emitted_ts=get_field(obj, "emitted_ts", int, FINDING),
            notes=obj.get("notes") or [],
        )


def _photometric(p: object) -> str:
    if p is None or p == "":
        return "MONOCHROME2"
    if type(p) is not str:
        raise SchemaError(f"{STUDY}: field 'photometric' must be a string, got "
                          f"{type(p).__name__}")
    return p
