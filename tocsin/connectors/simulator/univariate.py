"""Seeded univariate streams (GENERATED data) with labelled anomalies, for developing and
measuring detectors on non-stationary single-sensor data: the shape of a server metric or a
plant tag logged every 5 or every 1 minute.

Each stream: a level, a daily cycle (two harmonics, random phase) and, for 5-minute rows, a
weekly one (quieter weekends), a trend, AR(1) noise, sometimes a slow random walk and a
quantised sensor. Then 1-3 anomalies after the first 20 % of rows (the training part of a
``--train-fraction 0.15`` run stays normal), each of one kind:

- ``spike``: 1-3 rows of 5-12 noise sds; labelled from 2 rows before to 10 after;
- ``level_shift``: a step of 4-10 noise sds that persists (the new level is normal later);
  labelled only around the change (2 rows before to 24 after);
- ``variance``: the noise grows 3-6 x for 60-240 rows; the stretch is labelled;
- ``trend_change``: an extra slope for 100-300 rows that adds 6-12 noise sds, then the level
  stays; labelled from the start to 30 rows after the slope ends;
- ``seasonal_break``: the daily cycle is missing or shifted by half a cycle for 150-400 rows
  (streams with a daily cycle only); the stretch is labelled;
- ``flatline``: the value holds its last reading for 40-200 rows; the stretch is labelled.

Deterministic: the same (seed, index) gives the same stream. :func:`write_csv` writes what
``tocsin eval csv --timestamp-col timestamp --label-col label`` reads.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

KINDS = ("spike", "level_shift", "variance", "trend_change", "seasonal_break", "flatline")
DAY_S, WEEK_S = 86_400, 7 * 86_400
START = datetime(2026, 3, 2, tzinfo=timezone.utc)  # a Monday


@dataclass
class Stream:
    name: str
    period_s: int
    ts: np.ndarray  # unix seconds per row
    values: np.ndarray
    labels: np.ndarray  # 0/1 per row
    anomalies: list[dict] = field(default_factory=list)  # kind, start, end (rows), label span
    traits: dict = field(default_factory=dict)


def random_stream(seed: int, index: int) -> Stream:
    """One stream of the library of ``seed``."""
    rng = np.random.default_rng([seed, index, 20260302])
    period_s = 300 if rng.random() < 0.7 else 60
    n = int(rng.integers(3000, 6001))
    ts = START.timestamp() + period_s * np.arange(n)
    level = float(rng.uniform(10, 100))
    sd = level * float(rng.uniform(0.01, 0.06))
    t_day = (ts % DAY_S) / DAY_S
    daily = rng.random() < 0.65
    amp = float(rng.uniform(2, 8)) * sd if daily else 0.0
    ph1, ph2 = rng.uniform(0, 2 * np.pi, 2)
    season = amp * (np.sin(2 * np.pi * t_day + ph1) + 0.4 * np.sin(4 * np.pi * t_day + ph2))
    weekly = period_s == 300 and daily and rng.random() < 0.5
    if weekly:
        weekend = ((ts - START.timestamp()) % WEEK_S) >= 5 * DAY_S
        season = np.where(weekend, 0.4 * season - 1.5 * sd, season)
    trend = float(rng.uniform(-6, 6)) * sd * np.arange(n) / n if rng.random() < 0.4 else 0.0
    phi = float(rng.uniform(0.0, 0.8))
    e = rng.normal(0, sd * np.sqrt(1 - phi * phi), n)
    noise = np.empty(n)
    prev = 0.0
    for i in range(n):
        prev = phi * prev + e[i]
        noise[i] = prev
    walk = np.cumsum(rng.normal(0, 0.03 * sd, n)) if rng.random() < 0.2 else 0.0
    base = level + season + trend + walk
    traits = {"period_s": period_s, "rows": n, "daily": daily, "weekly": weekly,
              "trend": bool(np.any(trend)), "ar1": round(phi, 2),
              "walk": bool(np.any(walk)), "quantised": False}
    add = np.zeros(n)
    scale = np.ones(n)
    flat: list[tuple[int, int]] = []
    labels = np.zeros(n, dtype=np.int64)
    anomalies = []
    k = int(rng.integers(1, 4))
    starts = np.sort(rng.choice(np.arange(int(0.2 * n), n - 450, 50), size=k, replace=False))
    last_end = 0
    rows_day = DAY_S // period_s
    for s in starts:
        s = int(max(s, last_end + 100))
        if s > n - 420:
            break
        kind = str(rng.choice(KINDS if daily else [k_ for k_ in KINDS
                                                   if k_ != "seasonal_break"]))
        sign = 1.0 if rng.random() < 0.5 else -1.0
        if kind == "spike":
            ln = int(rng.integers(1, 4))
            add[s:s + ln] += sign * float(rng.uniform(5, 12)) * sd
            end, lab = s + ln, (s - 2, s + ln + 10)
        elif kind == "level_shift":
            add[s:] += sign * float(rng.uniform(4, 10)) * sd
            end, lab = s + 1, (s - 2, s + 24)
        elif kind == "variance":
            ln = int(rng.integers(60, 241))
            scale[s:s + ln] *= float(rng.uniform(3, 6))
            end, lab = s + ln, (s, s + ln)
        elif kind == "trend_change":
            ln = int(rng.integers(100, 301))
            ramp = np.minimum(np.arange(n - s), ln) / ln
            add[s:] += sign * float(rng.uniform(6, 12)) * sd * ramp
            end, lab = s + ln, (s, s + ln + 30)
        elif kind == "seasonal_break":
            ln = int(min(rng.integers(150, 401), rows_day))
            if rng.random() < 0.5:
                add[s:s + ln] -= season[s:s + ln]  # the cycle stops
            else:
                shift = rows_day // 2  # the cycle runs half a day off
                src = np.clip(np.arange(s, s + ln) - shift, 0, n - 1)
                add[s:s + ln] += season[src] - season[s:s + ln]
            end, lab = s + ln, (s, s + ln)
        else:  # flatline
            ln = int(rng.integers(40, 201))
            flat.append((s, s + ln))
            end, lab = s + ln, (s, s + ln)
        a, b = max(0, lab[0]), min(n, lab[1])
        labels[a:b] = 1
        anomalies.append({"kind": kind, "start": s, "end": end, "label": [a, b]})
        last_end = max(end, b)
    values = base + add + noise * scale
    if rng.random() < 0.2:  # a quantised sensor: steps of half a noise sd
        q = 0.5 * sd
        values = np.round(values / q) * q
        traits["quantised"] = True
    for a, b in flat:
        values[a:b] = values[a - 1]
    name = f"s{seed}-{index:02d}-{period_s // 60}min"
    return Stream(name, period_s, ts, values, labels, anomalies, traits)


def library(seed: int, count: int = 30) -> list[Stream]:
    return [random_stream(seed, i) for i in range(count)]


def write_csv(path: str | Path, s: Stream) -> None:
    """timestamp (ISO, UTC), value, label (1 = anomaly window)."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["timestamp", "value", "label"])
        for t, v, lab in zip(s.ts, s.values, s.labels):
            stamp = datetime.fromtimestamp(int(t), tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
            w.writerow([stamp, f"{v:.6g}", int(lab)])


def write_library(out: str | Path, seed: int, count: int = 30) -> list[Path]:
    import json

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths, docs = [], []
    for s in library(seed, count):
        p = out / f"{s.name}.csv"
        write_csv(p, s)
        paths.append(p)
        docs.append({"file": p.name, "traits": s.traits, "anomalies": s.anomalies})
    (out / "streams.json").write_text(json.dumps(docs, indent=1))
    return paths
