"""Window feature definitions, vectorised over many windows of equal length.

Every function takes ``x`` (rows x n values: one row per tag-window) and ``t`` (rows x n
seconds, the samples' source times) and returns one value per row. Definitions (n samples
x_1..x_n, mean m, central moments m_k = mean((x - m)^k)):

- ``mean``: m; ``std``: sqrt(m_2) (population); ``min``, ``max``; ``rms``: sqrt(mean(x^2));
  ``p2p``: max - min; ``crest``: max|x| / rms (0 when rms is 0)
- ``skew``: m_3 / m_2^1.5; ``kurt``: m_4 / m_2^2 - 3 (excess; both 0 for a constant window)
- ``slope``: least-squares slope of x against t, in units per second (0 if all t are equal)
- ``fft_mean``: mean single-sided amplitude 2|X_j|/n of the first k bins j = 1..k of the FFT
  of x - m (the DC bin is left out; k = min(fft_bins, n // 2)); a sine of amplitude A sitting
  on bin j contributes A to that bin
- ``dom_freq``: frequency (Hz) of the largest bin j >= 1, with the sample rate taken from the
  timestamps: fs = (n - 1) / (t_n - t_1)
- ``acf_L``: autocorrelation at lag L, sum_i (x_i - m)(x_{i+L} - m) / sum_i (x_i - m)^2
  (the biased estimator; 0 when n <= L or the window is constant)

Windows with fewer samples than a definition needs give 0, never NaN, so models see finite
input; a tag with no samples at all is NaN (the caller decides how to impute).
"""

from __future__ import annotations

import numpy as np

BASE_FEATURES = ("mean", "std", "min", "max", "rms", "p2p", "crest", "skew", "kurt", "slope",
                 "fft_mean", "dom_freq")


def feature_names(acf_lags: tuple[int, ...] | list[int]) -> tuple[str, ...]:
    return BASE_FEATURES + tuple(f"acf_{lag}" for lag in acf_lags)


def compute(x: np.ndarray, t: np.ndarray, names: tuple[str, ...], fft_bins: int = 4
            ) -> np.ndarray:
    """Features ``names`` of each row of ``x`` (rows x n) -> (rows x len(names))."""
    rows, n = x.shape
    out = np.zeros((rows, len(names)), dtype=np.float64)
    if rows == 0 or n == 0:
        out[:] = np.nan
        return out
    m = x.mean(axis=1)
    d = x - m[:, None]
    d2 = d * d
    m2 = d2.mean(axis=1)
    flat = m2 <= 1e-12 * np.maximum(1.0, m * m)  # constant within float noise
    safe_m2 = np.where(flat, 1.0, m2)
    need_fft = "fft_mean" in names or "dom_freq" in names
    spec = np.abs(np.fft.rfft(d, axis=1)) * (2.0 / n) if need_fft and n >= 2 else None
    cols: dict[str, np.ndarray] = {}

    def lo_hi() -> tuple[np.ndarray, np.ndarray]:  # min and max, once for all that use them
        if "lo" not in cols:
            cols["lo"], cols["hi"] = x.min(axis=1), x.max(axis=1)
        return cols["lo"], cols["hi"]

    for j, name in enumerate(names):
        if name == "mean":
            v = m
        elif name == "std":
            v = np.sqrt(m2)
        elif name == "min":
            v = lo_hi()[0]
        elif name == "max":
            v = lo_hi()[1]
        elif name in ("rms", "crest"):
            if "rms" not in cols:
                cols["rms"] = np.sqrt((x * x).mean(axis=1))
            v = cols["rms"]
            if name == "crest":
                r = v
                lo, hi = lo_hi()  # max |x| is |min| or |max|: exactly np.abs(x).max()
                v = np.where(r > 0, np.maximum(np.abs(lo), np.abs(hi)) / np.where(r > 0, r, 1.0),
                             0.0)
        elif name == "p2p":
            lo, hi = lo_hi()
            v = hi - lo
        elif name == "skew":
            v = np.where(flat, 0.0, (d2 * d).mean(axis=1) / safe_m2 ** 1.5)
        elif name == "kurt":
            v = np.where(flat, 0.0, (d2 * d2).mean(axis=1) / safe_m2 ** 2 - 3.0)
        elif name == "slope":
            tc = t - t.mean(axis=1)[:, None]
            var_t = (tc * tc).sum(axis=1)
            v = np.where(var_t > 0, (tc * d).sum(axis=1) / np.where(var_t > 0, var_t, 1.0), 0.0)
        elif name == "fft_mean":
            k = min(fft_bins, n // 2)
            v = spec[:, 1:k + 1].mean(axis=1) if spec is not None and k >= 1 else np.zeros(rows)
        elif name == "dom_freq":
            if spec is None or n < 3:
                v = np.zeros(rows)
            else:
                span = t[:, -1] - t[:, 0]
                fs = np.where(span > 0, (n - 1) / np.where(span > 0, span, 1.0), 0.0)
                jmax = spec[:, 1:].argmax(axis=1) + 1
                v = np.where(flat, 0.0, jmax * fs / n)
        elif name.startswith("acf_"):
            lag = int(name[4:])
            if lag >= n:
                v = np.zeros(rows)
            else:
                num = (d[:, :-lag] * d[:, lag:]).sum(axis=1) if lag > 0 else d2.sum(axis=1)
                v = np.where(flat, 0.0, num / (safe_m2 * n))
        else:
            raise ValueError(f"unknown feature {name!r}; known: {BASE_FEATURES} and acf_<lag>")
        out[:, j] = v
    return out
