"""Loading the fusion network's config (``tocsin/data/fusion.yaml``); the model it validates
into, :class:`~tocsin.detectors.fusion_config.FusionConfig`, is the detectors' own."""

from __future__ import annotations

from pathlib import Path

from tocsin.config.yamlfile import load_model
from tocsin.detectors.fusion_config import FusionConfig

DEFAULT_PATH = Path(__file__).resolve().parent.parent / "data" / "fusion.yaml"


def load_fusion_config(path: str | Path | None = None) -> FusionConfig:
    return load_model(path or DEFAULT_PATH, FusionConfig)
