"""Where trained fusion networks live: ``<model root>/fusion/<version>/network.json``, beside
the anomaly models' ``<model root>/<asset type>/<version>/`` (tocsin/models/artifacts.py), so
one folder (``$TOCSIN_MODEL_DIR``) holds everything a plant worker and a fusion worker load.

Folder names start with the UTC creation time, so the newest network is the largest name (as
for the anomaly models); the rest is the network's content hash. A folder is written under a
temporary dot-name and renamed into place, so a worker polling for new networks never reads
a half-written one. There is no ``manifest.json`` in it, so the anomaly-model registry never
mistakes ``fusion/`` for an asset type.
"""

from __future__ import annotations

import os
import shutil
from datetime import datetime, timezone
from pathlib import Path

from tocsin.detectors.fusion_bn import ARTIFACT, FusionModel

FOLDER = "fusion"


def fusion_root(model_root: str | Path | None = None) -> Path:
    if model_root is None:
        from tocsin.models.artifacts import default_root

        model_root = default_root()
    return Path(model_root) / FOLDER


def save(model: FusionModel, model_root: str | Path | None = None,
         now: datetime | None = None) -> Path:
    """Write ``model`` as a new version folder; -> the path of its network.json."""
    now = now or datetime.now(timezone.utc)
    root = fusion_root(model_root)
    name = f"{now:%Y%m%dT%H%M%S%fZ}-{model.version}"
    tmp = root / f".tmp-{name}"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save(tmp)
    os.replace(tmp, root / name)
    return root / name / ARTIFACT


def versions(model_root: str | Path | None = None) -> list[Path]:
    root = fusion_root(model_root)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
                  and (p / ARTIFACT).exists())


def newest(model_root: str | Path | None = None) -> Path | None:
    """The newest network.json under the model root, or None."""
    v = versions(model_root)
    return v[-1] / ARTIFACT if v else None
