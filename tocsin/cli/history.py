"""`tocsin` CLI: History in InfluxDB: the sink and the queries."""

from __future__ import annotations

import click

from tocsin.cli.common import (
    Group,
    broker_opt,
    fmt_opt,
    prefix_opt,
    stop_flag,
    worker_settings,
)

_influx_opts = [
    click.option("--influx-url", envvar="TOCSIN_INFLUX_URL", default="http://127.0.0.1:8086",
                 show_default=True),
    click.option("--influx-token", envvar="TOCSIN_INFLUX_TOKEN", default=None,
                 help="default: TOCSIN_INFLUX_TOKEN_FILE, else this install's token file"),
    click.option("--influx-org", envvar="TOCSIN_INFLUX_ORG", default="tocsin", show_default=True),
    click.option("--influx-bucket", envvar="TOCSIN_INFLUX_BUCKET", default="tocsin",
                 show_default=True),
]


def _with_influx(f):
    for opt in reversed(_influx_opts):
        f = opt(f)
    return f


@click.group(cls=Group)
def sink() -> None:
    """Write streams into external stores."""


@sink.command("influx")
@broker_opt
@prefix_opt
@_with_influx
@click.option("--batch", default=5000, show_default=True, help="points per write")
@click.option("--flush", "flush_s", default=1.0, show_default=True, help="max seconds a point waits")
def sink_influx(broker, prefix, influx_url, influx_token, influx_org, influx_bucket, batch,
                flush_s) -> None:
    """Write readings and alerts into InfluxDB until Ctrl-C (offsets committed only after
    InfluxDB acknowledged the points)."""
    from tocsin.connectors.influx_sink import InfluxHistorySink

    s = worker_settings(broker, prefix, None)
    from tocsin.contracts.eventtime import TimeGuard

    sk = InfluxHistorySink(s.broker, s.topic_prefix, influx_url, influx_token, influx_org,
                           influx_bucket, batch_lines=batch, flush_s=flush_s,
                           guard=TimeGuard(s.max_future_skew_s, s.min_event_year),
                           deadletter_max_payload=s.deadletter_max_payload,
                           report_interval_s=s.report_interval_s)
    from tocsin.connectors import health

    health.configure("history-sink")
    health.serve(s.metrics_port, s.metrics_host)
    click.echo(f"history sink: {s.broker} {s.topic_prefix}* -> {influx_url} bucket {influx_bucket}")
    sk.run(stop=stop_flag())
    st = sk.stats
    click.echo(f"history sink: {st.points:,} points in {st.batches:,} batches, {st.retries} "
               f"retries, {st.rejected} rejected, {st.deadlettered} dead-lettered")


@click.group(cls=Group)
def history() -> None:
    """Query the history in InfluxDB."""


def _print_rows(rows: list[dict], fmt: str) -> None:
    import csv
    import io

    import orjson

    if fmt == "json":
        click.echo(orjson.dumps(rows, option=orjson.OPT_INDENT_2 | orjson.OPT_NAIVE_UTC,
                                default=str).decode())
        return
    if not rows:
        click.echo("(no rows)")
        return
    cols = list(rows[0])
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(cols)
        for r in rows:
            w.writerow([r[c].isoformat() if hasattr(r[c], "isoformat") else r[c] for c in cols])
        click.echo(buf.getvalue().rstrip())
        return
    from rich.console import Console
    from rich.table import Table

    t = Table()
    for c in cols:
        t.add_column(c)
    for r in rows:
        t.add_row(*[(f"{r[c]:.6g}" if isinstance(r[c], float) else str(r[c])) for c in cols])
    Console().print(t)




@history.command("readings")
@click.option("--asset", required=True)
@click.option("--tag", "tags", multiple=True, help="tag name (repeat; default: all)")
@click.option("--start", default="-1h", show_default=True, help="-1h style or RFC 3339")
@click.option("--stop", default="now()", show_default=True)
@click.option("--every", default=None, help="aggregate window, e.g. 10s, 1m")
@click.option("--fn", default="mean", show_default=True, help="aggregate function")
@click.option("--rollup", is_flag=True, help="read the 1-minute rollup bucket")
@click.option("--plot", type=click.Path(dir_okay=False), default=None, help="also a PNG")
@fmt_opt
@_with_influx
def history_readings(asset, tags, start, stop, every, fn, rollup, plot, fmt, influx_url,
                     influx_token, influx_org, influx_bucket) -> None:
    """Readings of one asset over a time range (optionally aggregated)."""
    from tocsin.connectors.history import History

    h = History(influx_url, influx_token, influx_org, influx_bucket)
    rows = h.readings(asset, list(tags) or None, start=start, stop=stop, every=every, fn=fn,
                      rollup=rollup)
    if plot:
        from tocsin.connectors.history_plot import plot_readings

        plot_readings(rows, plot, title=f"{asset} {start}..{stop}")
        click.echo(f"plot written to {plot}", err=True)
    _print_rows(rows, fmt)


@history.command("alerts")
@click.option("--asset", default=None)
@click.option("--start", default="-24h", show_default=True)
@click.option("--stop", default="now()", show_default=True)
@fmt_opt
@_with_influx
def history_alerts(asset, start, stop, fmt, influx_url, influx_token, influx_org,
                   influx_bucket) -> None:
    """Alert events over a time range."""
    from tocsin.connectors.history import History

    h = History(influx_url, influx_token, influx_org, influx_bucket)
    _print_rows(h.alerts(asset, start=start, stop=stop), fmt)


@history.command("around")
@click.argument("alert_id")
@click.option("--before", default="2m", show_default=True)
@click.option("--after", default="1m", show_default=True)
@click.option("--plot", type=click.Path(dir_okay=False), default=None)
@fmt_opt
@_with_influx
def history_around(alert_id, before, after, plot, fmt, influx_url, influx_token, influx_org,
                   influx_bucket) -> None:
    """The raw readings around an alert, with its events: one call."""
    from tocsin.connectors.history import History

    h = History(influx_url, influx_token, influx_org, influx_bucket)
    w = h.around_alert(alert_id, before=before, after=after)
    if plot:
        from tocsin.connectors.history_plot import plot_readings

        plot_readings(w["readings"], plot, title=f"{w['asset']} around {alert_id}",
                      events=w["events"])
        click.echo(f"plot written to {plot}", err=True)
    click.echo(f"{len(w['events'])} events of {alert_id} ({w['asset']}):", err=True)
    _print_rows(w["events"], fmt)
    _print_rows(w["readings"], fmt)


COMMANDS = (sink, history,)
