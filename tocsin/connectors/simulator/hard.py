"""The harder fault library: faults that start gradually, sensors that drift, get noisy, stick,
flatline or go missing, and operating-mode changes that are NOT faults, with ground truth.

The simulated plant's original library (:mod:`plant`) switches full-size faults on at once;
a detector that finds those can still drown operators in false alarms when the load changes
and miss a leak that grows over three minutes. A hard scenario runs the same plant at one row
per second with

- a load that wanders (AR(1), time constant 90 s, sd 0.04) and **mode changes**: steps or
  ramps of the load to a new level (label 0: the detector must stay quiet);
- **process faults** of the plant library at a fraction of their size (``severity``) with a
  gradual onset (``ramp_s``);
- **sensor faults** on one tag: ``drift`` (a bias growing by ``magnitude`` training sds per
  100 s), ``noise`` (extra noise of ``magnitude`` x the tag's measurement noise), ``stuck``
  (holds its last value), ``flatline`` (reads 0, a broken 4-20 mA loop), ``missing`` (no
  value).

A scenario is data (:class:`HardScenario`, YAML-loadable, seeded): the same scenario gives the
same rows. :func:`random_scenario` draws one per (asset kind, case, seed) for the library runs;
:func:`write_csv` writes the labelled table that ``tocsin eval csv`` reads.
"""

from __future__ import annotations

import csv
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from tocsin.connectors.simulator.plant import ASSET_TYPES, DEFAULT_ASSETS, FAULTS, Plant

SENSOR_FAULTS = ("drift", "noise", "stuck", "flatline", "missing")
KINDS = ("pump", "motor", "press", "plant")
EPOCH_2026 = 1_767_225_600


class ModeChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: float = Field(ge=0)
    load: float = Field(gt=0.2, lt=2.0)  # the new operating point (1 = nominal)
    ramp_s: float = Field(0.0, ge=0)


class ProcessFault(BaseModel):
    model_config = ConfigDict(extra="forbid")
    asset: str
    fault: str
    start: float = Field(ge=0)
    end: float
    severity: float = Field(1.0, gt=0)
    ramp_s: float = Field(0.0, ge=0)


class SensorFault(BaseModel):
    model_config = ConfigDict(extra="forbid")
    asset: str
    tag: str
    kind: Literal["drift", "noise", "stuck", "flatline", "missing"]
    start: float = Field(ge=0)
    end: float
    magnitude: float = 3.0


class HardScenario(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = "hard"
    seed: int = 1
    rows: int = Field(1600, ge=10)  # one row per second
    train_rows: int = Field(400, ge=0)  # the fault-free head that trains a detector
    assets: list[str] = Field(default_factory=lambda: ["pump-1"])
    wander_sd: float = Field(0.04, ge=0)
    mode_changes: list[ModeChange] = Field(default_factory=list)
    faults: list[ProcessFault] = Field(default_factory=list)
    sensor_faults: list[SensorFault] = Field(default_factory=list)


@dataclass
class HardRun:
    name: str
    columns: list[str]  # "tag" for one asset, "asset.tag" for several
    ts: np.ndarray  # int64 ns
    values: np.ndarray  # rows x columns (NaN: missing)
    labels: np.ndarray  # 1 while a fault is active
    load: np.ndarray  # the operating point per row (mode changes are label 0)
    episodes: list[dict]


def cases(kind: str) -> list[str]:
    """The library's cases for an asset kind: mode changes only, the five sensor faults, and
    every process fault of that kind with a gradual onset."""
    kinds = set(DEFAULT_ASSETS.values()) if kind == "plant" else {kind}
    ramps = sorted(f for f, by in FAULTS.items() if kinds & set(by))
    return ["mode_only", *SENSOR_FAULTS, *(f"ramp_{f}" for f in ramps)]


def _assets(kind: str) -> list[str]:
    if kind not in KINDS:
        raise ValueError(f"unknown asset kind {kind!r}; known: {list(KINDS)}")
    return list(DEFAULT_ASSETS) if kind == "plant" else [
        a for a, k in DEFAULT_ASSETS.items() if k == kind]


def random_scenario(kind: str, case: str, seed: int, train_rows: int = 400,
                    test_rows: int = 1200) -> HardScenario:
    """One drawn scenario: the training head, then a mode change, the fault (ramped process
    fault or sensor fault, 200-350 s), normal rows, another mode change."""
    assets = _assets(kind)
    rng = np.random.default_rng([seed, zlib.crc32(f"{kind}/{case}".encode())])
    n = train_rows + test_rows
    t0 = train_rows
    modes, faults, sensors = [], [], []

    def mode(start: float, load: float) -> tuple[ModeChange, float]:
        step = rng.uniform(0.06, 0.15) * rng.choice([-1.0, 1.0])
        new = float(np.clip(load + step, 0.75, 1.25))
        return ModeChange(start=start, load=new, ramp_s=float(rng.choice([0.0, 30.0, 120.0]))
                          ), new

    m, load = mode(t0 + rng.uniform(50, 300), 1.0)
    modes.append(m)
    start = t0 + rng.uniform(400, 550)
    end = start + rng.uniform(200, 350)
    if case == "mode_only":
        for at in (start, end + 100):
            m, load = mode(at, load)
            modes.append(m)
    else:
        m, load = mode(min(end + rng.uniform(80, 200), n - 60), load)
        modes.append(m)
    if case in SENSOR_FAULTS:
        asset = str(rng.choice(assets))
        tags = [t for t, tm in ASSET_TYPES[DEFAULT_ASSETS[asset]].items() if tm.noise > 0]
        mag = {"drift": rng.uniform(2, 4), "noise": rng.uniform(3, 6)}.get(case, 0.0)
        sensors.append(SensorFault(asset=asset, tag=str(rng.choice(tags)), kind=case,
                                   start=start, end=end, magnitude=float(mag)))
    elif case.startswith("ramp_"):
        fault = case[5:]
        asset = str(rng.choice([a for a in assets if DEFAULT_ASSETS[a] in FAULTS[fault]]))
        faults.append(ProcessFault(asset=asset, fault=fault, start=start, end=end,
                                   severity=float(rng.uniform(0.25, 0.5)),
                                   ramp_s=float(rng.uniform(60, 180))))
    elif case != "mode_only":
        raise ValueError(f"unknown case {case!r}; known: {cases(kind)}")
    return HardScenario(name=f"{kind}-{case}-s{seed}", seed=seed, rows=n,
                        train_rows=train_rows, assets=assets, mode_changes=modes,
                        faults=faults, sensor_faults=sensors)


def _load_path(sc: HardScenario) -> np.ndarray:
    """The operating point per row: mode changes (steps or ramps) plus the AR(1) wander."""
    rng = np.random.default_rng([sc.seed, 90])
    phi = np.exp(-1.0 / 90.0)
    wander = np.empty(sc.rows)
    w = 0.0
    for i in range(sc.rows):
        w = phi * w + np.sqrt(1 - phi * phi) * sc.wander_sd * rng.normal()
        wander[i] = w
    base = np.ones(sc.rows)
    t = np.arange(1, sc.rows + 1, dtype=float)
    for m in sorted(sc.mode_changes, key=lambda m: m.start):
        prev = base.copy()
        frac = np.clip((t - m.start) / m.ramp_s, 0, 1) if m.ramp_s > 0 else (t >= m.start)
        base = np.where(t >= m.start, prev + frac * (m.load - prev), prev)
    return base + wander


def run(sc: HardScenario) -> HardRun:
    """Step the plant once per second through the scenario; sensor faults act on the
    measured values, process faults on the plant."""
    plant = Plant({a: DEFAULT_ASSETS[a] for a in sc.assets}, seed=sc.seed)
    one = len(sc.assets) == 1
    cols = [(a, tag) for a in sc.assets for tag in plant.assets[a].names]
    names = [tag if one else f"{a}.{tag}" for a, tag in cols]
    load = _load_path(sc)
    vals = np.empty((sc.rows, len(cols)))
    for i in range(sc.rows):
        t = float(i + 1)
        for f in sc.faults:
            if f.start <= t < f.end:
                plant.inject(f.asset, f.fault, f.start, f.severity, f.ramp_s)
            elif t >= f.end:
                plant.clear(f.asset, f.fault, f.end)
        for a in plant.assets.values():
            a.load = float(load[i])
        out = plant.step(t, 1.0)
        vals[i] = [out[a][tag] for a, tag in cols]
    labels = np.zeros(sc.rows, dtype=np.int64)
    t = np.arange(1, sc.rows + 1, dtype=float)
    for f in sc.faults:
        labels[(t >= f.start) & (t < f.end)] = 1
    sd = np.nanstd(vals[:max(sc.train_rows, 10)], axis=0)
    for s in sc.sensor_faults:
        j = cols.index((s.asset, s.tag))
        on = (t >= s.start) & (t < s.end)
        labels[on] = 1
        vals[:, j] = _sensor_fault(vals[:, j], on, t, s, sd[j],
                                   ASSET_TYPES[DEFAULT_ASSETS[s.asset]][s.tag].noise)
    ts = (EPOCH_2026 + np.arange(1, sc.rows + 1, dtype=np.int64)) * 1_000_000_000
    episodes = ([dict(m.model_dump(), type="mode change") for m in sc.mode_changes]
                + [dict(f.model_dump(), type="process fault") for f in sc.faults]
                + [dict(s.model_dump(), type="sensor fault") for s in sc.sensor_faults])
    return HardRun(sc.name, names, ts, vals, labels, load, episodes)


def _sensor_fault(v: np.ndarray, on: np.ndarray, t: np.ndarray, s: SensorFault, sd: float,
                  noise: float) -> np.ndarray:
    v = v.copy()
    if not on.any():
        return v
    first = int(np.flatnonzero(on)[0])
    if s.kind == "drift":
        v[on] += s.magnitude * sd * (t[on] - s.start) / 100.0
    elif s.kind == "noise":
        rng = np.random.default_rng(zlib.crc32(f"{s.asset}/{s.tag}/{s.start}".encode()))
        v[on] += rng.normal(0.0, s.magnitude * noise, int(on.sum()))
    elif s.kind == "stuck":
        v[on] = v[first - 1] if first else v[first]
    elif s.kind == "flatline":
        v[on] = 0.0
    else:  # missing
        v[on] = np.nan
    return v


def write_csv(path: str | Path, r: HardRun) -> None:
    """timestamp (unix seconds), one column per tag, label (1 = fault); missing values are
    empty cells."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["timestamp", *r.columns, "label"])
        for i in range(len(r.ts)):
            w.writerow([int(r.ts[i] // 1_000_000_000)]
                       + ["" if np.isnan(x) else f"{x:.6g}" for x in r.values[i]]
                       + [int(r.labels[i])])


def write_library(out: str | Path, kinds: list[str], seeds: list[int],
                  train_rows: int = 400, test_rows: int = 1200,
                  only: list[str] | None = None) -> list[Path]:
    """Every case of every kind for every seed as labelled CSVs (``KIND/CASE-sSEED.csv``),
    with the scenarios and their episodes in ``scenarios.json``."""
    import json

    out = Path(out)
    written, docs = [], []
    for kind in kinds:
        (out / kind).mkdir(parents=True, exist_ok=True)
        for case in only or cases(kind):
            for seed in seeds:
                sc = random_scenario(kind, case, seed, train_rows, test_rows)
                r = run(sc)
                p = out / kind / f"{case}-s{seed}.csv"
                write_csv(p, r)
                written.append(p)
                docs.append({"file": str(p.relative_to(out)), "scenario": sc.model_dump(),
                             "fault_rows": int(r.labels.sum())})
    (out / "scenarios.json").write_text(json.dumps(docs, indent=1))
    return written
