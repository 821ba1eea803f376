"""Training: readings frames -> feature windows -> tick vectors -> Isolation Forest and LSTM-AE
and PCA T²/Q -> thresholds on held-back normal data -> a versioned artifact folder.

The frames go through the stream's own :class:`WindowEngine` and :class:`TickAssembler`, so
a model sees in training exactly what the worker will feed it. Each run of an asset's ticks
(several runs: :func:`collect_run_ticks`, e.g. the simulator's runs at spread clock phases) is
split in time: the first part trains, the last ``calib_fraction`` (never seen in training)
sets the thresholds: a peaks-over-threshold tail fit of its scores (:func:`fit_tail`), cut where a
normal tick is that extreme once in ``10 ** threshold_surprise`` ticks (a quantile of a few
hundred held-back ticks is close to their maximum, and new normal data crosses it: the
demo's false alerts). ``quantile`` set instead keeps the old empirical quantile. The
LSTM-AE's training curve goes into the manifest and ``lstm_ae_curve.json``. The PCA T²/Q
model is fitted on all normal ticks and calibrated on its out-of-fold scores
(:class:`~tocsin.detectors.calibrated.PCAMonitor`): its score is a surprise on a fixed scale
and its threshold ``pca_surprise`` the same number for every asset type. No fault label is
used anywhere.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
from pydantic import BaseModel, Field

from tocsin.contracts.readings import ReadingsFrame
from tocsin.detectors.calibrated import PCAMonitor
from tocsin.detectors.calibration import fit_tail
from tocsin.detectors.model_input import (
    TickAssembler,
    sequences,
    step_names,
    vector_names,
)
from tocsin.detectors.windows import FeatureSpec, WindowEngine
from tocsin.errors import ModelError
from tocsin.models import artifacts, iforest, lstm_ae
from tocsin.models.backends import open_session

Progress = Callable[[str], None]


class TrainConfig(BaseModel):
    seq_len: int = Field(20, ge=2, description="ticks in the LSTM-AE's sliding window (a "
                         "fault has left it seq_len ticks after it ends)")
    score_steps: int = Field(5, ge=1, description="last ticks of the window that are scored")
    hidden: int = Field(32, ge=2)
    arch: str = Field("step", pattern="^(step|sequence)$", description="LSTM-AE shape: "
                      "per-step bottleneck (step) or one code per window (sequence, old)")
    code_variance: float = Field(0.9, gt=0.0, le=1.0, description="the bottleneck keeps "
                                 "the components that carry this share of the variance")
    epochs: int = Field(200, ge=1, description="most LSTM-AE epochs (early stopping)")
    patience: int = Field(12, ge=1, description="epochs without held-out gain before stop")
    lr: float = Field(3e-3, gt=0.0, lt=1.0)
    seq_stride: int = Field(2, ge=1, description="stride between training sequences")
    max_sequences: int = Field(3000, ge=16)
    n_estimators: int = Field(200, ge=10)
    threshold_surprise: float = Field(4.0, gt=0.0, le=12.0, description="Isolation Forest "
                                      "and LSTM-AE thresholds: -log10 of the normal tail "
                                      "probability, from a tail fit on held-back ticks")
    quantile: float | None = Field(None, gt=0.5, lt=1.0, description="instead: an empirical "
                                   "quantile of the held-back scores (the old rule)")
    calib_fraction: float = Field(0.3, gt=0.0, lt=0.9)
    pca_variance: float = Field(0.9, gt=0.0, le=1.0, description="variance the PCA T²/Q "
                                "model keeps")
    pca_surprise: float = Field(3.0, gt=0.0, le=12.0, description="PCA alarm threshold on the "
                                "calibrated scale: -log10 of the normal tail probability")
    seed: int = 0
    threads: int = Field(2, ge=1)


@dataclass
class AssetTicks:
    ends: np.ndarray  # ns
    vectors: np.ndarray  # n x D
    steps: np.ndarray  # n x d


def collect_ticks(frames: Iterable[ReadingsFrame], spec: FeatureSpec,
                  asset_tags: dict[str, list[str]], progress: Progress | None = None,
                  ) -> dict[str, AssetTicks]:
    """Run frames through the window engine; -> the ticks of each asset, in time order."""
    eng = WindowEngine(spec, asset_tags)
    asm = TickAssembler(spec)
    acc: dict[str, list] = {}
    n_frames, t0 = 0, time.perf_counter()

    def take(rows):
        for row in rows:
            tick = asm.push(row)
            if tick is not None:
                acc.setdefault(row.asset, []).append(tick)

    for f in frames:
        if f.asset not in asset_tags:
            continue
        eng.add(f.asset, f.tags, f.ts, f.values, f.quality)
        n_frames += 1
        if n_frames % 64 == 0:
            take(eng.close_ready())
        if progress and n_frames % 5000 == 0:
            progress(f"features: {n_frames:,} frames, {time.perf_counter() - t0:.1f}s")
    # no flush: forcing the last windows closed gives partial windows (one sample in the
    # last 1 s window), an outlier a model never sees in the stream; as the last held-back
    # tick it set the press's LSTM-AE threshold at 16x the normal median (#21)
    take(eng.close_ready())
    return {a: AssetTicks(np.array([t.end for t in ts], dtype=np.int64),
                          np.stack([t.vector for t in ts]), np.stack([t.step for t in ts]))
            for a, ts in acc.items() if ts}


def collect_run_ticks(runs: Iterable[Iterable[ReadingsFrame]], spec: FeatureSpec,
                      asset_tags: dict[str, list[str]], progress: Progress | None = None,
                      ) -> dict[str, AssetTicks]:
    """:func:`collect_ticks` of each run with a window engine of its own (a fresh start, no
    windows forced closed at a run's end), joined per asset in time order; training keeps
    the runs apart (:func:`_runs`)."""
    per: dict[str, list[AssetTicks]] = {}
    for frames in runs:
        for a, tk in collect_ticks(frames, spec, asset_tags, progress).items():
            per.setdefault(a, []).append(tk)
    return {a: AssetTicks(np.concatenate([t.ends for t in ts]),
                          np.concatenate([t.vectors for t in ts]),
                          np.concatenate([t.steps for t in ts])) for a, ts in per.items()}


def _scaler(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with np.errstate(all="ignore"):
        mean = np.nanmean(x, axis=0)
        std = np.nanstd(x, axis=0)
    mean = np.where(np.isfinite(mean), mean, 0.0)
    std = np.where(np.isfinite(std) & (std > 1e-9), std, 1.0)
    return mean, std


def _z(x, mean, std):
    z = (x - mean) / std
    return np.clip(np.where(np.isfinite(z), z, 0.0), -20.0, 20.0).astype(np.float32)


def train_asset_type(asset_type: str, ticks: dict[str, AssetTicks], spec: FeatureSpec,
                     tags: list[str], cfg: TrainConfig, root: Path, source: str,
                     progress: Progress | None = None) -> artifacts.Artifact:
    say = progress or (lambda _m: None)
    if not ticks:
        raise ModelError(f"{asset_type}: no feature ticks to train on (no data for its assets?)")
    d_step = len(tags) * len(spec.names)
    gap_ns = max(sc.size_ns for sc in spec.scales)
    parts = {a: _split(a, tk, cfg, gap_ns, asset_type) for a, tk in sorted(ticks.items())}
    tr_vec = [tk.vectors[a:c] for asset, tk in sorted(ticks.items()) for a, c, _ in parts[asset]]
    ca_vec = [tk.vectors[c:b] for asset, tk in sorted(ticks.items()) for _, c, b in parts[asset]]
    mean, std = _scaler(np.concatenate(tr_vec))
    tr_seq, ca_seq = [], []
    for asset, tk in sorted(ticks.items()):
        zs = _z(tk.steps, mean[:d_step], std[:d_step])
        for a, c, b in parts[asset]:  # never a sequence across two runs
            tr_seq.append(sequences(zs[a:c], cfg.seq_len)[::cfg.seq_stride])
            # calibration windows end in the held-back part (their context may reach back)
            ca_seq.append(sequences(zs[a:b], cfg.seq_len)[max(0, c - a - cfg.seq_len + 1):])
    x_tr = _z(np.concatenate(tr_vec), mean, std)
    x_ca = _z(np.concatenate(ca_vec), mean, std)
    s_tr = np.concatenate(tr_seq)
    s_ca = np.concatenate(ca_seq)
    rng = np.random.default_rng(cfg.seed)
    if len(s_tr) > cfg.max_sequences:
        s_tr = s_tr[np.sort(rng.choice(len(s_tr), cfg.max_sequences, replace=False))]
    fp = artifacts.fingerprint(np.concatenate(tr_vec), np.concatenate(ca_vec),
                               extra=f"{asset_type}|{source}")
    say(f"{asset_type}: {len(x_tr):,} training ticks, {len(x_ca):,} held-back ticks, "
        f"{x_tr.shape[1]} inputs; {len(s_tr):,} sequences of {cfg.seq_len}x{d_step}")

    t0 = time.perf_counter()
    forest = iforest.fit(x_tr, n_estimators=cfg.n_estimators, seed=cfg.seed)
    if_secs = time.perf_counter() - t0
    say(f"{asset_type}: isolation forest fitted in {if_secs:.1f}s")

    t0 = time.perf_counter()
    # every normal tick (training and held-back): the calibration is out-of-fold anyway
    pca = PCAMonitor(cfg.pca_variance).fit(np.concatenate([x_tr, x_ca]).astype(np.float64))
    pca_secs = time.perf_counter() - t0
    say(f"{asset_type}: PCA T²/Q ({pca.pca.k} of {x_tr.shape[1]} components) fitted and "
        f"calibrated out-of-fold in {pca_secs:.1f}s")

    res = fit_ae(asset_type, s_tr, cfg, say)

    with tempfile.TemporaryDirectory(prefix="tocsin-train-") as tmpd:
        tmp = Path(tmpd)
        iforest.export_onnx(forest, x_tr.shape[1], tmp / "iforest.onnx")
        lstm_ae.export_onnx(res.model, cfg.seq_len, d_step, tmp / "lstm_ae.onnx")
        import torch

        torch.save(res.model.state_dict(), tmp / "lstm_ae.pt")
        # thresholds and checks through the serving path (ONNX Runtime), not torch/sklearn
        if_sess = open_session(tmp / "iforest.onnx")
        ae_sess = open_session(tmp / "lstm_ae.onnx")
        if_ca = if_sess.run(x_ca)["score"].ravel().astype(np.float64)
        if_gap = float(np.abs(if_ca[:64] - iforest.score(forest, x_ca[:64])).max())
        ae_ca = _ae_scores(ae_sess, s_ca, cfg.score_steps)
        ae_ref = lstm_ae.errors(res.model, s_ca[:16])[:, -cfg.score_steps:, :].mean(axis=(1, 2))
        ae_gap = float(np.abs(ae_ca[:16] - ae_ref).max())
        if if_gap > 1e-4 or ae_gap > 1e-3 * max(1.0, float(ae_ref.max())):
            raise ModelError(f"{asset_type}: ONNX export disagrees with the trained model "
                             f"(iforest {if_gap:.2e}, lstm_ae {ae_gap:.2e})")
        cal = {"iforest": fit_tail(if_ca), "lstm_ae": fit_tail(ae_ca)}
        thr = {"iforest": threshold(if_ca, cal["iforest"], cfg),
               "lstm_ae": threshold(ae_ca, cal["lstm_ae"], cfg), "pca": cfg.pca_surprise}
        curve = res.curve.to_dict()
        (tmp / "lstm_ae_curve.json").write_text(json.dumps(curve, indent=1))
        ae_tr = _ae_scores(ae_sess, s_tr[:500], cfg.score_steps)
        manifest = {
            "version": artifacts.new_version(fp),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "feature_spec": spec.model_dump(mode="json"),
            "feature_hash": spec.hash(tags),
            "tags": tags,
            "vector_names": vector_names(spec, tags),
            "step_names": step_names(spec, tags),
            "scaler": {"mean": mean.tolist(), "std": std.tolist()},
            "thresholds": thr,
            "quantile": cfg.quantile,
            "threshold_rule": (f"quantile {cfg.quantile}" if cfg.quantile else
                               f"tail fit, surprise {cfg.threshold_surprise}"),
            "calibration": {k: c.to_dict() for k, c in cal.items()},
            "iforest": {"file": "iforest.onnx", "n_estimators": cfg.n_estimators,
                        "max_samples": int(forest.max_samples_)},
            "lstm_ae": {"file": "lstm_ae.onnx", "torch_state": "lstm_ae.pt",
                        "hidden": cfg.hidden, "seq_len": cfg.seq_len, "arch": cfg.arch,
                        "code": res.code, "curve": "lstm_ae_curve.json",
                        "score_steps": cfg.score_steps, "d": d_step},
            "pca": dict(pca.to_dict(), threshold=cfg.pca_surprise,
                        scale="surprise = -log10 P(normal tick scores at least this)"),
            "train_config": cfg.model_dump(),
            "training": {
                "source": source, "assets": sorted(ticks), "ticks_train": len(x_tr),
                "ticks_calibration": len(x_ca), "sequences_train": len(s_tr),
                "sequences_calibration": len(s_ca), "iforest_seconds": round(if_secs, 2),
                "pca_seconds": round(pca_secs, 2), "pca_components": pca.pca.k,
                "lstm_ae_seconds": round(res.seconds, 2),
                "lstm_ae_loss": [round(v, 5) for v in res.losses],
                "lstm_ae_curve": curve,
                "lstm_ae_train_score_median": float(np.median(ae_tr)),
                "lstm_ae_calibration_score_median": float(np.median(ae_ca)),
                "onnx_max_abs_diff": {"iforest": if_gap, "lstm_ae": ae_gap},
            },
            "data_fingerprint": fp,
        }
        art = artifacts.write(root, asset_type, manifest, {
            "iforest.onnx": tmp / "iforest.onnx", "lstm_ae.onnx": tmp / "lstm_ae.onnx",
            "lstm_ae.pt": tmp / "lstm_ae.pt", "lstm_ae_curve.json": tmp / "lstm_ae_curve.json"})
    rule = f"q={cfg.quantile}" if cfg.quantile else f"surprise {cfg.threshold_surprise}"
    say(f"{asset_type}: thresholds iforest {thr['iforest']:.4f}, lstm_ae {thr['lstm_ae']:.4f} "
        f"({rule} of {len(x_ca):,} held-back ticks) -> {art.path}")
    return art


def _runs(ends: np.ndarray, gap_ns: int) -> list[tuple[int, int]]:
    """[start, stop) of each run of ticks: a silence longer than the longest window starts a
    new stream in the window engine (several recordings, or :func:`simulated_runs`)."""
    cuts = np.flatnonzero(np.diff(ends) > gap_ns) + 1
    edges = [0, *cuts.tolist(), len(ends)]
    return list(zip(edges[:-1], edges[1:]))


def _split(asset: str, tk: AssetTicks, cfg: TrainConfig, gap_ns: int, asset_type: str
           ) -> list[tuple[int, int, int]]:
    """(start, cut, stop) per run: each run's first part trains, its last ``calib_fraction``
    is held back, so training and thresholds both see every run (every clock phase of
    :func:`~tocsin.connectors.model_sources.simulated_runs`). Runs too short for one
    sequence are left out; an asset with no run long enough is an error."""
    need = int((cfg.seq_len + 1) / (1 - cfg.calib_fraction)) + 1
    out = []
    for a, b in _runs(tk.ends, gap_ns):
        cut = a + int(round((b - a) * (1 - cfg.calib_fraction)))
        if cut - a >= cfg.seq_len + 1 and b - cut >= 1:
            out.append((a, cut, b))
    if not out:
        raise ModelError(f"{asset_type}: asset {asset} has {len(tk.ends)} ticks; need a run "
                         f"of more than {need} (seq_len {cfg.seq_len}, calib_fraction "
                         f"{cfg.calib_fraction})")
    return out


def fit_ae(asset_type: str, s_tr: np.ndarray, cfg: TrainConfig, say: Progress
           ) -> lstm_ae.TrainResult:
    """The LSTM-AE with early stopping; its curve is said every 10 epochs and at the end."""
    code = lstm_ae.code_size(s_tr[:, -1, :], cfg.code_variance, cfg.hidden) \
        if cfg.arch == "step" else None

    def ep(i, loss, val, lr):
        if i == 1 or i % 10 == 0:
            say(f"{asset_type}: LSTM-AE epoch {i} train {loss:.4f} held-out {val:.4f} "
                f"lr {lr:.2g}")

    res = lstm_ae.train(s_tr, hidden=cfg.hidden, arch=cfg.arch, code=code,
                        max_epochs=cfg.epochs, patience=cfg.patience, lr=cfg.lr,
                        seed=cfg.seed, threads=cfg.threads, progress=ep)
    say(f"{asset_type}: LSTM-AE ({cfg.arch}, code {code}) in {res.seconds:.1f}s: "
        f"{res.curve.summary()}")
    return res


def threshold(scores: np.ndarray, cal, cfg: TrainConfig) -> float:
    """The raw-score threshold: the tail fit's, and never below the largest held-back score
    (a normal tick the model already produced is no alarm)."""
    if cfg.quantile:
        return float(np.quantile(scores, cfg.quantile))
    return max(cal.threshold(cfg.threshold_surprise), float(np.max(scores)))


def _ae_scores(sess, seqs: np.ndarray, score_steps: int, batch: int = 512) -> np.ndarray:
    out = []
    for i in range(0, len(seqs), batch):
        sq = sess.run(seqs[i:i + batch])["sqerr"][:, -score_steps:, :]
        out.append(sq.astype(np.float64).mean(axis=(1, 2)))
    return np.concatenate(out) if out else np.zeros(0)
