"""The trained models behind the detector protocol (:mod:`tocsin.detectors.protocol`).

:class:`IsolationForestDetector` and :class:`LSTMAEDetector` wrap :mod:`tocsin.models.iforest`
and :mod:`tocsin.models.lstm_ae` with ``fit(x)`` / ``score(x)`` on plain rows, so offline
evaluation, calibration and the contract test treat them like the pure numpy detectors.
The LSTM-AE scores the window of the last ``seq_len`` rows ending at each row (the first
rows are padded with copies of the first row, so every row gets a score); its score is the
mean squared reconstruction error of the last ``score_steps`` steps, as in serving.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from tocsin.detectors.model_input import sequences
from tocsin.detectors.protocol import Detector, ModelError, as_rows, standardizer, zscore
from tocsin.models import iforest, lstm_ae


class IsolationForestDetector:
    def __init__(self, n_estimators: int = 200, seed: int = 0):
        self.n_estimators, self.seed = n_estimators, seed
        self.name = "iforest"
        self.d: int | None = None

    def fit(self, x: np.ndarray) -> "IsolationForestDetector":
        x = as_rows(x, who=self.name)
        self.mean, self.std = standardizer(x)
        self.model = iforest.fit(zscore(x, self.mean, self.std, 20.0).astype(np.float32),
                                 n_estimators=self.n_estimators, seed=self.seed)
        self.d = x.shape[1]
        return self

    def score(self, x: np.ndarray) -> np.ndarray:
        if self.d is None:
            raise ModelError(f"{self.name}: score before fit")
        z = zscore(as_rows(x, self.d, self.name), self.mean, self.std, 20.0)
        return iforest.score(self.model, z.astype(np.float32))


class LSTMAEDetector:
    """Raw-row windows: each step is one row of the input (a raw sample), not features."""

    def __init__(self, seq_len: int = 10, score_steps: int = 1, hidden: int = 32,
                 epochs: int = 200, patience: int = 12, seed: int = 0, threads: int = 1,
                 arch: str = "step", code_variance: float = 0.9, min_steps: int = 500,
                 batch: int = 32):
        self.seq_len, self.score_steps = seq_len, score_steps
        self.hidden, self.epochs, self.patience = hidden, epochs, patience
        self.seed, self.threads = seed, threads
        self.arch, self.code_variance, self.min_steps = arch, code_variance, min_steps
        self.batch = batch
        self.name = "lstm_ae"
        self.d: int | None = None
        self.model = None

    def _seqs(self, z: np.ndarray) -> np.ndarray:
        pad = np.repeat(z[:1], self.seq_len - 1, axis=0)
        return sequences(np.concatenate([pad, z]).astype(np.float32), self.seq_len)

    def fit(self, x: np.ndarray) -> "LSTMAEDetector":
        x = as_rows(x, who=self.name)
        if len(x) < self.seq_len + 2:
            raise ModelError(f"{self.name}: need more than {self.seq_len + 1} rows, "
                             f"got {len(x)}")
        self.mean, self.std = standardizer(x)
        z = zscore(x, self.mean, self.std, 20.0)
        seqs = sequences(z.astype(np.float32), self.seq_len)
        self.code = lstm_ae.code_size(z, self.code_variance, self.hidden)
        res = lstm_ae.train(seqs, hidden=self.hidden, arch=self.arch, code=self.code,
                            max_epochs=self.epochs, patience=self.patience,
                            batch=self.batch,
                            min_steps=self.min_steps, seed=self.seed, threads=self.threads)
        self.model, self.curve, self.seconds = res.model, res.curve, res.seconds
        self.d = x.shape[1]
        return self

    def score(self, x: np.ndarray) -> np.ndarray:
        if self.d is None or self.model is None:
            raise ModelError(f"{self.name}: score before fit")
        z = zscore(as_rows(x, self.d, self.name), self.mean, self.std, 20.0)
        err = lstm_ae.errors(self.model, self._seqs(z))
        return err[:, -self.score_steps:, :].astype(np.float64).mean(axis=(1, 2))


REGISTRY: dict[str, Callable[[], Detector]] = {
    "iforest": lambda: IsolationForestDetector(n_estimators=50),
    "lstm_ae": lambda: LSTMAEDetector(seq_len=5, hidden=8, epochs=10, patience=3,
                                      min_steps=0),
}
