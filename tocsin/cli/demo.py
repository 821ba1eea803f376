"""`tocsin` CLI: The plant demo."""

from __future__ import annotations

import asyncio
import signal
import sys

import click

from tocsin.cli.common import prefix_opt


@click.command()
@click.option("--duration", default=0.0, help="stop after this many seconds (0: until Ctrl-C)")
@click.option("--fault", default="over_temperature", show_default=True,
              help="fault to inject on pump-1")
@click.option("--fault-after", type=float, default=None,
              help="seconds before the fault [default: 15, or 90 once models are trained]")
@click.option("--kafka-port", default=9092, show_default=True)
@click.option("--opcua-port", default=4840, show_default=True)
@click.option("--modbus-port", default=5020, show_default=True,
              help="first of three ports (one Modbus server per asset)")
@click.option("--protocol", default="opcua", show_default=True,
              type=click.Choice(["opcua", "modbus"]), help="how the plant is read")
@click.option("--asset", default="pump-1", show_default=True, help="asset of the fault")
@click.option("--broker", default=None, help="use this Kafka instead of starting one")
@click.option("--history/--no-history", default=True, show_default=True,
              help="write readings and alerts to a local InfluxDB (built on first use)")
@click.option("--train/--no-train", "train_missing", default=True, show_default=True,
              help="train the anomaly models and the fusion network first when none exist "
                   "(a few minutes, once)")
@click.option("--console-port", type=int, default=None,
              help="also serve the web console on this port (user demo, password demo)")
@prefix_opt
@click.pass_context
def demo(ctx, duration, fault, fault_after, kafka_port, opcua_port, modbus_port, protocol, asset,
         broker, history, train_missing, console_port, prefix) -> None:
    """Start everything on embedded defaults and show the alerts and anomaly scores of an
    injected fault.

    Exits 0 when at least one alert was raised, 1 otherwise.
    """
    from tocsin.connectors.simulator.plant import DEFAULT_ASSETS, FAULTS
    from tocsin.demo.plant import run_demo
    from tocsin.models import artifacts

    if fault not in FAULTS or DEFAULT_ASSETS.get(asset) not in FAULTS[fault]:
        ok = sorted(f for f, by in FAULTS.items() if DEFAULT_ASSETS.get(asset) in by)
        raise click.BadParameter(f"{fault!r} on {asset!r}; faults of {asset}: {ok}",
                                 param_hint="--fault/--asset")
    train = ctx.find_root().command.commands["train"]
    if train_missing and not artifacts.asset_types(artifacts.default_root()):
        click.secho("no anomaly models yet: training them on simulated normal operation "
                    "first (once; `tocsin train` does it by itself)", bold=True)
        ctx.invoke(train.commands["plant"])
    if train_missing and "fusion" in train.commands:
        from tocsin.models import fusion_store

        if fusion_store.newest(artifacts.default_root()) is None:
            click.secho("no fusion network yet: learning it from simulated fault runs scored "
                        "by those models (once; `tocsin train fusion`)", bold=True)
            ctx.invoke(train.commands["fusion"])
    sys.exit(run_demo(duration=duration, fault=fault, fault_after=fault_after,
                      kafka_port=kafka_port, opcua_port=opcua_port, broker=broker,
                      prefix=prefix, protocol=protocol, modbus_port=modbus_port,
                      asset=asset, history=history, console_port=console_port))


async def _until_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


COMMANDS = (demo,)
