"""`tocsin console` (the web console) and `tocsin console add-user`."""

from __future__ import annotations

import click

from tocsin.cli.common import Group, broker_opt, prefix_opt, worker_settings
from tocsin.cli.history import _with_influx


def register(main: click.Group, train: click.Group) -> None:
    @main.group("console", cls=Group, invoke_without_command=True)
    @broker_opt
    @prefix_opt
    @click.option("--host", default="127.0.0.1", show_default=True)
    @click.option("--port", default=8600, show_default=True)
    @click.option("--users", "users_file", envvar="TOCSIN_CONSOLE_USERS",
                  default="console-users.yaml", show_default=True,
                  help="users file (scrypt hashes; `tocsin console add-user`)")
    @click.option("--alarms-config", envvar="TOCSIN_ALARMS_CONFIG", default=None,
                  type=click.Path(exists=True, dir_okay=False),
                  help="YAML: ISA-18.2 states (latched points, suppression, shelving limit) "
                       "and notifications (receivers, routes)")
    @click.option("--proxy-header", default=None,
                  help="trust this header (e.g. X-Forwarded-User) from --trusted-proxy")
    @click.option("--proxy-role-header", default=None, help="e.g. X-Forwarded-Role")
    @click.option("--trusted-proxy", "trusted", multiple=True, default=("127.0.0.1", "::1"),
                  show_default=True)
    @_with_influx
    @click.option("--replay-clock", is_flag=True,
                  help="shelving expires on the alerts' event time only (replays of old data)")
    @click.pass_context
    def console(ctx, broker, prefix, host, port, users_file, alarms_config, proxy_header,
                proxy_role_header, trusted, influx_url, influx_token, influx_org,
                influx_bucket, replay_clock):
        """Serve the alarm console (live alarms, ack/shelve/comment, assets, fraud review,
        alarm performance) and run the alarm-state service and notifications."""
        ctx.ensure_object(dict)
        ctx.obj["users_file"] = users_file
        if ctx.invoked_subcommand is not None:
            return
        from tocsin.console.run import ConsoleOptions, run

        s = worker_settings(broker, prefix)
        run(ConsoleOptions(s.broker, s.topic_prefix, host, port, users_file, alarms_config,
                           proxy_header, proxy_role_header, tuple(trusted),
                           (influx_url, influx_token, influx_org, influx_bucket),
                           wall_clock=not replay_clock))

    @console.command("add-user")
    @click.argument("name")
    @click.option("--role", type=click.Choice(["viewer", "operator", "engineer"]),
                  required=True)
    @click.password_option(envvar="TOCSIN_CONSOLE_PASSWORD")
    @click.pass_context
    def add_user(ctx, name, role, password):
        """Add or update a console user (the password is stored as a scrypt hash)."""
        from tocsin.console.auth import add_user as add

        add(ctx.obj["users_file"], name, role, password)
        click.echo(f"{name} ({role}) saved in {ctx.obj['users_file']}")
