"""What the boosted trees read: the 38 tabular features plus a summary of the card's sequence.

Why: the stream already hands every model the card's last 16 transactions (the tokens of
:mod:`tocsin.detectors.fraud_features`: log amount, gap, hour, entry mode, new terminal), and
the fraud scenarios live in that sequence -- a run of small e-commerce payments minutes apart
(card testing), several new e-commerce terminals at night within days (account takeover) --
while the tabular features describe only the current transaction and window totals. A tree
cannot read a sequence, so this module summarises it (counts over the last 3, 5 and 15
transactions, the time they span, their amounts) into fixed columns appended to the tabular
ones. The summary is model input, not a stream feature: it is computed from ``seq``/``pad``
by the same function in training, in ``tocsin eval fraud`` and in the worker
(:meth:`tocsin.models.fraud_serving.FraudModel.score`), so all three see the same numbers.

Pure numpy, float64 inside, float32 out (the trees' input type), row by row independent of
the batch it comes in.
"""

from __future__ import annotations

import numpy as np

VERSION = "seqsum/1"
WINDOWS = (3, 5, 15)
_PER_WINDOW = ("remote", "new_terminal", "small", "mean_log_amount", "max_log_amount",
               "night", "log_span_s")
NAMES = tuple(["seq_prev_count"] + [f"seq{k}_{n}" for k in WINDOWS for n in _PER_WINDOW]
              + ["seq_log_amount_over_max"])
_SMALL = float(np.log1p(10.0))  # below 10 (currency units): the card-testing amounts
_MAX_LOG_DT = 30.0


def summary(seq: np.ndarray, pad: np.ndarray) -> np.ndarray:
    """``seq`` [n, L, 8], ``pad`` [n, L] (1 = no transaction; the last slot is the current
    one) -> [n, len(NAMES)] float32."""
    seq = np.asarray(seq, np.float64)
    valid = 1.0 - np.asarray(pad, np.float64)[:, :-1]
    prev, cur = seq[:, :-1, :], seq[:, -1, :]
    la = prev[..., 0] * 5.0  # tokens hold log1p(amount) / 5 and log1p(gap s) / 10
    gap = np.expm1(np.clip(prev[..., 1] * 10.0, 0.0, _MAX_LOG_DT)) * valid
    cur_gap = np.expm1(np.clip(cur[:, 1] * 10.0, 0.0, _MAX_LOG_DT))
    la_or_low = np.where(valid > 0, la, -1.0)
    cols = [valid.sum(1)]
    for k in WINDOWS:
        v = valid[:, -k:]
        n = np.maximum(v.sum(1), 1.0)
        cols += [(prev[:, -k:, 6] * v).sum(1),  # remote / manual entry
                 (prev[:, -k:, 7] * v).sum(1),  # at a terminal new for the card
                 ((la[:, -k:] < _SMALL) * v).sum(1),
                 (la[:, -k:] * v).sum(1) / n,
                 la_or_low[:, -k:].max(1),
                 ((prev[:, -k:, 3] > 0.7) * v).sum(1),  # cos(hour) > 0.7: about 21:00-03:00
                 np.log1p(cur_gap + gap[:, -(k - 1):].sum(1))]  # time the last k span
    cols.append(cur[:, 0] * 5.0 - la_or_low.max(1))
    return np.stack(cols, 1).astype(np.float32)


def model_input(tab: np.ndarray, seq: np.ndarray | None, pad: np.ndarray | None,
                inputs: list[str]) -> np.ndarray:
    """The matrix an artifact's trees take, by its ``meta["inputs"]``."""
    if VERSION not in inputs:
        return tab
    if seq is None or pad is None:
        from tocsin.errors import ModelError

        raise ModelError("this fraud model reads the card's sequence; give seq and pad")
    return np.hstack([np.asarray(tab, np.float32), summary(seq, pad)])
