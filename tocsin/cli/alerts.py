"""`tocsin alerts tail|list|ack`: watch, list and acknowledge alerts (the fusion commands are
in cli/fusion.py). Registered by tocsin/cli/__init__.py; heavy imports happen inside commands.
"""

from __future__ import annotations

import time

import click

from tocsin.cli.common import (
    Group,
    broker_opt,
    prefix_opt,
    worker_settings,
)

_SEV = click.Choice(["info", "warning", "critical"])
_FAULT_TYPES = ["mechanical", "electrical", "hydraulic", "thermal"]


def _filter_opts(f):
    f = click.option("--asset", "assets", multiple=True, help="only this asset (repeat)")(f)
    f = click.option("--severity", type=_SEV, default=None, help="this severity or worse")(f)
    f = click.option("--fault-type", "fault_types", multiple=True,
                     type=click.Choice(_FAULT_TYPES),
                     help="only fused alerts whose most probable fault is this (repeat)")(f)
    return click.option("--kind", "kinds", multiple=True, type=click.Choice(["threshold",
                                                                             "fusion"]))(f)


def _make_filter(assets, severity, fault_types, kinds):
    from tocsin.streams.tail import AlertFilter

    return AlertFilter(frozenset(assets), severity, frozenset(fault_types), frozenset(kinds))


@click.group(cls=Group)
def alerts() -> None:
    """Watch, list and acknowledge alerts."""


def register(main: click.Group, train: click.Group) -> None:
    main.add_command(alerts)

    @click.command("tail")
    @broker_opt
    @prefix_opt
    @click.option("--from-beginning", is_flag=True)
    @_filter_opts
    def alerts_tail(broker, prefix, from_beginning, assets, severity, fault_types, kinds):
        """Print alert events as they arrive until Ctrl-C (optionally filtered)."""
        from tocsin.contracts import topics
        from tocsin.streams.tail import tail_alerts

        s = worker_settings(broker, prefix)
        tail_alerts(s.broker, s.topic(topics.ALERTS), from_beginning=from_beginning,
                    only=_make_filter(assets, severity, fault_types, kinds))

    alerts.add_command(alerts_tail)  # replaces the unfiltered `tail` of tocsin/cli.py

    @alerts.command("list")
    @broker_opt
    @prefix_opt
    @_filter_opts
    @click.option("--json", "as_json", is_flag=True, help="one JSON alert event per line")
    def alerts_list(broker, prefix, assets, severity, fault_types, kinds, as_json):
        """The open alerts (from the compacted plant.alerts.open topic)."""
        from tocsin.contracts import topics
        from tocsin.streams.open_alerts import read_open_alerts

        s = worker_settings(broker, prefix)
        found, errors = read_open_alerts(s.broker, s.topic(topics.ALERTS_OPEN))
        keep = _make_filter(assets, severity, fault_types, kinds)
        rows = sorted((a for a in found.values() if keep(a)), key=lambda a: a.opened_ts)
        for e in errors:
            click.secho(f"undecodable: {e}", fg="red", err=True)
        if as_json:
            for a in rows:
                click.echo(a.encode().decode())
            return
        _print_open(rows)

    @alerts.command("ack")
    @click.argument("alert_id")
    @click.option("--user", default=None, help="who acknowledges (default: $USER)")
    @click.option("--note", default="")
    @click.option("--force", is_flag=True, help="send even if the alert is not listed open")
    @click.option("--wait", "wait_s", default=10.0, show_default=True,
                  help="seconds to wait for the 'acknowledged' event (0: do not wait)")
    @broker_opt
    @prefix_opt
    def alerts_ack(alert_id, user, note, force, wait_s, broker, prefix):
        """Acknowledge an open alert: sends an ack to plant.alerts.acks; the fusion worker
        answers with an 'acknowledged' event."""
        import getpass

        from tocsin.contracts import topics
        from tocsin.contracts.acks import Ack
        from tocsin.streams.open_alerts import read_open_alerts, send_ack

        s = worker_settings(broker, prefix)
        if not force:
            found, _ = read_open_alerts(s.broker, s.topic(topics.ALERTS_OPEN))
            if alert_id not in found:
                raise click.ClickException(f"{alert_id} is not an open alert (see `tocsin "
                                           f"alerts list`; --force sends the ack anyway)")
            if found[alert_id].details.get("acked_by"):
                click.echo(f"{alert_id} already acknowledged by "
                           f"{found[alert_id].details['acked_by']}")
                return
        user = user or getpass.getuser()
        send_ack(s.broker, s.topic(topics.ALERT_ACKS), Ack(alert_id, user, time.time_ns(),
                                                           note))
        click.echo(f"ack sent for {alert_id} by {user}")
        if wait_s > 0:
            if _wait_acknowledged(s.broker, s.topic(topics.ALERTS_OPEN), alert_id, wait_s):
                click.echo(f"{alert_id} acknowledged")
            else:
                raise click.ClickException(f"no 'acknowledged' event for {alert_id} within "
                                           f"{wait_s:.0f}s: is `tocsin fusion worker` running?")

def _wait_acknowledged(bootstrap: str, topic: str, alert_id: str, timeout: float) -> bool:
    from tocsin.streams.open_alerts import read_open_alerts

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found, _ = read_open_alerts(bootstrap, topic)
        a = found.get(alert_id)
        if a is None or a.details.get("acked_by"):
            return True  # acknowledged (or already cleared)
        time.sleep(0.5)
    return False


def _print_open(rows) -> None:
    from datetime import datetime, timezone

    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"{len(rows)} open alert(s)")
    for col in ("opened (UTC)", "alert id", "asset", "kind", "severity", "fault / rule",
                "P", "acked by", "message"):
        t.add_column(col)
    for a in rows:
        when = datetime.fromtimestamp(a.opened_ts / 1e9, timezone.utc).strftime("%m-%d %H:%M:%S")
        t.add_row(when, a.alert_id, a.asset, a.kind, a.severity.value, a.rule,
                  f"{a.value:.2f}" if a.kind == "fusion" else "",
                  str(a.details.get("acked_by") or ""), a.message)
    Console(soft_wrap=True).print(t)
