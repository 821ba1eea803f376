"""`tocsin alarms report`: ISA-18.2 / EEMUA 191 alarm-performance figures from the history."""

from __future__ import annotations

import click

from tocsin.cli.common import Group
from tocsin.cli.history import _with_influx


def _records(jsonl, start, stop, influx):
    """Records from a JSONL file of alert events, else from InfluxDB's alert history."""
    from tocsin.connectors import alarm_history

    if jsonl:
        errors: list[str] = []
        recs = alarm_history.from_jsonl(jsonl, errors)
        for e in errors[:5]:
            click.secho(f"skipped: {e}", fg="yellow", err=True)
        if len(errors) > 5:
            click.secho(f"skipped {len(errors) - 5} more undecodable line(s)", fg="yellow",
                        err=True)
        return recs
    from tocsin.connectors.history import History

    return alarm_history.from_influx(History(*influx), start, stop)


def register(main: click.Group, train: click.Group) -> None:
    @main.group("alarms", cls=Group)
    def alarms() -> None:
        """Alarm management: performance against ISA-18.2 / EEMUA 191."""

    @alarms.command("report")
    @click.option("--from", "start", required=True,
                  help="start: RFC 3339 (2026-03-02T06:00:00Z), 'now' or -24h style")
    @click.option("--to", "stop", default="now", show_default=True, help="end (exclusive)")
    @click.option("--jsonl", type=click.Path(exists=True, dir_okay=False), default=None,
                  help="read alert events (tocsin.alert/1, one per line) from this file "
                       "instead of InfluxDB")
    @click.option("--operators", default=1, show_default=True,
                  help="operator positions sharing these alarms")
    @click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
    @click.option("--plots", "plot_dir", type=click.Path(file_okay=False), default=None,
                  help="write rate.png, bad_actors.png and lists.png into this folder")
    @_with_influx
    def alarms_report(start, stop, jsonl, operators, as_json, plot_dir, influx_url,
                      influx_token, influx_org, influx_bucket):
        """Alarm rate per operator per 10 minutes (average, peak), flood share, top-10 bad
        actors, chattering and stale alarms, priority distribution."""
        import time

        import orjson

        from tocsin.connectors.alarm_history import parse_time
        from tocsin.detectors.alarm_performance import ReportConfig, compute_report

        now = time.time_ns()
        t0, t1 = parse_time(start, now), parse_time(stop, now)
        if t1 <= t0:
            raise click.BadParameter(f"--to ({stop}) must be after --from ({start})")
        recs = _records(jsonl, t0, t1, (influx_url, influx_token, influx_org, influx_bucket))
        rep = compute_report(recs, t0, t1, ReportConfig(operators=operators))
        if plot_dir:
            from tocsin.connectors.alarm_plots import plot_report

            for p in plot_report(rep, plot_dir):
                click.echo(f"plot written to {p}", err=True)
        if as_json:
            click.echo(orjson.dumps({**rep.to_dict(), "verdicts": rep.verdicts()},
                                    option=orjson.OPT_INDENT_2).decode())
        else:
            print_report(rep)


def print_report(rep) -> None:
    from rich.console import Console
    from rich.table import Table

    from tocsin.connectors.alarm_history import iso

    v = rep.verdicts()
    ok = {True: "[green]meets[/]", False: "[red]fails[/]"}
    t = Table(title=f"Alarm performance {iso(rep.start_ts)} .. {iso(rep.stop_ts)} "
                    f"({rep.periods} x 10 min, {rep.operators} operator(s), "
                    f"{rep.annunciated} alarms)")
    for col in ("figure", "value", "target (ISA-18.2 / EEMUA 191)", ""):
        t.add_column(col)
    ps = rep.priority_share
    rows = [
        ("alarms / operator / 10 min (avg)", f"{rep.avg_per_10min:.2f}",
         "~1 acceptable, 2 max manageable", v["avg_per_10min"]),
        ("alarms / operator / 10 min (peak)", f"{rep.peak_per_10min:.0f}", "<= 10",
         v["peak_per_10min"]),
        ("alarms / operator / hour, / day", f"{rep.avg_per_hour:.1f}, {rep.avg_per_day:.0f}",
         "~6 / h, ~150 / day", None),
        ("periods in flood (>10 / 10 min)", f"{rep.flood_share:.1%} ({rep.flood_periods})",
         "< ~1 %", v["flood_share"]),
        ("top-10 bad actors' share", f"{rep.top_share:.1%}", "~1-5 %", v["top10_share"]),
        ("chattering alarms (>=3 / min)", str(len(rep.chattering)), "none", v["chattering"]),
        ("stale alarms (active > 24 h)", str(len(rep.stale)), "< 5", v["stale"]),
        ("priority low / medium / high", f"{ps['low']:.0%} / {ps['medium']:.0%} / "
         f"{ps['high']:.0%}", "~80 / 15 / 5 %", v["priority"]),
    ]
    for name, val, target, verdict in rows:
        t.add_row(name, val, target, "" if verdict is None else ok[verdict])
    c = Console(soft_wrap=True)
    c.print(t)
    if rep.top:
        b = Table(title="Top bad actors")
        for col in ("alarm point", "count", "share"):
            b.add_column(col)
        for d in rep.top:
            b.add_row(d["point"], str(d["count"]), f"{d['share']:.1%}")
        c.print(b)
    for d in rep.chattering:
        c.print(f"chattering: {d['point']}: {d['max_in_window']} within a minute, "
                f"{d['episodes']} episode(s)")
    for d in rep.stale:
        c.print(f"stale: {d['alert_id']} ({d['point']}) active {d['active_s'] / 3600:.1f} h"
                + ("" if d["cleared"] else " and still active"))
