"""The `tocsin` command line (click): one module per noun, registered here.

Each module defines its commands at import time but imports heavy libraries (faust, torch,
asyncua, pynetdicom) only inside the commands, so `tocsin --help` stays fast.
"""

from __future__ import annotations

import logging
import os

import click

from tocsin.cli import (
    alarms,
    alerts,
    connect,
    console,
    demo,
    fraud,
    fusion,
    history,
    imaging,
    payments,
    record,
    scores,
    secrets,
    services,
    sim,
    train,
    worker,
)
from tocsin.cli.common import Group


@click.group(cls=Group)
@click.version_option(package_name="tocsin")
def main() -> None:
    """Tocsin: streaming alarms from plants and payment switches, on Kafka."""
    logging.basicConfig(level=os.environ.get("TOCSIN_LOG_LEVEL", "INFO").upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # asyncua logs every connect step at INFO and security notes at WARNING
    logging.getLogger("asyncua").setLevel(logging.ERROR)
    logging.getLogger("pymodbus").setLevel(logging.WARNING)


@click.group(cls=Group, invoke_without_command=True)
@click.pass_context
def train_group(ctx) -> None:
    """Train models into versioned artifact folders (needs the `train` extra: torch).

    Without a subcommand: `train plant` on its defaults (simulated normal operation).
    """
    if ctx.invoked_subcommand is None:
        ctx.invoke(train_group.commands["plant"])


main.add_command(train_group, "train")
for _module in (services, worker, sim, connect, scores, history, record, demo, secrets):
    for _cmd in _module.COMMANDS:
        main.add_command(_cmd)
# domain modules with groups of their own and `train` subcommands
for _module in (alerts, fusion, train, payments, fraud, imaging, alarms, console):
    _module.register(main, train_group)
