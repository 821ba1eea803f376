"""A trained imaging model on disk: ONNX files plus `meta.json` (version, thresholds,
normalisation table, ROI settings, quality). The worker needs only this folder and
onnxruntime; torch is never imported when serving."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import orjson

from tocsin.errors import ModelError
from tocsin.models.imaging.preprocess import NormTable

FILES = {"teacher": "teacher.onnx", "student-fp32": "student_fp32.onnx",
         "student-int8": "student_int8.onnx"}


class ArtifactError(ModelError):
    """A model folder is missing or incomplete; names the file."""


def default_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "tocsin" / "models" / "imaging"


@dataclass(slots=True)
class ImagingArtifact:
    path: Path
    meta: dict

    @property
    def version(self) -> str:
        return self.meta["version"]

    @property
    def table(self) -> NormTable:
        return NormTable.from_json(self.meta["norm_table"])

    @property
    def roi_candidates(self) -> int:
        return int(self.meta["roi_candidates"])

    def model_path(self, model: str) -> Path:
        if model not in FILES:
            raise ArtifactError(f"unknown model {model!r} (one of {', '.join(FILES)})")
        p = self.path / FILES[model]
        if not p.is_file():
            raise ArtifactError(f"model file missing: {p}")
        return p

    def threshold(self, model: str, mode: str) -> float:
        return float(self.meta["thresholds"][model][mode])

    def save(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / "meta.json").write_bytes(orjson.dumps(self.meta, option=orjson.OPT_INDENT_2))

    @classmethod
    def load(cls, path: str | Path) -> "ImagingArtifact":
        path = Path(path)
        f = path / "meta.json"
        if not f.is_file():
            raise ArtifactError(f"no imaging model at {path} (meta.json missing); train one "
                                "with `tocsin train imaging --out {path}`")
        try:
            meta = orjson.loads(f.read_bytes())
        except orjson.JSONDecodeError as exc:
            raise ArtifactError(f"{f}: not valid JSON ({exc})") from exc
        for key in ("version", "norm_table", "roi_candidates", "thresholds"):
            if key not in meta:
                raise ArtifactError(f"{f}: missing field '{key}'")
        return cls(path, meta)
