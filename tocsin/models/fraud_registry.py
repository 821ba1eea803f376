"""The fraud model registry: the deployed artifact folder and the ones it replaced.

The worker loads ``<model_dir>`` (``meta.json``, ``full.onnx``, ``light.onnx``). Training
writes a new artifact beside it under a temporary name, then moves the deployed one to
``<model_dir>.history/<version>/`` and the new one into place, so a worker never starts on a
half-written folder and every earlier model stays inspectable (and can be put back by moving
it). Each ``meta.json`` records its validation quality and the version it replaced
(``replaces``), which ``tocsin payments models`` lists.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from pathlib import Path

import orjson

from tocsin.errors import ModelError


def history_dir(model_dir: Path) -> Path:
    return model_dir.with_name(model_dir.name + ".history")


def staging(model_dir: Path) -> Path:
    p = model_dir.with_name(f".{model_dir.name}.staging-{os.getpid()}")
    shutil.rmtree(p, ignore_errors=True)
    p.mkdir(parents=True)
    return p


def read_meta(folder: Path) -> dict | None:
    try:
        return orjson.loads((folder / "meta.json").read_bytes())
    except FileNotFoundError:
        return None
    except orjson.JSONDecodeError as exc:
        raise ModelError(f"{folder / 'meta.json'} is not valid JSON: {exc}") from exc


def _summary(meta: dict) -> dict:
    q = meta.get("quality", {}).get("validation", {}).get("full") or \
        meta.get("quality_test_period", {}).get("full", {})
    return {"version": meta.get("version"), "created": meta.get("created"),
            "validation": q}


def deploy(model_dir: Path, stage: Path, meta: dict) -> dict:
    """Version ``meta``, record what it replaces, archive the old folder, move ``stage`` in."""
    digest = hashlib.blake2b((stage / "full.onnx").read_bytes(), digest_size=4).hexdigest()
    meta = {**meta, "version": f"fraud-{time.strftime('%Y%m%dT%H%M%S')}-{digest}",
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    old = read_meta(model_dir) if model_dir.exists() else None
    meta["replaces"] = _summary(old) if old else None
    (stage / "meta.json").write_bytes(orjson.dumps(meta, option=orjson.OPT_INDENT_2))
    if model_dir.exists():
        hist = history_dir(model_dir)
        hist.mkdir(parents=True, exist_ok=True)
        name = (old or {}).get("version") or f"unversioned-{time.strftime('%Y%m%dT%H%M%S')}"
        dest = hist / name
        if dest.exists():
            shutil.rmtree(dest)
        model_dir.rename(dest)
    model_dir.parent.mkdir(parents=True, exist_ok=True)
    stage.rename(model_dir)
    return meta


def _row(meta: dict, path: Path, deployed: bool) -> dict:
    """One registry line: the model's validation quality and period, and the model it
    replaced with that model's own validation quality (as recorded when it was replaced)."""
    rep = meta.get("replaces") or {}
    return {**_summary(meta), "valid_period": meta.get("periods_ns", {}).get("valid"),
            "replaces": rep.get("version"), "replaced_validation": rep.get("validation") or {},
            "path": str(path), "deployed": deployed, "kind": meta.get("kind", "hybrid")}


def list_models(model_dir: Path) -> list[dict]:
    """Every model, oldest first; the last one is deployed (``deployed``: True)."""
    rows = []
    hist = history_dir(model_dir)
    if hist.is_dir():
        for p in hist.iterdir():
            m = read_meta(p)
            if m:
                rows.append(_row(m, p, False))
    rows.sort(key=lambda r: r["created"] or "")
    cur = read_meta(model_dir)
    if cur:
        rows.append(_row(cur, model_dir, True))
    return rows
