"""A simulated stand-in for the anomaly models, so the fusion can be built and tested before
the real Isolation Forest and LSTM-AE scores exist on this branch.

SIMULATED, and simple on purpose (it is a harness, not a model): per asset and 1 s tick
(event time), each tag's window mean and window standard deviation are compared with their
distribution on normal simulated data (fitted once, from a seed the evaluations never use):

* ``iforest`` score  = the largest |z| over tags and both features (an outlier detector's view);
* ``lstm_ae`` score  = the mean of z_mean^2 + z_std^2 over tags (a reconstruction error), and
  each tag's share of that sum is its ``contribution`` (shares sum to 1);
* thresholds are the 99.9th percentile of each score on the normal data, so ratio > 1 means
  anomalous, as in the real ``tocsin.scores/1`` contract.

It reads only the simulated readings, never the ground-truth labels.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from tocsin.contracts.scores import ModelScore, Scores

TICK_NS = 1_000_000_000
VERSION = "simulated-zscore-1"


def tick_windows(samples: Iterable[tuple[int, dict[str, float]]],
                 tick_ns: int = TICK_NS) -> Iterator[tuple[int, int, dict[str, np.ndarray]]]:
    """Group (ts, {tag: value}) samples of one asset into event-time windows
    [k*tick, (k+1)*tick); yield (window end, newest source ts, {tag: values}) as each closes."""
    cur, buf, newest = None, {}, 0
    for ts, values in samples:
        k = ts // tick_ns
        if cur is not None and k != cur:
            yield (cur + 1) * tick_ns, newest, {t: np.asarray(v) for t, v in buf.items()}
            buf = {}
        cur, newest = k, ts
        for tag, v in values.items():
            buf.setdefault(tag, []).append(v)
    if buf:
        yield (cur + 1) * tick_ns, newest, {t: np.asarray(v) for t, v in buf.items()}


def _features(window: dict[str, np.ndarray], tags: list[str]) -> np.ndarray:
    return np.array([[window[t].mean(), window[t].std()] for t in tags])


@dataclass
class SimulatedScorer:
    asset: str
    asset_type: str
    tags: list[str]
    mu: np.ndarray  # (tags, 2)
    sd: np.ndarray  # (tags, 2)
    thr_iforest: float
    thr_ae: float

    @classmethod
    def fit(cls, asset: str, asset_type: str,
            windows: list[dict[str, np.ndarray]]) -> "SimulatedScorer":
        tags = sorted(windows[0])
        f = np.stack([_features(w, tags) for w in windows])
        mu, sd = f.mean(0), f.std(0) + 1e-9
        z = (f - mu) / sd
        return cls(asset, asset_type, tags, mu, sd,
                   float(np.quantile(np.abs(z).max(axis=(1, 2)), 0.999)),
                   float(np.quantile((z ** 2).sum(2).mean(1), 0.999)))

    def score(self, ts: int, source_ts: int, window: dict[str, np.ndarray]) -> Scores:
        z = (_features(window, self.tags) - self.mu) / self.sd
        per_tag = (z ** 2).sum(1)
        total = float(per_tag.sum()) or 1.0
        contrib = {t: round(float(c) / total, 4) for t, c in zip(self.tags, per_tag)}
        return Scores(self.asset, self.asset_type, ts, {
            "iforest": ModelScore(float(np.abs(z).max()), self.thr_iforest),
            "lstm_ae": ModelScore(float(per_tag.mean()), self.thr_ae, contrib)},
            model_version=VERSION, feature_hash="simulated", source_ts=source_ts)
