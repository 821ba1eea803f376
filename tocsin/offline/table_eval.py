"""The file handling of `tocsin eval csv`: which files, what each output is called, what the
data's clock looks like, which rows train and which are scored, and errors with a hint.

Kept apart from the click command so each rule has a unit test:
- inputs: files, folders (every file matching ``pattern`` below them) and globs;
- outputs keyed by the path relative to the inputs' common folder (``a/0.csv`` and
  ``b/0.csv`` no longer overwrite each other);
- the clock: sampling period (median step), gaps (steps over 1.5x the period), rows with a
  repeated or backwards timestamp (the window engine drops those as late: say so);
- windows that follow the sampling period by default (1, 10 and 60 rows), not 1/10/60 s;
- the training part: ``--train-rows N`` or ``--train-fraction F`` per file; metrics are
  computed only on the rows after it.
"""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tocsin.connectors.model_sources import NS
from tocsin.errors import DataError

_GLOB = re.compile(r"[*?\[]")


def expand_inputs(args: list[str], pattern: str = "*.csv") -> list[Path]:
    """Files in the order given; a folder adds its files matching ``pattern`` (recursively,
    sorted); a glob adds its matches (sorted). Duplicates are kept once."""
    out: list[Path] = []
    for a in args:
        p = Path(a)
        if p.is_dir():
            found = sorted(q for q in p.rglob(pattern) if q.is_file())
            if not found:
                raise DataError(f"{a}: folder has no files matching {pattern!r} "
                                "(set --pattern)")
        elif _GLOB.search(a):
            found = sorted(Path(q) for q in glob.glob(a, recursive=True) if Path(q).is_file())
            if not found:
                raise DataError(f"{a}: the pattern matches no file")
        elif p.is_file():
            found = [p]
        else:
            raise DataError(f"{a}: no such file or folder")
        out += found
    seen: set[Path] = set()
    return [p for p in out if not (p.resolve() in seen or seen.add(p.resolve()))]


def output_names(paths: list[Path], suffix: str = ".scores.csv") -> dict[Path, str]:
    """File name for each input's per-row output: its path relative to the common folder of
    all inputs, folders joined with ``__``."""
    res = [p.resolve() for p in paths]
    root = Path(os.path.commonpath([str(r.parent) for r in res])) if res else Path(".")
    return {p: "__".join(r.relative_to(root).parts) + suffix for p, r in zip(paths, res)}


@dataclass
class Clock:
    period_s: float | None
    gaps: int  # steps longer than 1.5 periods
    largest_gap_s: float
    repeated: int  # rows with the same timestamp as the one before
    backwards: int  # rows with an earlier timestamp than the one before

    def warnings(self, name: str) -> list[str]:
        out = []
        if self.gaps:
            out.append(f"{name}: {self.gaps} time gaps (longest {self.largest_gap_s:g} s, "
                       f"period {self.period_s:g} s); windows across a gap hold fewer rows")
        if self.backwards or self.repeated:
            out.append(f"{name}: {self.backwards} rows with a backwards and {self.repeated} "
                       "with a repeated timestamp; the window engine drops rows that arrive "
                       "later than their window's close (counted as late), so these rows "
                       "may not be scored")
        return out


def clock(ts_ns: np.ndarray) -> Clock:
    d = np.diff(np.asarray(ts_ns, dtype=np.int64)) / NS
    pos = d[d > 0]
    period = float(np.median(pos)) if pos.size else None
    big = d > 1.5 * period if period else np.zeros(d.size, dtype=bool)
    return Clock(period, int(big.sum()), float(d[big].max()) if big.any() else 0.0,
                 int((d == 0).sum()), int((d < 0).sum()))


def default_windows(period_s: float) -> list[tuple[str, float, float | None]]:
    """(name, size, hop) of 1, 10 and 60 rows: the stream's 1 s / 10 s / 60 s at 1 row per
    second, and hours for data sampled every 5 minutes."""
    def nm(n: int) -> str:
        s = n * period_s
        if s < 120:
            return f"{s:g}s"
        if s < 7200:
            return f"{s / 60:g}m"
        return f"{s / 3600:g}h"

    return [(nm(1), period_s, None), (nm(10), 10 * period_s, period_s),
            (nm(60), 60 * period_s, 10 * period_s)]


def train_count(n_rows: int, train_rows: int | None, train_fraction: float | None,
                name: str) -> int:
    """Rows of this file that train its model (the rest are scored and evaluated)."""
    if train_rows is not None:
        k = train_rows
    elif train_fraction is not None:
        if not 0.0 < train_fraction < 1.0:
            raise DataError(f"--train-fraction must be in (0, 1), got {train_fraction}")
        k = int(round(n_rows * train_fraction))
    else:
        return 0
    if k >= n_rows:
        raise DataError(f"{name}: {n_rows} rows, all of them would train (training part "
                        f"{k}); nothing left to evaluate")
    return k


def hint(exc: Exception, sep: str, timestamp_col: str | None) -> str:
    """A next step for the usual causes of a table that does not load."""
    msg = str(exc)
    if re.search(r"columns, expected|column names but|fields, expected", msg) or (
            "no column" in msg and re.search(r"columns: \['[^']*[;\t|][^']*'\]", msg)):
        return (f"hint: the rows split into different numbers of fields with --sep {sep!r}; "
                "is the separator ';', '\\t' or 'whitespace'?")
    m = re.search(r"column '([^']+)': '([^']*)' is not a number", msg)
    if m:
        col, cell = m.groups()
        if re.search(r"\d[-:/T]\d", cell) and not timestamp_col:
            return (f"hint: column {col!r} looks like a time: --timestamp-col {col}, or "
                    f"--exclude {col}")
        return f"hint: --exclude {col} if it is not a sensor, or --sensors to list them"
    if "no column" in msg:
        return "hint: column names come from the header row; --no-header if there is none"
    return ""


def split_names(raw: str | None) -> list[str] | None:
    """``a, b ,c`` -> [a, b, c] (spaces around the commas are not part of a name)."""
    if raw is None:
        return None
    return [s.strip() for s in raw.split(",") if s.strip()]
