"""Simulated CT-like and MR-like slice pairs with nodules of known size and position.

No labelled clinical data is available to this project, so training and evaluation use this
simulator, and every figure derived from it is called *simulated*. A phantom is defined in
millimetres (body outline, fat rim, lungs with texture, spine, vessels) and rendered by two
simulated vendors per modality that differ in pixel spacing, rescale parameters, calibration
offset, gain, blur and noise, as real scanners do. The two modalities complement each other on
purpose: in CT small vessels look like nodules (both bright in the lung), in the T2-like MR
vessels are flow voids (dark) but resolution and SNR are worse. A nodule (solid, known
diameter, including sub-3 mm ones) sits in a lung on positive cases.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

FIELD_MM = 160.0  # field of view of a phantom, square


@dataclass(frozen=True, slots=True)
class Vendor:
    name: str
    modality: str  # "CT" or "MR"
    spacing_mm: float
    slope: float = 1.0
    intercept: float = 0.0
    offset: float = 0.0  # CT: HU calibration drift; MR: unused
    gain: float = 1.0  # MR: receive gain (arbitrary units per unit signal)
    noise: float = 0.0  # CT: HU sigma; MR: fraction of tissue signal (Rician)
    blur_px: float = 0.0  # reconstruction kernel / point spread
    bias: float = 0.0  # MR: strength of the smooth coil bias field


VENDORS: dict[str, Vendor] = {v.name: v for v in (
    Vendor("SimCT-A", "CT", 0.8, slope=1.0, intercept=-1024.0, offset=0.0, noise=18.0,
           blur_px=0.8),
    Vendor("SimCT-B", "CT", 1.0, slope=0.5, intercept=-1000.0, offset=25.0, noise=30.0,
           blur_px=0.5),
    Vendor("SimMR-A", "MR", 1.5, gain=900.0, noise=0.08, blur_px=0.8, bias=0.15),
    Vendor("SimMR-B", "MR", 2.0, gain=2600.0, noise=0.12, blur_px=0.8, bias=0.3),
)}
CT_VENDORS = ("SimCT-A", "SimCT-B")
MR_VENDORS = ("SimMR-A", "SimMR-B")

# tissue classes and their CT (HU) and T2-like MR (relative signal) values
_CT = {"air": -1000.0, "fat": -100.0, "soft": 40.0, "lung": -850.0, "bone": 700.0,
       "vessel": 60.0, "nodule": 30.0}
_MR = {"air": 0.0, "fat": 0.55, "soft": 0.45, "lung": 0.04, "bone": 0.15,
       "vessel": 0.01, "nodule": 0.65}


@dataclass(slots=True)
class Phantom:
    """Shapes in mm; rendering turns it into any vendor's image of the same anatomy."""
    body: tuple[float, float, float, float]  # cx, cy, rx, ry
    lungs: list[tuple[float, float, float, float]]
    spine: tuple[float, float, float]  # cx, cy, r
    vessels: list[tuple[float, float, float]]  # cx, cy, r
    texture_seed: int
    nodule: tuple[float, float, float] | None = None  # cx, cy, diameter (mm)
    meta: dict = field(default_factory=dict)


def random_phantom(rng: np.random.Generator, nodule: bool,
                   diameter_mm: float | None = None) -> Phantom:
    c = FIELD_MM / 2
    body = (c + rng.normal(0, 3), c + rng.normal(0, 3), rng.uniform(66, 74), rng.uniform(52, 60))
    lungs = []
    for side in (-1, 1):
        lungs.append((body[0] + side * rng.uniform(32, 36), body[1] - rng.uniform(0, 6),
                      rng.uniform(17, 21), rng.uniform(28, 34)))
    spine = (body[0], body[1] + body[3] - rng.uniform(14, 18), rng.uniform(8, 10))
    vessels = []
    for _ in range(int(rng.integers(2, 7))):
        lx, ly, lrx, lry = lungs[int(rng.integers(0, 2))]
        a, r = rng.uniform(0, 2 * np.pi), np.sqrt(rng.uniform(0, 0.7))
        vessels.append((lx + r * lrx * np.cos(a), ly + r * lry * np.sin(a),
                        rng.uniform(0.6, 1.6)))
    nod = None
    if nodule:
        d = float(diameter_mm if diameter_mm is not None else _nodule_size(rng))
        lx, ly, lrx, lry = lungs[int(rng.integers(0, 2))]
        a, r = rng.uniform(0, 2 * np.pi), np.sqrt(rng.uniform(0, 0.6))
        nod = (lx + r * lrx * np.cos(a), ly + r * lry * np.sin(a), d)
    return Phantom(body, lungs, spine, vessels, int(rng.integers(0, 2**31)), nod)


def _nodule_size(rng: np.random.Generator) -> float:
    """A third of the nodules are under 3 mm, the hard case the seed cares about."""
    return rng.uniform(1.5, 3.0) if rng.random() < 1 / 3 else rng.uniform(3.0, 10.0)


def _labels(ph: Phantom, spacing: float) -> tuple[dict[str, np.ndarray], np.ndarray]:
    n = int(round(FIELD_MM / spacing))
    y, x = (np.mgrid[0:n, 0:n].astype(np.float32) + 0.5) * spacing

    def ellipse(cx, cy, rx, ry):
        return ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1.0

    def disc(cx, cy, r):  # soft-edged disc, fraction of the pixel covered
        d = np.sqrt((x - cx) ** 2 + (y - cy) ** 2)
        return np.clip(r - d + spacing / 2, 0.0, spacing) / spacing

    bx, by, brx, bry = ph.body
    masks = {"body": ellipse(bx, by, brx, bry).astype(np.float32),
             "inner": ellipse(bx, by, brx - 7, bry - 7).astype(np.float32),
             "lung": np.zeros((n, n), np.float32)}
    for lung in ph.lungs:
        masks["lung"] = np.maximum(masks["lung"], ellipse(*lung))
    masks["bone"] = disc(*ph.spine)
    masks["vessel"] = np.zeros((n, n), np.float32)
    for v in ph.vessels:
        masks["vessel"] = np.maximum(masks["vessel"], disc(*v))
    masks["nodule"] = (disc(ph.nodule[0], ph.nodule[1], ph.nodule[2] / 2)
                       if ph.nodule is not None else np.zeros((n, n), np.float32))
    return masks, np.stack([y, x])


def _compose(masks: dict[str, np.ndarray], values: dict[str, float],
             texture: np.ndarray) -> np.ndarray:
    img = np.full(masks["body"].shape, values["air"], np.float32)
    img = np.where(masks["body"] > 0, values["fat"], img)
    img = np.where(masks["inner"] > 0, values["soft"], img)
    lung = values["lung"] * (1 + texture)
    img = np.where(masks["lung"] > 0, lung, img)
    for k in ("bone", "vessel", "nodule"):
        img = img * (1 - masks[k]) + values[k] * masks[k]
    return img.astype(np.float32)


def render(ph: Phantom, vendor: Vendor, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """The stored pixel values a scanner of this vendor would write, plus DICOM-like meta."""
    masks, _ = _labels(ph, vendor.spacing_mm)
    n = masks["body"].shape[0]
    tex_rng = np.random.default_rng(ph.texture_seed)  # same anatomy across vendors
    tex = ndimage.zoom(tex_rng.normal(0, 1, (40, 40)).astype(np.float32), n / 40, order=1)
    tex = ndimage.gaussian_filter(tex, 1.5 / vendor.spacing_mm)[:n, :n]
    if vendor.modality == "CT":
        img = _compose(masks, _CT, 0.06 * tex)
        img = ndimage.gaussian_filter(img, vendor.blur_px) + vendor.offset
        img = img + rng.normal(0, vendor.noise, img.shape)
        stored = np.round((img - vendor.intercept) / vendor.slope)
        stored = np.clip(stored, -32768, 32767).astype(np.int16)
    else:
        img = _compose(masks, _MR, 0.3 * tex)
        img = ndimage.gaussian_filter(img, vendor.blur_px)
        yy, xx = np.mgrid[0:n, 0:n] / n
        a = rng.uniform(0, 2 * np.pi)
        img = img * (1 + vendor.bias * (np.cos(a) * (xx - .5) + np.sin(a) * (yy - .5)) * 2)
        s = vendor.noise * _MR["soft"]
        img = np.hypot(img + rng.normal(0, s, img.shape), rng.normal(0, s, img.shape))
        stored = np.clip(np.round(img * vendor.gain), 0, 65535).astype(np.uint16)
    meta = {"modality": vendor.modality, "vendor": vendor.name,
            "spacing": (vendor.spacing_mm, vendor.spacing_mm),
            "slope": vendor.slope if vendor.modality == "CT" else 1.0,
            "intercept": vendor.intercept if vendor.modality == "CT" else 0.0}
    return stored, meta


@dataclass(slots=True)
class SimCase:
    phantom: Phantom
    ct: np.ndarray
    ct_meta: dict
    mr: np.ndarray
    mr_meta: dict

    @property
    def label(self) -> int:
        return int(self.phantom.nodule is not None)

    @property
    def diameter(self) -> float:
        return self.phantom.nodule[2] if self.phantom.nodule is not None else 0.0


def simulate_cases(n: int, seed: int, positive_fraction: float = 0.5,
                   ct_vendor: str | None = None, mr_vendor: str | None = None) -> list[SimCase]:
    """`n` simulated CT/MR pairs; vendors drawn at random unless fixed. Anatomy and noise
    come from separate generators, so the same seed with other vendors gives the same
    phantoms (the cross-vendor agreement compares like with like)."""
    rng = np.random.default_rng(seed)
    noise = np.random.default_rng([seed, 1])
    out = []
    for _ in range(n):
        ph = random_phantom(rng, rng.random() < positive_fraction)
        ci, mi = int(rng.integers(0, 2)), int(rng.integers(0, 2))
        cv = VENDORS[ct_vendor or CT_VENDORS[ci]]
        mv = VENDORS[mr_vendor or MR_VENDORS[mi]]
        ct, cm = render(ph, cv, noise)
        mr, mm = render(ph, mv, noise)
        out.append(SimCase(ph, ct, cm, mr, mm))
    return out
