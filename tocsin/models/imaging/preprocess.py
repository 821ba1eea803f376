"""Preprocessing of one slice: stored values -> Hounsfield units -> window -> fixed spacing ->
per-modality/vendor normalisation -> dynamic regions of interest.

Pure numpy/scipy, so the stream worker, the trainer, the benchmark and the tests share the
exact same steps. The region of interest is chosen per image: candidates are found on a
low-resolution copy (a white top-hat keeps bright structures smaller than a nodule-sized
element, i.e. nodules and vessels, and drops large organs), then the best `k` are cropped at
full resolution and scored by the model. The finding records which crop scored highest.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from tocsin.errors import DataError

TARGET_SPACING_MM = 1.0
CROP = 64  # pixels at the target spacing: the model input
LOWRES = 2  # candidate search runs at TARGET_SPACING_MM * LOWRES
TOPHAT_MM = 14.0  # structures smaller than this are candidates
LUNG_WINDOW = (-600.0, 1500.0)  # centre, width in HU
SUPPORTED = ("CT", "MR")


class PreprocessError(DataError):
    """An image cannot be preprocessed (unsupported modality, bad geometry); says why."""


def to_hu(stored: np.ndarray, slope: float, intercept: float) -> np.ndarray:
    """DICOM Rescale Slope/Intercept: stored value -> Hounsfield units (float32)."""
    return stored.astype(np.float32) * np.float32(slope) + np.float32(intercept)


def window(img: np.ndarray, centre: float, width: float) -> np.ndarray:
    """Linear window to [0, 1], clipped (DICOM C.11.2.1.2 without the 0.5 offsets)."""
    if width <= 0:
        raise PreprocessError(f"window width must be positive, got {width}")
    lo = centre - width / 2
    return np.clip((img - lo) / width, 0.0, 1.0).astype(np.float32)


def resample(img: np.ndarray, spacing: tuple[float, float],
             target: float = TARGET_SPACING_MM) -> np.ndarray:
    """Bilinear resampling of a 2-D image from (row, col) spacing in mm to `target` mm."""
    if img.ndim != 2:
        raise PreprocessError(f"expected a 2-D image, got shape {img.shape}")
    sr, sc = float(spacing[0]), float(spacing[1])
    if not (sr > 0 and sc > 0):
        raise PreprocessError(f"pixel spacing must be positive, got {spacing}")
    if abs(sr - target) < 1e-6 and abs(sc - target) < 1e-6:
        return img.astype(np.float32, copy=False)
    out = (max(1, round(img.shape[0] * sr / target)), max(1, round(img.shape[1] * sc / target)))
    zoom = (out[0] / img.shape[0], out[1] / img.shape[1])
    return ndimage.zoom(img.astype(np.float32), zoom, order=1, grid_mode=True, mode="nearest")


def scale_intensity(img: np.ndarray, modality: str) -> np.ndarray:
    """Vendor-independent first step: CT in HU through the lung window; MR (arbitrary units)
    divided by its 99th percentile, which removes the receive gain."""
    if modality == "CT":
        return window(img, *LUNG_WINDOW)
    if modality == "MR":
        p99 = float(np.percentile(img, 99.0))
        return (img / p99).astype(np.float32) if p99 > 0 else np.zeros_like(img, np.float32)
    raise PreprocessError(f"modality {modality!r} is not supported (supported: CT, MR)")


@dataclass(slots=True)
class NormTable:
    """Mean and standard deviation per (modality, vendor) after `scale_intensity`, fitted on
    simulated training images; unknown vendors fall back to the modality's pooled entry."""
    entries: dict[str, tuple[float, float]]

    @staticmethod
    def key(modality: str, vendor: str | None) -> str:
        return f"{modality}/{vendor or '*'}"

    def lookup(self, modality: str, vendor: str | None) -> tuple[tuple[float, float], str]:
        k = self.key(modality, vendor)
        if k in self.entries:
            return self.entries[k], "vendor"
        return self.entries.get(self.key(modality, None), (0.0, 1.0)), "modality"

    @classmethod
    def fit(cls, images: list[tuple[np.ndarray, str, str]]) -> "NormTable":
        """`images`: (scaled image, modality, vendor)."""
        groups: dict[str, list[np.ndarray]] = {}
        for img, mod, ven in images:
            groups.setdefault(cls.key(mod, ven), []).append(img.ravel())
            groups.setdefault(cls.key(mod, None), []).append(img.ravel())
        ent = {}
        for k, parts in groups.items():
            v = np.concatenate(parts)
            ent[k] = (float(v.mean()), float(v.std() + 1e-6))
        return cls(ent)

    def to_json(self) -> dict:
        return {k: list(v) for k, v in self.entries.items()}

    @classmethod
    def from_json(cls, d: dict) -> "NormTable":
        return cls({k: (float(v[0]), float(v[1])) for k, v in d.items()})


DARK = {"CT": 0.6, "MR": 0.25}  # below this (after scale_intensity): air-filled lung


def lung_mask(low: np.ndarray, modality: str) -> np.ndarray:
    """Air-filled regions inside the body: dark pixels minus the dark components that touch
    the border (air outside the body), with holes filled and closed, so that nodules and
    vessels inside or at the wall of a lung count as lung."""
    dark = low < DARK[modality]
    lab, _ = ndimage.label(dark)
    edge = np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))
    lungs = dark & ~np.isin(lab, edge)
    lungs = ndimage.binary_fill_holes(lungs)
    return ndimage.binary_closing(lungs, structure=np.ones((3, 3)), iterations=3)


def candidate_map(scaled: np.ndarray, modality: str = "CT") -> np.ndarray:
    """Low-resolution candidate score: white top-hat of a 2x down-sampled image, inside the
    lungs (when lungs are found; otherwise everywhere)."""
    h, w = (scaled.shape[0] // LOWRES) * LOWRES, (scaled.shape[1] // LOWRES) * LOWRES
    if h == 0 or w == 0:
        raise PreprocessError(f"image too small for the candidate search: {scaled.shape}")
    low = scaled[:h, :w].reshape(h // LOWRES, LOWRES, w // LOWRES, LOWRES).mean(axis=(1, 3))
    size = max(3, int(round(TOPHAT_MM / (TARGET_SPACING_MM * LOWRES))))
    score = ndimage.white_tophat(low, size=size).astype(np.float32)
    mask = lung_mask(low, modality)
    if mask.sum() >= 16:
        score = score * mask
    return score


def select_rois(score: np.ndarray, k: int, min_dist_px: float = CROP / 2) -> list[dict]:
    """The `k` best local maxima (non-maximum suppression), as crop boxes at full resolution
    (target spacing): row0/col0 of a CROP x CROP window, centre and candidate score."""
    order = np.argsort(score, axis=None)[::-1]
    picked: list[tuple[int, int, float]] = []
    for idx in order[: 50 * k + 50]:
        r, c = np.unravel_index(int(idx), score.shape)
        cr, cc = (r + 0.5) * LOWRES, (c + 0.5) * LOWRES
        if all((cr - pr) ** 2 + (cc - pc) ** 2 >= min_dist_px ** 2 for pr, pc, _ in picked):
            picked.append((cr, cc, float(score[r, c])))
            if len(picked) == k:
                break
    return [{"center": (float(cr), float(cc)), "row0": int(round(cr - CROP / 2)),
             "col0": int(round(cc - CROP / 2)), "size": CROP, "score": s}
            for cr, cc, s in picked]


def crop(img: np.ndarray, row0: int, col0: int, size: int = CROP, fill: float = 0.0) -> np.ndarray:
    """A size x size window that may extend past the border (filled with `fill`)."""
    out = np.full((size, size), fill, np.float32)
    r0, c0 = max(row0, 0), max(col0, 0)
    r1, c1 = min(row0 + size, img.shape[0]), min(col0 + size, img.shape[1])
    if r1 > r0 and c1 > c0:
        out[r0 - row0:r1 - row0, c0 - col0:c1 - col0] = img[r0:r1, c0:c1]
    return out


@dataclass(slots=True)
class Prepared:
    """One image at the target spacing, normalised, with its candidate map."""
    image: np.ndarray  # normalised, target spacing
    scaled: np.ndarray  # after scale_intensity, before the table
    score: np.ndarray  # candidate map (low resolution)
    modality: str
    spacing: tuple[float, float]  # the original (row, col) spacing
    norm: str  # "vendor" or "modality": which table entry was used
    fill: float  # normalised value of empty space (for crops past the border)


def prepare(stored: np.ndarray, modality: str, vendor: str | None,
            spacing: tuple[float, float], slope: float, intercept: float,
            table: NormTable) -> Prepared:
    if modality not in SUPPORTED:
        raise PreprocessError(f"modality {modality!r} is not supported (supported: CT, MR)")
    if stored.ndim != 2:
        raise PreprocessError(f"expected one 2-D slice, got pixel array shape {stored.shape}")
    img = to_hu(stored, slope, intercept) if modality == "CT" else stored.astype(np.float32)
    img = resample(img, spacing)
    scaled = scale_intensity(img, modality)
    (mean, std), how = table.lookup(modality, vendor)
    norm = (scaled - mean) / std
    return Prepared(norm.astype(np.float32), scaled, candidate_map(scaled, modality), modality,
                    (float(spacing[0]), float(spacing[1])), how, float((0.0 - mean) / std))


def roi_in_original(roi: dict, spacing: tuple[float, float],
                    shape: tuple[int, int] | None = None) -> dict:
    """A crop box in the original pixel grid (what a viewer shows), plus millimetres.

    The model's crop may extend past the image border (it is padded, see `crop`); with the
    original `shape` the box is clipped to the image, so row/col are never negative and
    rows/cols cover only real pixels. center_mm and size_mm stay those of the full crop."""
    sr, sc = spacing
    f_r, f_c = TARGET_SPACING_MM / sr, TARGET_SPACING_MM / sc
    r0, c0 = int(round(roi["row0"] * f_r)), int(round(roi["col0"] * f_c))
    r1, c1 = r0 + int(round(roi["size"] * f_r)), c0 + int(round(roi["size"] * f_c))
    if shape is not None:
        r0, r1 = max(0, min(r0, shape[0])), max(0, min(r1, shape[0]))
        c0, c1 = max(0, min(c0, shape[1])), max(0, min(c1, shape[1]))
    return {"row": r0, "col": c0, "rows": r1 - r0, "cols": c1 - c0,
            "center_mm": [round(roi["center"][0] * TARGET_SPACING_MM, 2),
                          round(roi["center"][1] * TARGET_SPACING_MM, 2)],
            "size_mm": roi["size"] * TARGET_SPACING_MM, "candidate_score": round(roi["score"], 5)}
