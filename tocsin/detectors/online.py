"""Online detectors for univariate and non-stationary streams: each row is judged against a
trailing window of the rows before it, so a level that persists becomes the new normal.

A model frozen on the first rows of a stream (PCA, Mahalanobis) drifts into permanent alarm
once the level moves, trends or the noise changes; a per-sensor PCA on [row, mean, sd] also
carries little. The classical alternative keeps the baseline moving: the windowed Gaussian /
moving z-score (the baseline of Lavin & Ahmad 2015, the Numenta Anomaly Benchmark paper), made
robust with the median and the MAD (Hampel 1974; Rousseeuw & Croux 1993), applied to the value
and to its first difference (a spike or a step is a large difference whatever the level and
the trend), and, when the training rows show a period, to the value minus a seasonal profile
(the seasonal-naive idea of Hyndman & Athanasopoulos, with a median over past cycles so one
bad day does not echo). Per row t and sensor, with W the trailing window (rows t-W .. t-1):

- ``z_val`` = (v_t - median_W v) / scale_W v, where v is the value, or, with a period P, the
  value minus the seasonal profile: the median over the last 3 cycles of (v - trailing level),
  the level being the median of the last P rows (so a level shift does not enter the profile);
- ``z_diff`` = the same robust z of v_t - v_{t-1};
- the scale is 1.4826 MAD (1.2533 x the mean absolute deviation where the MAD is 0: quantised
  sensors), floored by a small fraction of the training spread.

``online_z`` scores a row by the largest |z| over features and sensors. ``online_lik`` is
the "anomaly likelihood" of Ahmad et al. 2017 (Unsupervised real-time anomaly detection for
streaming data, Neurocomputing 262) on top of it: the mean raw score of the last ``short``
rows against the raw scores of the ``long`` rows before, in units of their spread (the Gaussian
tail probability they threshold is a monotone function of it; our calibration replaces it;
we take the median and MAD where they take the mean and sd, so a sustained fault does not
absorb itself within a few rows). It flags a stretch of moderately high scores (noise that grew, a changed
pattern) that no single row makes extreme.

Change tolerance: after a level shift the window median reaches the new level once half the
window holds it, so ``z_val`` falls back after about W/2 rows; ``z_diff`` fires only at the
step. The period is found on the training rows by autocorrelation (:func:`detect_period`).

State: the detector is stateful over consecutive rows (like :mod:`residual`). ``fit`` keeps the
last rows of training as history and :meth:`score` treats its rows as continuing them (warm
start), starting from the fitted state on every call, so scoring is deterministic. ``fit`` also
records the detector's own online scores over the training rows (``train_scores``, after a
burn-in): the calibration (:mod:`calibration`) is fitted on those, which are honest
one-step-ahead scores (each uses only earlier rows), so no out-of-fold refit is needed.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from tocsin.detectors.protocol import ModelError, as_rows, register

MAD_K = 1.4826  # MAD -> sd for Gaussian noise
MEAN_AD_K = 1.2533  # mean absolute deviation -> sd
MIN_PAST = 8  # rows of history before a row gets a score
CLIP = 1e6
LIK_CLIP = 20.0  # raw scores enter the likelihood clipped: one wild row must not blind it
SEASONS = 3  # past cycles in the seasonal profile's median


def detect_period(v: np.ndarray, min_lag: int = 6, min_acf: float = 0.3,
                  min_prominence: float = 0.3) -> int | None:
    """The dominant cycle of a training series in rows, by autocorrelation: the highest local
    maximum of the ACF (linear trend removed) at lags with two full cycles in the data, kept
    when it is at least ``min_acf`` and stands ``min_prominence`` above the ACF's minimum at
    shorter lags (a random walk's slowly decaying ACF has no such peak). None: no period."""
    v = np.asarray(v, dtype=np.float64)
    v = v[np.isfinite(v)]
    n = v.size
    if n < 4 * min_lag:
        return None
    t = np.arange(n)
    v = v - np.polyval(np.polyfit(t, v, 1), t)
    if float(np.std(v)) < 1e-12:
        return None
    f = np.fft.rfft(v - v.mean(), 2 * n)
    acf = np.fft.irfft(f * np.conj(f))[:n]
    acf = acf / acf[0] * n / (n - np.arange(n))  # unbiased: the 1/n estimator tilts
    # every peak towards shorter lags
    hi = n // 2
    if hi <= min_lag + 1:
        return None
    lags = np.arange(min_lag, hi)
    peak = (acf[lags] >= acf[lags - 1]) & (acf[lags] >= acf[lags + 1])
    ok = [int(lag) for lag in lags[peak]
          if acf[lag] >= min_acf and acf[lag] - acf[1:lag].min() >= min_prominence]
    if not ok:
        return None
    top = max(acf[lag] for lag in ok)
    best = min(lag for lag in ok if acf[lag] >= top - 0.1)  # the cycle, not a multiple of it
    # the ACF's peak is flat and the estimator tilts it; the lag with the smallest mean
    # squared difference v_t - v_{t-lag} (trend removed) near it is steadier
    h = max(2, best // 8)
    cand = np.arange(max(1, best - h), min(n - 2, best + h) + 1)
    msd = np.array([np.mean((v[k:] - v[:-k]) ** 2) for k in cand])
    return int(cand[int(np.argmin(msd))])


def ffill(a: np.ndarray) -> np.ndarray:
    """Forward-fill NaN per column (leading NaN: the first finite value, else 0); a missing
    value is the quality check's business, not a jump for these features."""
    a = np.array(a, dtype=np.float64)
    for j in range(a.shape[1]):
        col = a[:, j]
        ok = np.isfinite(col)
        if not ok.any():
            col[:] = 0.0
            continue
        idx = np.where(ok, np.arange(col.size), 0)
        np.maximum.accumulate(idx, out=idx)
        filled = col[idx]
        filled[:np.argmax(ok)] = col[np.argmax(ok)]
        a[:, j] = filled
    return a


def trailing_median(a: np.ndarray, w: int) -> np.ndarray:
    """Per row t, the median of a[t-w:t] (earlier rows only; fewer at the start, NaN with
    fewer than MIN_PAST)."""
    return trailing_stats(a, w)[0]


def trailing_stats(a: np.ndarray, w: int, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Per row t: median and robust scale (1.4826 MAD; where the MAD is 0, a quantised or
    mostly constant sensor, 1.2533 x the mean absolute deviation) of a[t-w:t]; the first rows use what history there is. NaN entries of ``a``
    (no value yet) are left out; rows with fewer than MIN_PAST earlier values get NaN."""
    n = a.size
    med = np.full(n, np.nan)
    sc = np.full(n, np.nan)
    first = np.argmax(np.isfinite(a)) if np.isfinite(a).any() else n
    head_end = min(n, first + w)
    for t in range(first + MIN_PAST, head_end + 1):  # growing windows
        if t >= n:
            break
        win = a[first:t]
        m = np.median(win)
        d = np.abs(win - m)
        mad = np.median(d)
        med[t], sc[t] = m, MAD_K * mad if mad > 0 else MEAN_AD_K * d.mean()
    if n - first > w:
        views = sliding_window_view(a[first:], w)[:-1]  # window k -> row first + k + w
        for s in range(0, len(views), chunk):
            v = views[s:s + chunk]
            m = np.median(v, axis=1)
            d = np.abs(v - m[:, None])
            rows = slice(first + w + s, first + w + s + len(v))
            med[rows] = m
            mad = np.median(d, axis=1)
            sc[rows] = np.where(mad > 0, MAD_K * mad, MEAN_AD_K * d.mean(axis=1))
    return med, sc


def deseasonalise(v: np.ndarray, period: int) -> np.ndarray:
    """v minus its seasonal profile: the median over the last SEASONS cycles of (v - level),
    level = the median of the ``period`` rows before; NaN before one cycle of history."""
    level = trailing_median(v, period)
    dev = v - level
    n = v.size
    past = np.full((SEASONS, n), np.nan)
    for k in range(1, SEASONS + 1):
        lag = k * period
        if lag < n:
            past[k - 1, lag:] = dev[:-lag]
    ok = np.isfinite(past).any(axis=0)
    prof = np.full(n, np.nan)
    with np.errstate(all="ignore"):
        prof[ok] = np.nanmedian(past[:, ok], axis=0)
    return v - prof


def robust_z(a: np.ndarray, w: int, floor: float) -> np.ndarray:
    med, sc = trailing_stats(a, w)
    z = (a - med) / np.maximum(sc, floor)
    return np.where(np.isfinite(z), np.clip(z, -CLIP, CLIP), 0.0)


def likelihood(raw: np.ndarray, short: int, long: int) -> np.ndarray:
    """Ahmad et al. 2017, made robust: the mean of the last ``short`` raw scores against the
    median and robust scale of the ``long`` raw scores before them, in scale units (>= 0).
    Their mean and sd let a sustained fault pollute the long window within a few dozen rows
    (the sd grows fastest); the median and MAD hold until half the window is fault rows."""
    r = np.minimum(raw, LIK_CLIP)
    c = np.r_[0.0, np.cumsum(r)]
    t = np.arange(r.size)
    lo = np.maximum(0, t + 1 - short)
    recent = (c[t + 1] - c[lo]) / (t + 1 - lo)
    med, sc = trailing_stats(r, long)
    # the long window ends where the short one starts
    pad = np.full(short - 1, np.nan)
    med = np.r_[pad, med][:r.size]
    sc = np.r_[pad, sc][:r.size]
    z = (recent - med) / np.maximum(sc, 0.05)
    return np.where(np.isfinite(z), np.clip(z, 0.0, CLIP), 0.0)


@register("online_z")
class OnlineZ:
    """Robust z of the value (or its deseasonalised value) and of its first difference against
    a trailing window; ``stat="lik"`` adds the anomaly likelihood on top (``online_lik``)."""

    name = "online_z"
    stat = "z"

    def __init__(self, window: int = 288, short: int = 10, long: int = 288,
                 period: int | str | None = "auto", max_period: int = 2016):
        if window < 2 * MIN_PAST:
            raise ModelError(f"{self.name}: window must be at least {2 * MIN_PAST} rows, "
                             f"got {window}")
        if not 1 <= short < long:
            raise ModelError(f"{self.name}: need 1 <= short < long, got {short}, {long}")
        if not (period is None or period == "auto" or (isinstance(period, int) and period > 1)):
            raise ModelError(f"{self.name}: period must be 'auto', None or rows > 1, "
                             f"got {period!r}")
        self.window, self.short, self.long = int(window), int(short), int(long)
        self.period_opt, self.max_period = period, int(max_period)
        self.d: int | None = None

    # ------------------------------------------------------------------ core
    def _raw(self, v: np.ndarray) -> np.ndarray:
        """Per row, the largest |z| over features and sensors of consecutive rows v."""
        out = np.zeros(len(v))
        for j in range(v.shape[1]):
            col = v[:, j]
            p = self.periods[j]
            base = deseasonalise(col, p) if p else col
            z1 = np.abs(robust_z(base, self.window, self.floor_val[j]))
            diff = np.r_[np.nan, np.diff(col)]
            z2 = np.abs(robust_z(diff, self.window, self.floor_diff[j]))
            out = np.maximum(out, np.maximum(z1, z2))
        return out

    def _stat(self, v: np.ndarray) -> np.ndarray:
        raw = self._raw(v)
        return raw if self.stat == "z" else likelihood(raw, self.short, self.long)

    def history_rows(self) -> int:
        p = max([p or 0 for p in self.periods], default=0)
        return self.window + (SEASONS + 1) * p + self.long + self.short + 2

    # ------------------------------------------------------------------ protocol
    def fit(self, x: np.ndarray) -> "OnlineZ":
        a = as_rows(x, who=self.name)
        n = a.shape[0]
        if n < 4 * MIN_PAST + 30:
            raise ModelError(f"{self.name}: need at least {4 * MIN_PAST + 30} training rows, "
                             f"got {n}")
        self.d = a.shape[1]
        v = ffill(a)
        if self.period_opt == "auto":
            self.periods = [p if p and p <= self.max_period else None
                            for p in (detect_period(v[:, j]) for j in range(self.d))]
        else:
            po = self.period_opt  # None or rows > 1 (checked in __init__)
            self.periods = [po if isinstance(po, int) else None] * self.d
        with np.errstate(all="ignore"):
            sd = np.nanstd(v, axis=0)
            dsd = np.nanstd(np.diff(v, axis=0), axis=0) if n > 1 else sd
        lvl = np.nanmax(np.abs(v), axis=0)
        self.floor_val = np.maximum(1e-3 * sd, 1e-9 * np.maximum(lvl, 1.0))
        self.floor_diff = np.maximum(1e-3 * dsd, 1e-9 * np.maximum(lvl, 1.0))
        s = self._stat(v)
        burn = min(self.window, n // 3)
        self.train_pass = s  # not kept in to_dict: only the calibration and the eval use it
        self.train_scores = s[burn:]
        self.history = a[-self.history_rows():].copy()
        return self

    def score(self, x: np.ndarray) -> np.ndarray:
        if self.d is None:
            raise ModelError(f"{self.name}: score before fit")
        a = as_rows(x, self.d, self.name)
        if a.shape[0] == 0:
            return np.zeros(0)
        h = len(self.history)
        return self._stat(ffill(np.vstack([self.history, a])))[h:]

    def to_dict(self) -> dict:
        return {"kind": "online", "stat": self.stat, "window": self.window,
                "short": self.short, "long": self.long, "periods": self.periods,
                "floor_val": self.floor_val.tolist(), "floor_diff": self.floor_diff.tolist(),
                "history": _finite_or_none(self.history)}

    @classmethod
    def from_dict(cls, doc: dict) -> "OnlineZ":
        try:
            m = ONLINE[str(doc["stat"])](int(doc["window"]), int(doc["short"]),
                                         int(doc["long"]), None)
            m.periods = [None if p is None else int(p) for p in doc["periods"]]
            m.floor_val = np.asarray(doc["floor_val"], dtype=np.float64)
            m.floor_diff = np.asarray(doc["floor_diff"], dtype=np.float64)
            m.history = np.asarray(doc["history"], dtype=np.float64).reshape(
                -1, len(m.periods))
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"online: malformed model document ({exc!r})") from exc
        m.d = len(m.periods)
        return m


@register("online_lik")
class OnlineLikelihood(OnlineZ):
    """The anomaly likelihood (Ahmad et al. 2017) of :class:`OnlineZ`'s raw score."""

    name = "online_lik"
    stat = "lik"


ONLINE = {"z": OnlineZ, "lik": OnlineLikelihood}


def _finite_or_none(a: np.ndarray) -> list:
    """Nested lists for JSON: NaN and infinities as None."""
    out = a.astype(object)
    out[~np.isfinite(a)] = None
    return out.tolist()
