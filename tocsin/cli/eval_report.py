"""The tables and feature windows of `tocsin eval` (kept apart from the commands)."""

from __future__ import annotations

from pathlib import Path

import click

from tocsin.cli.common import console


def _pct(v) -> str:
    return "" if v is None else f"{100 * v:.1f}"


def _cells(m: dict) -> list[str]:
    """precision, recall, F1, false alarms, missed, delay, events, event delay, ROC/PR AUC."""
    if not m.get("labelled", True):
        return ["–"] * 3 + [f"{_pct(m['alarm_rate'])} alarms"] + ["–"] * 6
    fa = _pct(m["false_alarm_rate"])
    if m["fault_rows"] == 0:
        return ["–", "–", "–", fa] + ["–"] * 6
    if m.get("delay_s") is not None:
        delay = f"{m['delay_s']:.0f} s"
    elif m.get("delay_s_median") is not None:
        delay = f"{m['delay_s_median']:.0f} s (median)"
    else:
        delay = "" if m.get("delay_rows") is None else str(m["delay_rows"])
    ev = "" if not m.get("events") else f"{m['events_detected']}/{m['events']}"
    ed = "" if m.get("event_delay_s_median") is None else f"{m['event_delay_s_median']:.0f} s"
    auc = lambda k: "" if m.get(k) is None else f"{m[k]:.3f}"  # noqa: E731
    return [_pct(m["precision"]), _pct(m["recall"]), _pct(m["f1"]), fa,
            _pct(m["missed_alarm_rate"]), delay, ev, ed, auc("roc_auc"), auc("pr_auc")]


def _report(results, title: str, markdown: str | None, extra_cols=()) -> None:
    from rich.table import Table

    cols = ["case", "precision %", "recall %", "F1 %", "false alarms %", "missed %",
            "delay", "events found", "event delay", "ROC AUC", "PR AUC"]
    cols += [c for c, _ in extra_cols]
    rows = [[r.name] + _cells(r.metrics) + [str(fn(r.metrics)) for _, fn in extra_cols]
            for r in results]
    table = Table(title=title)
    for c in cols:
        table.add_column(c)
    for row in rows:
        table.add_row(*row)
    console().print(table)
    if markdown:
        lines = [f"| {' | '.join(cols)} |", "|" + "---|" * len(cols)]
        lines += [f"| {' | '.join(r)} |" for r in rows]
        Path(markdown).write_text("\n".join(lines) + "\n")


def _spec_from(windows: tuple[str, ...], features: str | None, acf: str | None, period,
               table=None, say=None):
    from tocsin.detectors.windows import FeatureSpec, ScaleSpec

    kw = {}
    step = period
    if table is not None and not period:
        from tocsin.offline.table_eval import clock, default_windows

        step = clock(table.ts).period_s
        if not windows and step and abs(step - 1.0) > 1e-9:
            kw["scales"] = [ScaleSpec(name=n, size_s=sz, hop_s=hop)
                            for n, sz, hop in default_windows(step)]
            if say:
                say(f"windows follow the data's period ({step:g} s): "
                    + ", ".join(s.name for s in kw["scales"]) + " (override with --window)")
    if windows:
        scales = []
        for w in windows:
            try:
                name, _, rest = w.partition("=")
                size, _, hop = rest.partition("/")
                scales.append(ScaleSpec(name=name, size_s=float(size),
                                        hop_s=float(hop) if hop else None))
            except ValueError:
                raise click.BadParameter(f"{w!r}: use NAME=SIZE_S[/HOP_S], e.g. 10s=10/1",
                                         param_hint="--window") from None
        kw["scales"] = scales
    if features:
        kw["features"] = [f.strip() for f in features.split(",") if f.strip()]
    if acf is not None:
        kw["acf_lags"] = [int(x) for x in acf.split(",") if x.strip()]
    if period:
        kw["allowed_lateness_s"] = 0.0
    try:
        return FeatureSpec(**kw)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--window/--features") from None


def _line(res) -> str:
    m = res.metrics
    if not m.get("labelled"):
        return f"{res.name}: {m['rows']} rows scored, {_pct(m['alarm_rate'])} % alarm (no labels)"
    return (f"{res.name}: recall {_pct(m['recall'])} %, false alarms "
            f"{_pct(m['false_alarm_rate'])} % on {m['rows']} rows after training")
