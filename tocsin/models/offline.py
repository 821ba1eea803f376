"""Run readings frames through the stream's detector code offline (evaluation, tests):
window engine -> feature rows -> :class:`AnomalyScorer` -> scores, in event time."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from tocsin.contracts.readings import ReadingsFrame
from tocsin.contracts.scores import Scores
from tocsin.detectors.windows import FeatureSpec, WindowEngine
from tocsin.models.scoring import AnomalyScorer, ModelRegistry


def score_frames(frames: Iterable[ReadingsFrame], *, spec: FeatureSpec,
                 asset_tags: dict[str, list[str]], asset_types: dict[str, str],
                 model_root: Path, backend: str = "onnxruntime", batch_frames: int = 64,
                 registry: ModelRegistry | None = None) -> list[Scores]:
    reg = registry or ModelRegistry(model_root, backend)
    scorer = AnomalyScorer(reg, asset_types)
    scorer.refresh()
    eng = WindowEngine(spec, asset_tags)
    out: list[Scores] = []
    for i, f in enumerate(frames, 1):
        eng.add(f.asset, f.tags, f.ts, f.values, f.quality)
        if i % batch_frames == 0:
            out += scorer.process(eng.close_ready())
    out += scorer.process(eng.close_ready(flush=True))
    return out
