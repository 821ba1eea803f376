"""`tocsin eval`: the stream's detector code on labelled data, offline, with metrics.

Tables (CSV, whitespace files such as Tennessee Eastman): train on a normal file or on the
first rows of each file, then run every test file through the window engine and the scorer
exactly as the worker would, map each tick's scores back to the rows it covers, and compare
alarms with the labels. Simulator scenarios: the trained plant models on fresh fault runs.
"""

from __future__ import annotations

import csv
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from tocsin.connectors.csv_import import CsvSpec
from tocsin.connectors.model_sources import NS, Table, load_table, simulated_frames
from tocsin.contracts.scores import Scores
from tocsin.detectors.evaluation import full_metrics, metrics, persist
from tocsin.detectors.windows import FeatureSpec
from tocsin.models.offline import score_frames
from tocsin.models.training import TrainConfig, collect_ticks, train_asset_type

MODELS = ("iforest", "lstm_ae", "pca")
DETECTORS = ("any",) + MODELS


@dataclass
class EvalResult:
    name: str
    metrics: dict
    rows: dict = field(default_factory=dict)  # column -> array (per-row output)


def _ratios(scores: list[Scores], model: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ends = np.array([s.ts for s in scores], dtype=np.int64)
    r = np.array([np.nan if s.models.get(model) is None else s.models[model].ratio
                  for s in scores])
    sc = np.array([np.nan if s.models.get(model) is None else s.models[model].score
                   for s in scores])
    return ends, r, sc


def decide(ratios: dict[str, np.ndarray], detector: str) -> np.ndarray:
    use = list(ratios) if detector == "any" else [detector]
    out = np.zeros(len(next(iter(ratios.values()))), dtype=bool)
    for m in use:
        out |= np.nan_to_num(ratios[m], nan=0.0) > 1.0
    return out


def rows_from_ticks(row_ts: np.ndarray, scores: list[Scores], base_size_ns: int) -> dict:
    """Per row, the scores of the tick whose base window holds it (NaN if none)."""
    out = {}
    if not scores:
        for m in MODELS:
            out[f"{m}_ratio"] = out[f"{m}_score"] = np.full(row_ts.size, np.nan)
        out["top_tag"] = [""] * row_ts.size
        return out
    ends = np.array([s.ts for s in scores], dtype=np.int64)
    idx = np.searchsorted(ends, row_ts, side="right")
    ok = (idx < ends.size)
    ok[ok] &= ends[idx[ok]] - base_size_ns <= row_ts[ok]
    safe = np.where(ok, idx, 0)
    for m in MODELS:
        _, r, sc = _ratios(scores, m)
        out[f"{m}_ratio"] = np.where(ok, r[safe], np.nan)
        out[f"{m}_score"] = np.where(ok, sc[safe], np.nan)
    tops = [s.top_tags(1) for s in scores]
    out["top_tag"] = [(tops[i][0] if ok[k] and tops[i] else "") for k, i in enumerate(safe)]
    return out


def train_table(train: Table, spec: FeatureSpec, cfg: TrainConfig, root: Path,
                source: str, say: Callable[[str], None]):
    ticks = collect_ticks(train.frames("csv"), spec, {"csv": train.columns}, say)
    return train_asset_type("csv", ticks, spec, train.columns, cfg, root, source, say)


def combined_ratio(per_row: dict, detector: str) -> np.ndarray:
    """The continuous score behind the decision (for AUC): the chosen model's ratio, or the
    largest ratio of any model."""
    use = MODELS if detector == "any" else (detector,)
    stack = np.vstack([per_row[f"{m}_ratio"] for m in use])
    with np.errstate(all="ignore"):
        out = np.nanmax(np.where(np.isnan(stack), -np.inf, stack), axis=0)
    return np.where(np.isneginf(out), np.nan, out)


def eval_table(test: Table, name: str, spec: FeatureSpec, root: Path, detector: str,
               persistence: int, skip_rows: int = 0) -> EvalResult:
    """Score every row with the stream's code; metrics on the rows after ``skip_rows`` (the
    training part) only. Without labels: scores and the alarm rate only."""
    scores = score_frames(test.frames("csv"), spec=spec, asset_tags={"csv": test.columns},
                          asset_types={"csv": "csv"}, model_root=root)
    per_row = rows_from_ticks(test.ts, scores, spec.scales[0].size_ns)
    pred = persist(decide({m: per_row[f"{m}_ratio"] for m in MODELS}, detector), persistence)
    ratio = combined_ratio(per_row, detector)
    ev = slice(skip_rows, None)
    if test.labels is None:
        m = {"rows": int(test.ts.size - skip_rows), "labelled": False,
             "alarm_rate": float(pred[ev].mean()) if pred[ev].size else 0.0}
    else:
        m = full_metrics(test.labels[ev], pred[ev], ratio[ev], test.ts[ev] / NS)
        m["labelled"] = True
    m["training_rows"] = skip_rows
    evaluated = np.zeros(test.ts.size, dtype=int)
    evaluated[ev] = 1
    per_row.update(ts=test.ts, pred=pred.astype(int), evaluated=evaluated,
                   label=(test.labels if test.labels is not None
                          else np.full(test.ts.size, "", dtype=object)))
    return EvalResult(name, m, per_row)


def write_rows(path: Path, res: EvalResult) -> None:
    cols = ["ts", "evaluated", "label", "pred"] + [f"{m}_{k}" for m in MODELS
                                                    for k in ("score", "ratio")]
    cols.append("top_tag")
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["row"] + cols)
        n = len(res.rows["ts"])
        for i in range(n):
            w.writerow([i + 1] + [_fmt(res.rows[c][i]) for c in cols])


def _fmt(v) -> str:
    if isinstance(v, (float, np.floating)):
        return "" if np.isnan(v) else f"{v:.6g}"
    return str(v)


# ------------------------------------------------------------------ Tennessee Eastman
TEP_PERIOD_S = 180.0
TEP_ONSET_ROW = 161


def tep_spec() -> FeatureSpec:
    """Windows in units of the TE sample period (3 min): the sample itself and the last 10."""
    from tocsin.detectors.windows import ScaleSpec

    return FeatureSpec(scales=[ScaleSpec(name="3m", size_s=TEP_PERIOD_S),
                               ScaleSpec(name="30m", size_s=10 * TEP_PERIOD_S,
                                         hop_s=TEP_PERIOD_S)],
                       features=["mean", "std", "slope"], acf_lags=[], allowed_lateness_s=0)


def tep_tables(data_dir: Path) -> tuple[Table, list[tuple[str, Table]]]:
    spec = CsvSpec(asset="csv", sep="whitespace", header=False, period=TEP_PERIOD_S)
    train = load_table(data_dir / "d00.dat", spec)
    tests = [(p.name, load_table(p, spec, onset_row=TEP_ONSET_ROW if p.name != "d00_te.dat"
                                 else 10**9))
             for p in sorted(data_dir.glob("d*_te.dat"))]
    return train, tests


# ------------------------------------------------------------------ simulator scenarios
def sim_cases(seconds: float, onset: float) -> list[tuple[str, str | None]]:
    from tocsin.connectors.simulator.plant import DEFAULT_ASSETS, FAULTS

    cases: list[tuple[str, str | None]] = [(a, None) for a in DEFAULT_ASSETS]
    for fault, by_kind in sorted(FAULTS.items()):
        for a, kind in DEFAULT_ASSETS.items():
            if kind in by_kind:
                cases.append((a, fault))
    return cases


def eval_sim_case(asset: str, fault: str | None, *, seconds: float, onset: float, seed: int,
                  plant, root: Path, detector: str, persistence: int,
                  backend: str = "onnxruntime") -> EvalResult:
    faults = [{"asset": asset, "fault": fault, "start": onset}] if fault else []
    frames = simulated_frames(seconds, seed=seed, assets=[asset], faults=faults)
    scores = score_frames(frames, spec=plant.features, asset_tags=plant.asset_tags(),
                          asset_types=plant.asset_types(), model_root=root, backend=backend)
    from tocsin.connectors.simulator.scenario import EPOCH_2026

    t0 = EPOCH_2026 * NS
    ends = np.array([s.ts for s in scores], dtype=np.int64)
    base = plant.features.scales[0].size_ns
    # a tick is a fault tick when its window holds samples taken after the fault started
    labels = (ends > t0 + int(onset * NS)) if fault else np.zeros(ends.size, dtype=bool)
    ratios = {m: _ratios(scores, m)[1] for m in MODELS}
    pred = persist(decide(ratios, detector), persistence)
    m = metrics(labels, pred, (ends - base) / NS)
    tops = [s.top_tags(1)[0] if s.top_tags(1) else "" for s in scores]
    post = [t for t, lab in zip(tops, labels) if lab and t]
    m["top_tag"] = max(set(post), key=post.count) if post else ""
    m["ticks"] = int(ends.size)
    return EvalResult(f"{asset}:{fault or 'normal'}", m)


def with_temp_root(model_dir: str | None):
    if model_dir:
        Path(model_dir).mkdir(parents=True, exist_ok=True)
        return _Keep(Path(model_dir))
    return tempfile.TemporaryDirectory(prefix="tocsin-eval-")


class _Keep:
    def __init__(self, p: Path):
        self.p = p

    def __enter__(self):
        return str(self.p)

    def __exit__(self, *exc):
        return False
