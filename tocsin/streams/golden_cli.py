"""The reporting side of `tocsin replay --expect` and `--shadow` (rich tables, exit codes)."""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path

from rich.console import Console
from rich.table import Table

from tocsin.streams.isolated import (
    describe,
    diff_alerts,
    event_counts,
    load_expected,
    run_isolated,
    save_expected,
    shadow_report,
)


def _t(ns: int | None) -> str:
    if ns is None:
        return "-"
    return datetime.fromtimestamp(ns / 1e9, timezone.utc).strftime("%H:%M:%S.%f")[:-3]


def golden(recording: str, broker: str, expect: str, update: bool, plant_config: str | None,
           allow_truncated: bool) -> int:
    console = Console(soft_wrap=True)
    console.print(f"isolated run of {recording} ...")
    run = run_isolated(recording, broker, plant_config=plant_config,
                       allow_truncated=allow_truncated)
    console.print(f"  replayed {run.replayed:,} messages on prefix {run.prefix} in "
                  f"{run.seconds:.1f} s; {len(run.alerts)} alert events "
                  f"{dict(event_counts(run.alerts))}")
    if update or not Path(expect).exists():
        if not update:
            console.print(f"[yellow]{expect} does not exist; writing it (review it, then "
                          "commit it)[/]")
        save_expected(expect, run.alerts)
        console.print(f"wrote {len(run.alerts)} expected alert events to {expect}")
        return 0
    d = diff_alerts(load_expected(expect), run.alerts)
    if d.same:
        console.print(f"[green]OK[/]: {len(run.alerts)} alert events match {expect}")
        return 0
    console.print(f"[red]DIFFERENT[/] from {expect}: {len(d.missing)} missing, "
                  f"{len(d.extra)} extra, {len(d.changed)} changed")
    for x in d.missing:
        console.print(f"  [red]- missing[/] {describe(x)}", highlight=False)
    for x in d.extra:
        console.print(f"  [yellow]+ extra  [/] {describe(x)}", highlight=False)
    for a, b in d.changed:
        fields = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
        console.print(f"  [magenta]~ changed[/] {a['alert_id']} {a['event']}: " + ", ".join(
            f"{k} {a.get(k)!r} -> {b.get(k)!r}" for k in fields), highlight=False)
    return 1


def shadow_run(recording: str, broker: str, plant_a: str, plant_b: str,
               allow_truncated: bool) -> int:
    # wide enough that the table is not cut when the output goes to a file or a pipe
    console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160)
    runs = []
    for cfg in (plant_a, plant_b):
        console.print(f"isolated run with {cfg} ...")
        runs.append(run_isolated(recording, broker, plant_config=cfg,
                                 allow_truncated=allow_truncated))
    a, b = runs[0].alerts, runs[1].alerts
    table = Table(title=f"shadow run of {recording}: A={plant_a}  B={plant_b}")
    for col in ("asset", "tag", "rule", "raised A", "raised B", "first A", "first B", "B-A s"):
        table.add_column(col)
    for asset, tag, rule, na, nb, fa, fb in shadow_report(a, b):
        delta = f"{(fb - fa) / 1e9:+.1f}" if fa is not None and fb is not None else "-"
        style = "" if (na, fa) == (nb, fb) else "yellow"
        table.add_row(asset, tag, rule, str(na), str(nb), _t(fa), _t(fb), delta, style=style)
    console.print(table)
    console.print(f"A: {len(a)} events {dict(event_counts(a))}; "
                  f"B: {len(b)} events {dict(event_counts(b))}")
    d = diff_alerts(a, b)
    console.print("identical alerts" if d.same else
                  f"{len(d.missing)} only in A, {len(d.extra)} only in B, "
                  f"{len(d.changed)} changed")
    return 0
