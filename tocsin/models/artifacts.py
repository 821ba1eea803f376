"""Versioned model artifact folders: ``<root>/<asset type>/<version>/``.

A folder holds ``manifest.json`` (feature spec and its hash, tags, scaler, thresholds,
training metrics, data fingerprint, file names) and the model files (``iforest.onnx``,
``lstm_ae.onnx``, ``lstm_ae.pt`` for the torch backend). Versions sort by time of creation
(``YYYYmmddTHHMMSSffffffZ-<fingerprint>``), so "newest" is the largest name. A folder is
written under a temporary name and renamed into place, so a worker polling the root never
loads a half-written artifact.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import orjson

from tocsin.detectors.windows import FeatureSpec
from tocsin.errors import ModelError

MANIFEST = "manifest.json"
SCHEMA = "tocsin.model/1"


def default_root() -> Path:
    env = os.environ.get("TOCSIN_MODEL_DIR")
    return Path(env) if env else Path.home() / ".local" / "share" / "tocsin" / "models"


def fingerprint(*arrays: np.ndarray, extra: str = "") -> str:
    h = hashlib.sha256(extra.encode())
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


@dataclass
class Artifact:
    path: Path
    manifest: dict

    @property
    def version(self) -> str:
        return self.manifest["version"]

    @property
    def asset_type(self) -> str:
        return self.manifest["asset_type"]

    @property
    def spec(self) -> FeatureSpec:
        return FeatureSpec.model_validate(self.manifest["feature_spec"])

    @property
    def tags(self) -> list[str]:
        return list(self.manifest["tags"])

    @property
    def feature_hash(self) -> str:
        return self.manifest["feature_hash"]

    def file(self, name: str) -> Path:
        return self.path / name

    def array(self, key: str) -> np.ndarray:
        return np.asarray(self.manifest["scaler"][key], dtype=np.float64)


def new_version(fp: str, now: datetime | None = None) -> str:
    now = now or datetime.now(timezone.utc)
    return f"{now:%Y%m%dT%H%M%S%fZ}-{fp[:8]}"


def write(root: Path, asset_type: str, manifest: dict, files: dict[str, Path]) -> Artifact:
    """Move ``files`` (name -> temporary path) and the manifest into a new version folder."""
    _check_name(asset_type)
    version = manifest["version"]
    final = Path(root) / asset_type / version
    tmp = Path(root) / asset_type / f".tmp-{version}"
    tmp.mkdir(parents=True, exist_ok=True)
    for name, src in files.items():
        shutil.move(str(src), tmp / name)
    doc = dict(manifest, schema=SCHEMA, asset_type=asset_type, files=sorted(files))
    (tmp / MANIFEST).write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2
                                              | orjson.OPT_SERIALIZE_NUMPY))
    os.replace(tmp, final)
    return Artifact(final, doc)


def load(path: Path) -> Artifact:
    path = Path(path)
    try:
        doc = orjson.loads((path / MANIFEST).read_bytes())
    except FileNotFoundError as exc:
        raise ModelError(f"{path}: no {MANIFEST}; not a model artifact") from exc
    except orjson.JSONDecodeError as exc:
        raise ModelError(f"{path / MANIFEST}: not valid JSON ({exc})") from exc
    if doc.get("schema") != SCHEMA:
        raise ModelError(f"{path / MANIFEST}: schema {doc.get('schema')!r}, expected {SCHEMA}")
    for f in doc.get("files", []):
        if not (path / f).exists():
            raise ModelError(f"{path}: manifest lists {f} but the file is missing")
    return Artifact(path, doc)


def versions(root: Path, asset_type: str) -> list[Path]:
    d = Path(root) / asset_type
    if not d.is_dir():
        return []
    return sorted(p for p in d.iterdir() if p.is_dir() and not p.name.startswith(".")
                  and (p / MANIFEST).exists())


def newest(root: Path, asset_type: str) -> Artifact | None:
    v = versions(root, asset_type)
    return load(v[-1]) if v else None


def asset_types(root: Path) -> list[str]:
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and versions(root, p.name))


def _check_name(asset_type: str) -> None:
    if not asset_type or "/" in asset_type or asset_type.startswith("."):
        raise ModelError(f"asset type {asset_type!r} cannot name an artifact folder")
