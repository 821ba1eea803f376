"""From simulated cases to model inputs: crops at the regions of interest, with labels.

Training, evaluation and the benchmark use the same path as the stream worker (`prepare`,
`candidate_map`, `select_rois`, `crop`), so a region-of-interest miss costs the model here
exactly as it would in service. A crop is positive when the nodule centre lies inside it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tocsin.models.imaging.preprocess import (
    CROP,
    TARGET_SPACING_MM,
    NormTable,
    Prepared,
    crop,
    prepare,
    resample,
    scale_intensity,
    select_rois,
    to_hu,
)
from tocsin.models.imaging.simulate import SimCase

MARGIN_PX = 4  # a nodule centre this close to the crop border does not count as inside


def fit_table(cases: list[SimCase]) -> NormTable:
    imgs = []
    for c in cases:
        for stored, meta in ((c.ct, c.ct_meta), (c.mr, c.mr_meta)):
            img = stored.astype(np.float32)
            if meta["modality"] == "CT":
                img = to_hu(stored, meta["slope"], meta["intercept"])
            img = resample(img, meta["spacing"])
            imgs.append((scale_intensity(img, meta["modality"]), meta["modality"], meta["vendor"]))
    return NormTable.fit(imgs)


def prepare_case(c: SimCase, table: NormTable) -> tuple[Prepared, Prepared]:
    out = []
    for stored, m in ((c.ct, c.ct_meta), (c.mr, c.mr_meta)):
        out.append(prepare(stored, m["modality"], m["vendor"], m["spacing"], m["slope"],
                           m["intercept"], table))
    return out[0], out[1]


def _inside(roi: dict, c: SimCase) -> bool:
    if c.phantom.nodule is None:
        return False
    r = c.phantom.nodule[1] / TARGET_SPACING_MM  # nodule (cx, cy) in mm: x = col, y = row
    q = c.phantom.nodule[0] / TARGET_SPACING_MM
    return (roi["row0"] + MARGIN_PX <= r < roi["row0"] + CROP - MARGIN_PX
            and roi["col0"] + MARGIN_PX <= q < roi["col0"] + CROP - MARGIN_PX)


@dataclass(slots=True)
class CropSet:
    """Crops of paired cases: one row per (case, region of interest)."""
    ct: np.ndarray  # (N, CROP, CROP) float32, normalised
    mr: np.ndarray
    label: np.ndarray  # (N,) crop label: nodule centre inside
    case: np.ndarray  # (N,) index of the case
    case_label: np.ndarray  # (cases,) nodule present in the slice
    diameter: np.ndarray  # (cases,) mm, 0 for negatives
    ct_vendor: list[str]
    mr_vendor: list[str]

    def __len__(self) -> int:
        return len(self.label)


def paired_crops(cases: list[SimCase], table: NormTable, k: int,
                 source: str = "both") -> CropSet:
    """Crops at the ROIs found on CT ("ct"), MR ("mr") or the sum of both maps ("both");
    both modalities are cropped at the same place (the simulated pairs are registered)."""
    cts, mrs, lab, idx = [], [], [], []
    for i, c in enumerate(cases):
        p_ct, p_mr = prepare_case(c, table)
        h = min(p_ct.score.shape[0], p_mr.score.shape[0])
        w = min(p_ct.score.shape[1], p_mr.score.shape[1])
        score = {"ct": p_ct.score[:h, :w], "mr": p_mr.score[:h, :w]}.get(
            source, p_ct.score[:h, :w] + p_mr.score[:h, :w])
        for roi in select_rois(score, k):
            cts.append(crop(p_ct.image, roi["row0"], roi["col0"], fill=p_ct.fill))
            mrs.append(crop(p_mr.image, roi["row0"], roi["col0"], fill=p_mr.fill))
            lab.append(_inside(roi, c))
            idx.append(i)
    return CropSet(np.stack(cts), np.stack(mrs), np.array(lab, np.int64), np.array(idx),
                   np.array([c.label for c in cases]), np.array([c.diameter for c in cases]),
                   [c.ct_meta["vendor"] for c in cases], [c.mr_meta["vendor"] for c in cases])


