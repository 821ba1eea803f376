"""The served reading path, pure: images in, findings out, batched.

`prepare` does everything per image (preprocessing, candidate search, crops); `read` runs one
backend call over all crops of a batch of images, so the stream worker's dynamic batches turn
into one ONNX Runtime call. Photometric MONOCHROME1 (inverted grey scale) is flipped back.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from tocsin.contracts.imaging import Finding, StudyImage
from tocsin.models.imaging.artifacts import ImagingArtifact
from tocsin.models.imaging.backend import OrtBackend
from tocsin.models.imaging.preprocess import (
    PreprocessError,
    crop,
    prepare,
    roi_in_original,
    select_rois,
)

NOTE = "model trained on simulated data only; not a clinical result"


@dataclass(slots=True)
class PreparedImage:
    msg: StudyImage
    inputs: np.ndarray  # (k, 2, 64, 64)
    rois: list[dict]
    branch: str
    norm: str
    prep_ms: float


class Reader:
    def __init__(self, artifact: ImagingArtifact, backend: OrtBackend, model: str):
        if model == "teacher":
            # the teacher needs a registered CT+MR pair; messages carry one image
            raise PreprocessError("the teacher reads CT+MR pairs; serve a student model")
        self.artifact, self.backend, self.model = artifact, backend, model
        self.table = artifact.table
        self.k = artifact.roi_candidates

    def prepare(self, msg: StudyImage) -> PreparedImage:
        t0 = time.perf_counter()
        arr = msg.array()
        if msg.photometric == "MONOCHROME1":  # float: int16 max - x + min can overflow
            a = arr.astype(np.float32)
            arr = a.max() - a + a.min()
        p = prepare(arr, msg.modality, msg.vendor, msg.spacing, msg.slope, msg.intercept,
                    self.table)
        rois = select_rois(p.score, self.k)
        if not rois:
            raise PreprocessError("no region of interest found (empty candidate map)")
        crops = np.stack([crop(p.image, r["row0"], r["col0"], fill=p.fill) for r in rois])
        x = np.zeros((len(rois), 2) + crops.shape[1:], np.float32)
        ch = 0 if msg.modality == "CT" else 1
        x[:, ch] = crops
        return PreparedImage(msg, x, rois, msg.modality.lower(), p.norm,
                             (time.perf_counter() - t0) * 1e3)

    def read(self, batch: list[PreparedImage]) -> list[Finding]:
        if not batch:
            return []
        x = np.concatenate([b.inputs for b in batch])
        t0 = time.perf_counter()
        p = self.backend.predict(x)
        infer_ms = (time.perf_counter() - t0) * 1e3
        out, i = [], 0
        now = time.time_ns()
        for b in batch:
            probs = p[i:i + len(b.rois)]
            i += len(b.rois)
            best = int(np.argmax(probs))
            thr = self.artifact.threshold(self.model, b.branch)
            m = b.msg
            notes = [NOTE]
            if b.norm != "vendor":
                notes.append(f"vendor {m.vendor!r} not in the normalisation table; used the "
                             f"pooled {m.modality} entry")
            out.append(Finding(
                study_uid=m.study_uid, series_uid=m.series_uid, sop_uid=m.sop_uid,
                modality=m.modality, vendor=m.vendor, probability=float(probs[best]),
                positive=bool(probs[best] > thr), threshold=thr,
                roi=roi_in_original(b.rois[best], m.spacing, (m.rows, m.cols)),
                candidates=[round(float(v), 5) for v in probs],
                model={"version": self.artifact.version, "name": self.model,
                       "backend": self.backend.name, "branch": b.branch},
                latency_ms={"preprocess": round(b.prep_ms, 3), "inference": round(infer_ms, 3),
                            "end_to_end": round((now - m.received_ts) / 1e6, 3)},
                batch_size=len(batch), received_ts=m.received_ts, emitted_ts=now, notes=notes))
        return out
