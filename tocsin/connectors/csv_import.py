"""Turn a labeled CSV export (timestamp, sensor columns, label columns) into a recording that
`tocsin replay` publishes like live data.

Readings go to ``plant.readings`` as frames of `frame_rows` rows x sensor columns, keyed by
asset; labels go to ``plant.labels`` as one message each time the label values change
(``{"schema": "tocsin.labels/1", "asset", "ts", "labels": {...}}``). Empty cells become
samples of bad quality; anything else that is not a number is an error naming the line and
the column.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import orjson

from tocsin.connectors.recording import Message, RecordingWriter
from tocsin.contracts.readings import ReadingsFrame
from tocsin.errors import ConfigError, DataError

_UNITS = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}


class CsvError(DataError):
    """A CSV file could not be imported; the message names the line and column."""


@dataclass
class CsvSpec:
    asset: str
    timestamp_col: str | None = None  # ISO-8601 or a number in `timestamp_unit`
    timestamp_unit: str = "s"
    start: str | None = None  # with `period`: synthesize timestamps (files without a clock)
    period: float | None = None  # seconds between rows
    sensor_cols: list[str] | None = None  # default: every column not used otherwise
    label_cols: list[str] = field(default_factory=list)
    exclude_cols: list[str] = field(default_factory=list)  # neither sensor nor label
    sep: str = ","  # a character, or "whitespace"
    header: bool = True
    names: list[str] | None = None  # column names when there is no header
    frame_rows: int = 10


def _rows(path: Path, spec: CsvSpec):
    with open(path, newline="") as f:
        if spec.sep == "whitespace":
            for i, line in enumerate(f, 1):
                if line.strip():
                    yield i, line.split()
        else:
            for i, row in enumerate(csv.reader(f, delimiter=spec.sep), 1):
                if row:
                    yield i, row


def _parse_ts(raw: str, unit: str, line: int, col: str) -> int:
    try:
        return int(round(float(raw) * _UNITS[unit]))
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        raise CsvError(f"line {line} column {col!r}: {raw!r} is neither a number nor an "
                           "ISO-8601 time") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp() * 1_000_000) * 1000


def import_csv(path: str | Path, out: str | Path, spec: CsvSpec,
               readings_topic: str = "plant.readings",
               labels_topic: str = "plant.labels") -> tuple[int, int, int]:
    """Write the recording; return (rows, frames, label messages)."""
    path = Path(path)
    if spec.timestamp_unit not in _UNITS:
        raise ConfigError(f"timestamp unit must be one of {sorted(_UNITS)}")
    if spec.timestamp_col is None and (spec.start is None or spec.period is None):
        raise ConfigError("give a timestamp column, or --start and --period for files "
                          "without one")
    rows = _rows(path, spec)
    if spec.header:
        try:
            _, names = next(rows)
        except StopIteration:
            raise CsvError(f"{path}: empty file") from None
        names = [n.strip() for n in names]
    elif spec.names:
        names = list(spec.names)
    else:
        names = None  # decided by the first row: c1..cN
    first = None
    if names is None:
        try:
            first = next(rows)
        except StopIteration:
            raise CsvError(f"{path}: empty file") from None
        names = [f"c{i + 1}" for i in range(len(first[1]))]
    used = set(spec.label_cols) | ({spec.timestamp_col} if spec.timestamp_col else set())
    for c in used:
        if c not in names:
            raise CsvError(f"{path}: no column {c!r}; columns are {names}")
    sensors = spec.sensor_cols or [n for n in names if n not in used]
    for c in sensors:
        if c not in names:
            raise CsvError(f"{path}: no sensor column {c!r}; columns are {names}")
    idx = {n: i for i, n in enumerate(names)}
    s_idx = [idx[c] for c in sensors]
    t0 = None
    if spec.timestamp_col is None:
        t0 = _parse_ts(spec.start, "s", 0, "--start")
    n_rows = n_frames = n_labels = 0
    samples: list[tuple] = []
    last_labels = None
    header = {"import": {"file": path.name, "asset": spec.asset, "sensors": sensors,
                         "labels": spec.label_cols}}
    with RecordingWriter(out, header) as w:
        w.declare_topics([readings_topic, labels_topic])

        def flush_frame():
            nonlocal samples, n_frames
            if samples:
                f = ReadingsFrame.from_samples(spec.asset, samples, source=f"csv:{path.name}",
                                               seq=n_frames)
                w.write(Message(readings_topic, 0, n_frames, int(f.ts[-1] // 1_000_000),
                                spec.asset.encode(), f.encode()))
                n_frames += 1
                samples = []

        def all_rows():
            if first is not None:
                yield first
            yield from rows

        for line, row in all_rows():
            if len(row) != len(names):
                raise CsvError(f"{path}: line {line} has {len(row)} fields, expected "
                                   f"{len(names)}")
            if t0 is not None:
                ts = t0 + int(round(n_rows * spec.period * 1e9))
            else:
                ts = _parse_ts(row[idx[spec.timestamp_col]], spec.timestamp_unit, line,
                               spec.timestamp_col)
            for col, i in zip(sensors, s_idx):
                cell = row[i].strip()
                if cell == "":
                    samples.append((col, ts, None, 2))
                    continue
                try:
                    samples.append((col, ts, float(cell), 0))
                except ValueError:
                    raise CsvError(f"{path}: line {line} column {col!r}: {cell!r} is not "
                                       "a number") from None
            if spec.label_cols:
                labels = {c: _label_value(row[idx[c]]) for c in spec.label_cols}
                if labels != last_labels:
                    w.write(Message(labels_topic, 0, n_labels, ts // 1_000_000,
                                    spec.asset.encode(), orjson.dumps({
                                        "schema": "tocsin.labels/1", "asset": spec.asset,
                                        "ts": ts, "labels": labels})))
                    n_labels += 1
                    last_labels = labels
            n_rows += 1
            if n_rows % spec.frame_rows == 0:
                flush_frame()
        flush_frame()
    return n_rows, n_frames, n_labels


def _label_value(raw: str):
    raw = raw.strip()
    if re.fullmatch(r"-?\d+", raw):
        return int(raw)
    try:
        return float(raw)
    except ValueError:
        return raw
