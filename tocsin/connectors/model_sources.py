"""Readings for training and evaluation, as frames, from any source Tocsin knows:
a recording, a CSV file, an InfluxDB query, or the simulated plant (offline, event time).

Every source yields :class:`~tocsin.contracts.readings.ReadingsFrame` objects in time order,
the same frames the stream carries, so training and evaluation run the stream's own code.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import numpy as np

from tocsin.connectors.csv_import import CsvError, CsvSpec, _parse_ts, _rows
from tocsin.contracts.readings import ReadingsFrame
from tocsin.errors import SchemaError

NS = 1_000_000_000


# ------------------------------------------------------------------ recordings
def recording_frames(path: str | Path, topic_suffix: str = "plant.readings",
                     assets: set[str] | None = None) -> Iterator[ReadingsFrame]:
    from tocsin.connectors.recording import RecordingReader

    with RecordingReader(path) as r:
        for m in r:
            if not m.topic.endswith(topic_suffix) or m.value is None:
                continue
            try:
                f = ReadingsFrame.decode(m.value)
            except SchemaError:
                continue  # the stream dead-letters these; training skips them
            if assets is None or f.asset in assets:
                yield f


# ------------------------------------------------------------------ tables (CSV)
@dataclass
class Table:
    columns: list[str]
    ts: np.ndarray  # int64 ns per row
    values: np.ndarray  # rows x columns, NaN for empty cells
    labels: np.ndarray | None  # int per row (0 normal), if a label column was given

    def head(self, k: int) -> "Table":
        """The first ``k`` rows, unlabelled (a training part)."""
        return Table(self.columns, self.ts[:k], self.values[:k], None)

    def frames(self, asset: str, rows_per_frame: int = 10,
               rows: slice | None = None) -> Iterator[ReadingsFrame]:
        ts, vals = (self.ts, self.values) if rows is None else (self.ts[rows], self.values[rows])
        k = len(self.columns)
        for i in range(0, len(ts), rows_per_frame):
            t = np.repeat(ts[i:i + rows_per_frame], k)
            v = vals[i:i + rows_per_frame].ravel()
            q = np.where(np.isnan(v), 2, 0).astype(np.uint8)
            yield ReadingsFrame(asset, self.columns * (len(t) // k), t, v, q, source="table")


def load_table(path: str | Path, spec: CsvSpec, label_col: str | None = None,
               onset_row: int | None = None) -> Table:
    """Read a CSV (or whitespace-separated) file. Labels: a column, or ``onset_row`` (1-based:
    rows from it on are label 1, as in the Tennessee Eastman test files)."""
    path = Path(path)
    it = _rows(path, spec)
    names = spec.names
    if spec.header:
        try:
            _, names = next(it)
        except StopIteration:
            raise CsvError(f"{path}: empty file") from None
        names = [n.strip() for n in names]
    rows = list(it)
    if not rows:
        raise CsvError(f"{path}: no data rows")
    width = len(rows[0][1])
    names = names or [f"c{i + 1}" for i in range(width)]
    if len(names) != width:
        raise CsvError(f"{path}: {len(names)} column names but {width} columns")
    for need in filter(None, [spec.timestamp_col, label_col, *(spec.sensor_cols or [])]):
        if need not in names:
            raise CsvError(f"{path}: no column {need!r}; columns: {names[:12]}"
                               + (" ..." if len(names) > 12 else ""))
    for need in spec.exclude_cols:
        if need not in names:
            raise CsvError(f"{path}: --exclude {need!r} is not a column; columns: {names[:12]}"
                           + (" ..." if len(names) > 12 else ""))
    skip = {spec.timestamp_col, label_col, *spec.label_cols, *spec.exclude_cols}
    sensors = spec.sensor_cols or [n for n in names if n not in skip]
    idx = [names.index(c) for c in sensors]
    vals = np.full((len(rows), len(sensors)), np.nan)
    for r, (line, row) in enumerate(rows):
        if len(row) != width:
            raise CsvError(f"{path} line {line}: {len(row)} columns, expected {width}")
        for j, c in enumerate(idx):
            cell = row[c].strip()
            if cell:
                try:
                    vals[r, j] = float(cell)
                except ValueError:
                    raise CsvError(f"{path} line {line} column {sensors[j]!r}: {cell!r} is "
                                       "not a number") from None
    if spec.timestamp_col:
        ti = names.index(spec.timestamp_col)
        ts = np.array([_parse_ts(row[ti], spec.timestamp_unit, line, spec.timestamp_col)
                       for line, row in rows], dtype=np.int64)
    else:
        start = (datetime.fromisoformat(spec.start.replace("Z", "+00:00")) if spec.start
                 else datetime(2026, 1, 1, tzinfo=timezone.utc))
        if start.tzinfo is None:
            start = start.replace(tzinfo=timezone.utc)
        period = spec.period or 1.0
        ts = (int(start.timestamp()) * NS
              + np.round(np.arange(len(rows)) * period * NS).astype(np.int64))
    labels = None
    if label_col:
        li = names.index(label_col)
        try:
            labels = np.array([int(float(row[li] or 0)) for _, row in rows], dtype=np.int64)
        except ValueError as exc:
            raise CsvError(f"{path}: label column {label_col!r} must be numeric "
                               f"({exc})") from None
    elif onset_row is not None:
        labels = (np.arange(1, len(rows) + 1) >= onset_row).astype(np.int64)
    return Table(sensors, ts, vals, labels)


# ------------------------------------------------------------------ the simulated plant
def simulated_frames(seconds: float, *, rate: float = 10.0, seed: int = 7,
                     assets: list[str] | None = None, faults: list[dict] | None = None,
                     start_s: float | None = None) -> Iterator[ReadingsFrame]:
    """The simulator's readings, generated offline in event time (one frame per asset per
    second). ``faults``: [{asset, fault, start, end}] in seconds from the start; ``start_s``
    (default 2026-01-01, a whole minute) may have a fraction: the clock phase of the run."""
    from tocsin.connectors.simulator.plant import DEFAULT_ASSETS, Plant
    from tocsin.connectors.simulator.scenario import (
        EPOCH_2026,
        FaultEvent,
        Scenario,
        run_events,
    )

    sc = Scenario(seed=seed, seconds=seconds, rate=rate,
                  assets=assets or list(DEFAULT_ASSETS),
                  faults=[FaultEvent(**f) for f in (faults or [])])
    plant = Plant({a: DEFAULT_ASSETS[a] for a in sc.assets}, seed=seed)
    dt = 1.0 / rate
    base = round((EPOCH_2026 if start_s is None else start_s) * NS)
    per_frame = max(1, int(round(rate)))
    buf: dict[str, list] = {a: [] for a in sc.assets}
    n = int(round(seconds * rate))
    for i in range(1, n + 1):
        t = i * dt
        run_events(plant, sc, t, dt)
        ts = base + round(t * 1e9)
        for asset, values in plant.step(t, dt).items():
            buf[asset].extend((tag, ts, v, 0) for tag, v in values.items())
        if i % per_frame == 0 or i == n:
            for asset, samples in buf.items():
                if samples:
                    yield ReadingsFrame.from_samples(asset, samples, source="sim://offline",
                                                     seq=i)
            buf = {a: [] for a in sc.assets}


def run_offsets(runs: int, seed: int, span_s: float = 60.0) -> list[float]:
    """Clock phases (seconds past a whole minute) for ``runs`` separate runs, spread over
    ``span_s``, with their tenths of a second a permutation (10 Hz samples: each run's
    samples fall on a different tenth of the 1 s window grid).

    Why: a live server starts its sample clock at whatever time it is started, so the
    epoch-aligned feature windows see its periodic signals (the press's noise-free 20 s valve
    cycle) at any phase. One offline run started on a whole minute shows them at a few phases
    only, and features of a noise-free signal at an unseen phase are far outside the training
    spread: the demo's press-1 false alerts (#21)."""
    rng = np.random.default_rng([seed, 21])
    tenths = rng.permutation(10)
    return [float(np.floor(j * span_s / runs)) + (tenths[j % 10] + rng.uniform()) / 10
            for j in range(runs)]


def simulated_runs(seconds: float, *, runs: int = 10, seed: int = 1, rate: float = 10.0,
                   assets: list[str] | None = None) -> Iterator[Iterator[ReadingsFrame]]:
    """``seconds`` of normal operation as ``runs`` separate runs (the frames of each), one
    after the other in event time with over two minutes between them, each at its own clock
    phase (:func:`run_offsets`) and simulator seed (``seed`` for the first). Each run is meant
    for a window engine of its own (:func:`tocsin.models.training.collect_run_ticks`), as a
    live start is: its windows fill from nothing, and it ends without forced closes."""
    from tocsin.connectors.simulator.scenario import EPOCH_2026

    each = seconds / runs
    stride = 60 * int(np.ceil((each + 120.0) / 60.0))  # whole minutes per run and silence
    for j, off in enumerate(run_offsets(runs, seed)):
        yield simulated_frames(each, rate=rate, seed=seed + 1000 * j, assets=assets,
                               start_s=EPOCH_2026 + j * stride + off)


# ------------------------------------------------------------------ InfluxDB
def influx_frames(history, asset: str, start: str, stop: str = "now()",
                  rows_per_frame: int = 1000) -> Iterator[ReadingsFrame]:
    """Raw readings of one asset from the history bucket (see connectors.history)."""
    rows = history.readings(asset, start=start, stop=stop)
    for i in range(0, len(rows), rows_per_frame):
        part = rows[i:i + rows_per_frame]
        yield ReadingsFrame.from_samples(
            asset, [(r["tag"], int(r["time"].timestamp() * 1_000_000) * 1000, r["value"], 0)
                    for r in part], source="influxdb")
