"""One reporting convention for every benchmark (issue #20).

A benchmark records per-round figures for each contender, then `Report.finish()` prints the
medians, each contender's ratio to the peer measured in the same run, one verdict line per
target (``VERDICT PASS|FAIL|INFO ...`` with the numbers), and writes a JSON result
(``benchmarks/results/<name>.json``: date, git commit, machine load, parameters, per-round
figures, medians, verdicts) so that a later run can be compared with ``--compare old.json``.

    rep = Report("connectors", vars(args))
    for r in range(rounds):
        rep.add("modbus bare", samples_per_s=...)
        rep.add("modbus tocsin", samples_per_s=...)
    rep.check("Modbus connector vs bare pymodbus", "samples_per_s", "modbus tocsin",
              peer="modbus bare", op=">=", target=0.8)
    rep.finish(args)

Why medians and ratios: the development machine has 2 shared cores, so absolute figures move
with the load; a ratio between contenders run side by side in one invocation moves much less.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import statistics
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parent.parent
OUT = "<result queue>"
OPS = {">=": lambda v, t: v >= t, "<=": lambda v, t: v <= t}


def add_arguments(ap: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options every benchmark shares: where the JSON goes and what to compare against."""
    ap.add_argument("--compare", type=Path, metavar="OLD.json",
                    help="print this run next to an earlier JSON result")
    ap.add_argument("--json", type=Path, metavar="PATH",
                    help="where to write the JSON result (default benchmarks/results/NAME.json)")
    ap.add_argument("--no-json", action="store_true", help="do not write a JSON result")
    ap.add_argument("--baseline-tree", type=Path, metavar="DIR",
                    help="also run Tocsin's contender from this source tree (an earlier "
                         "commit, e.g. `git archive main | tar -x -C DIR`), where supported")
    return ap


@dataclass
class Check:
    """A target: the median `metric` of `contender` (divided by the peer's, when there is a
    peer) compared with `target`. Without `op`/`target` it is printed as information only."""

    label: str
    metric: str
    contender: str
    peer: str | None = None
    op: str | None = None
    target: float | None = None
    value: float | None = None
    passed: bool | None = None


@dataclass
class Report:
    name: str
    params: dict[str, Any] = field(default_factory=dict)
    rounds: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    load_start: tuple[float, ...] = field(default_factory=lambda: os.getloadavg())

    def __post_init__(self) -> None:
        self.params = {k: _jsonable(v) for k, v in self.params.items()
                       if k not in ("compare", "json", "no_json", "baseline_tree")}

    # ------------------------------------------------------------------ recording
    def add(self, contender: str, **figures: float) -> None:
        """Record one round of `contender` (the 1-minute load average is kept with it)."""
        row = {k: float(v) for k, v in figures.items()}
        row["load1"] = os.getloadavg()[0]
        self.rounds.setdefault(contender, []).append(row)

    def note(self, text: str) -> None:
        self.notes.append(text)

    def median(self, contender: str, metric: str) -> float:
        vals = [r[metric] for r in self.rounds.get(contender, []) if metric in r]
        if not vals:
            raise KeyError(f"no rounds of {contender!r} with {metric!r}")
        return float(statistics.median(vals))

    def medians(self) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for c, rows in self.rounds.items():
            keys = sorted({k for r in rows for k in r})
            out[c] = {k: self.median(c, k) for k in keys}
        return out

    def check(self, label: str, metric: str, contender: str, peer: str | None = None,
              op: str | None = None, target: float | None = None) -> Check:
        """Declare a ratio (or, without a peer, an absolute figure) and optionally its target."""
        if op is not None and op not in OPS:
            raise ValueError(f"op must be one of {sorted(OPS)}")
        c = Check(label, metric, contender, peer, op, target)
        self.checks.append(c)
        return c

    # ------------------------------------------------------------------ output
    def _evaluate(self) -> None:
        for c in self.checks:
            try:
                v = self.median(c.contender, c.metric)
                if c.peer is not None:
                    v = v / self.median(c.peer, c.metric)
            except (KeyError, ZeroDivisionError):
                c.value, c.passed = None, None
                continue
            c.value = v
            c.passed = None if c.op is None else OPS[c.op](v, c.target)

    def verdict_lines(self) -> list[str]:
        self._evaluate()
        lines = []
        for c in self.checks:
            if c.value is None:
                lines.append(f"VERDICT MISSING {self.name}: {c.label}: no figures")
                continue
            if c.peer is not None:
                num, den = self.median(c.contender, c.metric), self.median(c.peer, c.metric)
                fig = (f"{c.contender}/{c.peer} {c.metric} {c.value:.2f}x "
                       f"({_fmt(num)} vs {_fmt(den)})")
                tgt = f" {c.op} {c.target:g}x" if c.op else ""
            else:
                fig = f"{c.contender} {c.metric} {_fmt(c.value)}"
                tgt = f" {c.op} {_fmt(c.target)}" if c.op else ""
            word = "INFO" if c.passed is None else ("PASS" if c.passed else "FAIL")
            lines.append(f"VERDICT {word} {self.name}: {c.label}: {fig}{tgt}")
        return lines

    def summary(self) -> str:
        n = max((len(v) for v in self.rounds.values()), default=0)
        out = [f"\n{self.name}: medians of {n} round(s); load average at start "
               f"{_load(self.load_start)}, now {_load(os.getloadavg())}"]
        for c, med in self.medians().items():
            figs = ", ".join(f"{k} {_fmt(v)}" for k, v in med.items() if k != "load1")
            out.append(f"  {c:<28} {figs}")
        out.extend(f"  note: {t}" for t in self.notes)
        out.extend(self.verdict_lines())
        return "\n".join(out)

    def to_json(self) -> dict[str, Any]:
        self._evaluate()
        return {
            "name": self.name,
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "git": _git(),
            "machine": {"loadavg_start": list(self.load_start),
                        "loadavg_end": list(os.getloadavg()), "cpus": os.cpu_count(),
                        "python": sys.version.split()[0], "platform": platform.platform()},
            "params": self.params,
            "rounds": self.rounds,
            "medians": self.medians(),
            "checks": [asdict(c) for c in self.checks],
            "notes": self.notes,
        }

    def write(self, path: Path | None = None) -> Path:
        path = path or RESULTS / f"{self.name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=1) + "\n")
        return path

    def finish(self, args: argparse.Namespace | None = None) -> dict[str, Any]:
        """Print summary and verdicts, write the JSON, print the comparison if asked."""
        print(self.summary(), flush=True)
        data = self.to_json()
        if args is not None and getattr(args, "compare", None):
            print(compare(json.loads(Path(args.compare).read_text()), data))
        if not (args is not None and getattr(args, "no_json", False)):
            p = self.write(getattr(args, "json", None) if args is not None else None)
            print(f"result written to {p}")
        return data


def run_in_tree(tree: Path, module: str, func: str, *args: Any, timeout: float = 900) -> Any:
    """Run ``module.func(*args)`` from another source tree (for instance ``git archive
    main | tar -x -C /tmp/base``) in a fresh interpreter and return what it put on its
    result queue, passed where `args` holds :data:`OUT` (else last): the before/after of a
    change measured side by side in one invocation. Arguments and result travel as JSON."""
    if OUT not in args:
        args = (*args, OUT)
    code = ("import json, queue, sys\n"
            f"from {module} import {func} as f\n"
            "q = queue.Queue()\n"
            f"f(*[q if a == {OUT!r} else a for a in json.loads(sys.argv[1])])\n"
            "print('\\nRESULT ' + json.dumps(q.get()))\n")
    p = subprocess.run([sys.executable, "-c", code, json.dumps(list(args))], cwd=tree,
                       capture_output=True, text=True, timeout=timeout)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
    if p.returncode or not lines:
        raise RuntimeError(f"baseline in {tree} failed ({p.returncode}): {p.stderr[-2000:]}")
    return json.loads(lines[-1][7:])


def compare(old: dict[str, Any], new: dict[str, Any]) -> str:
    """Old vs new medians and verdicts, side by side."""
    out = [f"\ncompare {old.get('name')}: old {old.get('date')} "
           f"({old.get('git', {}).get('commit', '?')[:10]}, load "
           f"{_load(old.get('machine', {}).get('loadavg_start', []))}) -> new {new.get('date')} "
           f"({new.get('git', {}).get('commit', '?')[:10]}, load "
           f"{_load(new.get('machine', {}).get('loadavg_start', []))})"]
    om, nm = old.get("medians", {}), new.get("medians", {})
    for c in nm:
        for k, v in nm[c].items():
            if k == "load1" or k not in om.get(c, {}):
                continue
            o = om[c][k]
            ch = f"{(v / o - 1) * 100:+.0f}%" if o else "n/a"
            out.append(f"  {c:<28} {k:<20} {_fmt(o):>12} -> {_fmt(v):>12} ({ch})")
    oc = {c["label"]: c for c in old.get("checks", [])}
    for c in new.get("checks", []):
        o = oc.get(c["label"])
        if o is None or o.get("value") is None or c.get("value") is None:
            continue
        out.append(f"  check {c['label']}: {_fmt(o['value'])} -> {_fmt(c['value'])} "
                   f"({_word(o)} -> {_word(c)})")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    """`python -m benchmarks.report OLD.json NEW.json`: compare two stored results."""
    ap = argparse.ArgumentParser(description="compare two benchmark JSON results")
    ap.add_argument("old", type=Path)
    ap.add_argument("new", type=Path)
    a = ap.parse_args(argv)
    print(compare(json.loads(a.old.read_text()), json.loads(a.new.read_text())))


def _word(c: dict[str, Any]) -> str:
    p = c.get("passed")
    return "INFO" if p is None else ("PASS" if p else "FAIL")


def _fmt(v: float | None) -> str:
    if v is None:
        return "n/a"
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 10:
        return f"{v:.1f}"
    return f"{v:.3g}"


def _load(la) -> str:
    return "/".join(f"{x:.2f}" for x in la) if la else "?"


def _jsonable(v: Any) -> Any:
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    return str(v)


def _git() -> dict[str, Any]:
    def run(*a: str) -> str:
        try:
            return subprocess.run(["git", "-C", str(ROOT), *a], capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    return {"commit": run("rev-parse", "HEAD"), "branch": run("rev-parse", "--abbrev-ref", "HEAD"),
            "dirty": bool(run("status", "--porcelain", "--untracked-files=no"))}


if __name__ == "__main__":
    main()
