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


# ------------------------------------------------------------------ pure detectors (suite)
def short_spec(period_s: float) -> FeatureSpec:
    """Features for short training: each row itself and the mean and sd of the last 10 rows
    (4 inputs per sensor; the stream's default is 39 per sensor, more than a few hundred
    training rows can pin down)."""
    from tocsin.detectors.windows import ScaleSpec

    return FeatureSpec(scales=[ScaleSpec(name="1row", size_s=period_s),
                               ScaleSpec(name="10rows", size_s=10 * period_s,
                                         hop_s=period_s)],
                       features=["mean", "std"], acf_lags=[], allowed_lateness_s=0)


def row_ticks(table: Table, spec: FeatureSpec) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the stream window engine's tick vector whose base window holds it (NaN
    where no tick covers it), and a 0/1 "has a tick" mask."""
    from tocsin.models.training import collect_ticks

    ticks = collect_ticks(table.frames("csv"), spec, {"csv": table.columns}).get("csv")
    n = table.ts.size
    if ticks is None:
        return np.full((n, 1), np.nan), np.zeros(n, dtype=bool)
    idx = np.searchsorted(ticks.ends, table.ts, side="right")
    ok = idx < ticks.ends.size
    ok[ok] &= ticks.ends[idx[ok]] - spec.scales[0].size_ns <= table.ts[ok]
    out = np.full((n, ticks.vectors.shape[1]), np.nan)
    out[ok] = ticks.vectors[idx[ok]]
    return out, ok


def lagged(x: np.ndarray, lags: int) -> np.ndarray:
    """Each row beside the ``lags`` rows before it (dynamic PCA, Ku et al. 1995: first-order
    lags between sensors become linear relations the model can learn, so a load change's
    transient is not a broken correlation); the first rows get NaN for the missing past."""
    if lags <= 0:
        return x
    parts = [x]
    for k in range(1, lags + 1):
        sh = np.full_like(x, np.nan)
        sh[k:] = x[:-k]
        parts.append(sh)
    return np.hstack(parts)


def training_rows(x: np.ndarray) -> np.ndarray:
    """Training rows without the warm-up: the rows whose every input is present, when most
    rows are (the first rows of a file have no full long window yet; learning the "missing"
    member's limit from them would hide a sensor that stops reporting)."""
    full = ~np.isnan(x).any(axis=1)
    return x[full] if full.mean() >= 0.5 else x


def eval_table_suite(test: Table, name: str, spec: FeatureSpec, names: list[str], rules: dict,
                     skip_rows: int = 0, train: Table | None = None, lags: int = 0,
                     cache: dict | None = None) -> dict[tuple[str, str], EvalResult]:
    """Every detector/ensemble in ``names`` under every decision rule, fitted on the first
    ``skip_rows`` rows (or on the ``train`` table) and evaluated on the rows after them.
    ``cache``: with a shared ``train`` table, pass one dict to every call and the detectors
    are fitted once."""
    from tocsin.detectors import suite

    no_features = all(m in suite.RAW_ROW for m in suite.needed(names))

    def features(t: Table) -> tuple[np.ndarray, np.ndarray]:
        if no_features:  # raw-row members only: skip the window engine
            return np.zeros((t.ts.size, 1)), np.ones(t.ts.size, dtype=bool)
        f, h = row_ticks(t, spec)
        return lagged(f, lags), h

    x, has = features(test)
    if cache and train is not None:
        keep, fitted = cache["keep"], cache["fitted"]
    else:
        if train is None:
            train_x, train_raw = x[:skip_rows][has[:skip_rows]], test.values[:skip_rows]
        else:
            tx, th = features(train)
            train_x, train_raw = tx[th], train.values
        keep = ~np.all(np.isnan(train_x), axis=0)  # columns never seen in training
        fitted = suite.fit_suite(training_rows(train_x[:, keep]), names, train_raw)
        if cache is not None and train is not None:
            cache.update(keep=keep, fitted=fitted)
    xs = np.where(has[:, None], x, 0.0)[:, keep]
    skip = skip_rows if train is None else 0  # online members: rows before this are training
    each: dict = {}
    sur = suite.surprises(fitted, xs, names, test.values, skip=skip, each=each)
    unc = suite.surprises(fitted, xs, names, test.values, skip=skip, uncapped=True, each=each)
    ev = slice(skip_rows, None)
    out = {}
    for det, s in sur.items():
        # members on window features have no score where no window covers the row; the
        # raw-row members (online, quality checks) score every row
        raw_only = all(m in suite.RAW_ROW for m in suite.needed([det]))
        s = s if raw_only else np.where(has, s, np.nan)
        u = unc[det] if raw_only else np.where(has, unc[det], np.nan)
        for rname, rule in rules.items():
            pred = rule.apply(s)
            if test.labels is None:
                m = {"rows": int(test.ts.size - skip_rows), "labelled": False,
                     "alarm_rate": float(pred[ev].mean()) if pred[ev].size else 0.0}
            else:
                m = full_metrics(test.labels[ev], pred[ev], u[ev], test.ts[ev] / NS)
                m["labelled"] = True
            m["training_rows"] = skip_rows
            out[(det, rname)] = EvalResult(name, m, {"ts": test.ts, "score": s,
                                                     "uncapped": u, "pred": pred.astype(int)})
    return out


def write_suite_rows(path: Path, res: EvalResult, skip_rows: int, labels) -> None:
    """Per row: time, evaluated (0 = training part), label, surprise (capped at 12: the
    decision's scale), alarm, and ``score``: the same surprise without the cap, a continuous
    score whose order is kept beyond 12 (for a scorer that picks its own threshold)."""
    n = len(res.rows["ts"])
    unc = res.rows.get("uncapped", res.rows["score"])
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["row", "ts", "evaluated", "label", "surprise", "pred", "score"])
        for i in range(n):
            w.writerow([i + 1, res.rows["ts"][i], int(i >= skip_rows),
                        "" if labels is None else labels[i], _fmt(res.rows["score"][i]),
                        res.rows["pred"][i], _fmt(unc[i])])
