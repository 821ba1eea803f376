"""`tocsin` CLI: Connectors: read PLCs over OPC UA or Modbus/TCP and publish frames to plant.readings."""

from __future__ import annotations

import asyncio
import signal

import click

from tocsin.cli.common import Group, broker_opt, prefix_opt, worker_settings
from tocsin.connectors import registry
from tocsin.contracts import topics


@click.group(cls=Group)
def connect() -> None:
    """Run a connector: read a PLC and publish frames to plant.readings."""


def _spool_opts(f):
    f = click.option("--spool-dir", default=None, type=click.Path(file_okay=False),
                     help="store-and-forward queue (default: $TOCSIN_CACHE/spool/NAME)")(f)
    f = click.option("--spool-max-mb", default=1024, show_default=True,
                     help="size limit of the on-disk queue")(f)
    f = click.option("--spool-policy", default="drop_oldest", show_default=True,
                     type=click.Choice(["drop_oldest", "reject"]),
                     help="when the queue is full: drop its oldest frames, or the new ones")(f)
    return click.option("--no-spool", is_flag=True,
                        help="no store-and-forward: frames go straight to the producer")(f)


def _run_connector(source, name, broker, prefix, spool_dir, spool_max_mb, spool_policy,
                   no_spool) -> None:
    from tocsin.connectors.base import run_source
    from tocsin.connectors.kafka_sink import KafkaFrameSink
    from tocsin.contracts import topics
    from tocsin.services.kafka import cache_dir

    s = worker_settings(broker, prefix, None)
    # default spool per connector and target topic: frames are never forwarded elsewhere
    spool = None if no_spool else (spool_dir or
                                   cache_dir() / "spool" / f"{name}--{s.topic(topics.READINGS)}")
    sink = KafkaFrameSink(s.broker, s.topic(topics.READINGS), spool_dir=spool,
                          spool_max_bytes=spool_max_mb << 20, spool_policy=spool_policy)
    if spool is not None:
        click.echo(f"connector {name}: store-and-forward spool {spool} "
                   f"({sink.spool.pending} frames waiting from an earlier run)")

    from tocsin.connectors import health

    health.configure(f"connector-{name}")
    health.HEALTH.add_check("kafka", lambda: sink.delivered > 0 or
                            "no frame acknowledged by Kafka yet")
    health.serve(s.metrics_port, s.metrics_host)

    async def run():
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        beat = asyncio.create_task(health.heartbeat())
        try:
            n = await run_source(source, sink, stop)
        finally:
            beat.cancel()
        click.echo(f"connector: read {n} frames ({sink.delivered} acknowledged by Kafka)")

    asyncio.run(run())


def _plant_command(spec) -> click.Command:
    """`tocsin connect NAME` for a registered source of readings frames."""

    @click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
                  default=None, help=f"connector YAML (default: {spec.sample.name}, the "
                                     "simulated plant's)")
    @broker_opt
    @prefix_opt
    @_spool_opts
    def run(config_path, broker, prefix, spool_dir, spool_max_mb, spool_policy,
            no_spool) -> None:
        cfg = spec.load_config(config_path)
        _run_connector(spec.create(cfg), f"{spec.name}-{cfg.name}", broker, prefix, spool_dir,
                       spool_max_mb, spool_policy, no_spool)

    run.__doc__ = f"{spec.summary[0].upper()}{spec.summary[1:]} and publish frames until Ctrl-C."
    return connect.command(spec.name)(run)


for _spec in registry.for_topic(topics.READINGS):
    _plant_command(_spec)


@connect.command("list")
def connect_list() -> None:
    """Every registered source: what it reads, its records, topic, sample config, command."""
    for s in registry.SOURCES.values():
        click.echo(f"{s.name:15} {s.summary}\n{'':15} {s.record.rpartition(':')[2]} -> "
                   f"{s.topic}; sample {s.sample}; run with `{s.command}`")


@click.group(cls=Group)
def modbus() -> None:
    """Modbus tools."""


@modbus.command("probe")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=502, show_default=True)
@click.option("--unit", default=1, show_default=True)
@click.option("--table", default="holding", type=click.Choice(["holding", "input"]))
@click.option("--address", type=int, default=None, help="first register (ad-hoc mode)")
@click.option("--words", default=4, show_default=True, help="registers to read (ad-hoc mode)")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
              default=None, help="probe every register tag of this connector config")
def modbus_probe(host, port, unit, table, address, words, config_path) -> None:
    """Show raw registers decoded under every type and byte/word order."""
    from rich.console import Console
    from rich.table import Table

    from tocsin.connectors.modbus import load_modbus_config
    from tocsin.connectors.modbus_probe import interpretations, read_raw

    jobs = []
    if config_path:
        for dev in load_modbus_config(config_path).devices:
            for g in dev.groups:
                for t in g.tags:
                    if t.table in ("holding", "input") and t.type not in ("string", "bit"):
                        jobs.append((f"{dev.name}/{t.name} (configured {t.type} {t.order})",
                                     dev.host, dev.port, dev.unit_id, t.table, t.address))
    elif address is not None:
        jobs.append((f"{table} {address}", host, port, unit, table, address))
    else:
        raise click.UsageError("give --address (ad-hoc) or --config")
    console = Console(soft_wrap=True)
    for title, h, p, u, tb, addr in jobs:
        regs = asyncio.run(read_raw(h, p, u, tb, addr, words))
        table_ = Table(title=f"{title}: {tb} {addr}..{addr + words - 1} = "
                             + " ".join(f"{r:04X}" for r in regs))
        for col in ("type", "order", "value"):
            table_.add_column(col)
        for row in interpretations(regs):
            table_.add_row(*row)
        console.print(table_)


COMMANDS = (connect, modbus,)
