"""`tocsin` CLI: The simulated plant: OPC UA and Modbus servers, fault injection, scenarios."""

from __future__ import annotations

import asyncio

import click

from tocsin.cli.common import DATA, Group, until_signal


@click.group(cls=Group)
def sim() -> None:
    """The simulated plant."""


@sim.command("opcua")
@click.option("--port", default=4840, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True,
              help="address to listen on (0.0.0.0 inside a container)")
@click.option("--rate", default=10.0, show_default=True, help="samples per second per tag")
@click.option("--seed", default=7, show_default=True)
@click.option("--inject", "injects", multiple=True, metavar="ASSET:FAULT@SECONDS",
              help="schedule a fault, e.g. pump-1:over_temperature@20")
@click.option("--scenario", "scenario_path", type=click.Path(exists=True, dir_okay=False),
              default=None, help="scenario YAML: faults with start/end seconds after start")
@click.option("--labels", type=click.Path(dir_okay=False), default=None,
              help="write the ground truth (CSV) here on exit")
def sim_opcua(port: int, host: str, rate: float, seed: int, injects: tuple[str, ...],
              scenario_path, labels) -> None:
    """Serve the simulated plant over OPC UA until Ctrl-C."""
    from tocsin.connectors.simulator.opcua_server import PlantOpcUaServer
    from tocsin.connectors.simulator.plant import Plant

    async def run():
        plant = Plant(seed=seed)
        srv = await PlantOpcUaServer(plant, port=port, rate_hz=rate, host=host).start()
        click.echo(f"simulator: serving {sorted(srv.plant.assets)} at {srv.endpoint}")
        _schedule(plant, injects, scenario_path, labels)
        try:
            await until_signal()
        finally:
            await srv.stop()

    asyncio.run(run())


def _schedule(plant, injects, scenario_path, labels) -> None:
    """Schedule --inject faults and a scenario file's faults on a live simulator (seconds
    after now); on exit write the ground truth to `labels`."""
    import atexit
    import time as _time

    from tocsin.connectors.simulator.scenario import load_scenario, write_labels

    loop = asyncio.get_running_loop()
    t0 = _time.time()
    events = [(at, "inject", a, f) for a, f, at in (_parse_inject(s) for s in injects)]
    if scenario_path:
        for f in load_scenario(scenario_path).faults:
            events.append((f.start, "inject", f.asset, f.fault))
            if f.end is not None:
                events.append((f.end, "clear", f.asset, f.fault))
    for at, what, asset, fault in events:
        def fire(what=what, asset=asset, fault=fault):
            t = _time.time() - t0
            try:
                (plant.inject if what == "inject" else plant.clear)(asset, fault, t)
                click.echo(f"simulator: {what} {fault} on {asset} at t={t:.1f}s")
            except KeyError as exc:
                click.secho(f"simulator: {exc.args[0]}", fg="red", err=True)
        loop.call_later(at, fire)
    if labels:
        def dump():
            base = int(t0 * 1e9)
            truth = [dict(e, start_ns=base + int(e["start"] * 1e9),
                          end_ns=None if e["end"] is None else base + int(e["end"] * 1e9))
                     for e in plant.episodes()]
            write_labels(labels, truth)
        atexit.register(dump)


def _parse_inject(spec: str) -> tuple[str, str, float]:
    try:
        asset, rest = spec.split(":", 1)
        fault, at = rest.split("@", 1)
        return asset, fault, float(at)
    except ValueError:
        raise click.BadParameter(f"{spec!r}: expected ASSET:FAULT@SECONDS") from None


@sim.command("modbus")
@click.option("--port", default=0, show_default=True,
              help="port of the first device, the next ones follow (0: the config's ports)")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
              default=None, help="register map = a connector config (default: the demo's)")
@click.option("--rate", default=10.0, show_default=True)
@click.option("--seed", default=7, show_default=True)
@click.option("--inject", "injects", multiple=True, metavar="ASSET:FAULT@SECONDS")
@click.option("--scenario", "scenario_path", type=click.Path(exists=True, dir_okay=False),
              default=None, help="scenario YAML: faults with start/end seconds after start")
@click.option("--labels", type=click.Path(dir_okay=False), default=None,
              help="write the ground truth (CSV) here on exit")
def sim_modbus(port, host, config_path, rate, seed, injects, scenario_path, labels) -> None:
    """Serve the simulated plant over Modbus/TCP, one server per device of the register map
    (the connector's config), until Ctrl-C."""
    from tocsin.connectors.modbus import load_modbus_config
    from tocsin.connectors.simulator.modbus_server import PlantModbusServer
    from tocsin.connectors.simulator.plant import Plant

    cfg = load_modbus_config(config_path or DATA / "modbus.yaml")

    async def run():
        plant = Plant(seed=seed)
        servers = []
        for i, dev in enumerate(cfg.devices):
            p = port + i if port else dev.port
            servers.append(await PlantModbusServer(dev, plant, host=host, port=p,
                                                   rate_hz=rate).start())
            click.echo(f"simulator: serving {dev.name} ({dev.asset}) over Modbus/TCP at "
                       f"{host}:{p} unit {dev.unit_id}")
        _schedule(plant, injects, scenario_path, labels)
        try:
            await until_signal()
        finally:
            for srv in servers:
                await srv.stop()

    asyncio.run(run())


@sim.command("inject")
@click.option("--endpoint", default="opc.tcp://127.0.0.1:4840/tocsin/", show_default=True)
@click.option("--asset", default="pump-1", show_default=True)
@click.option("--fault", required=True, help="e.g. over_temperature, bearing_wear, leak")
@click.option("--clear", is_flag=True, help="clear the fault instead (empty --fault: all)")
def sim_inject(endpoint: str, asset: str, fault: str, clear: bool) -> None:
    """Inject (or clear) a fault on a running simulator through its OPC UA method."""
    from tocsin.connectors.simulator.opcua_server import call_fault

    try:
        asyncio.run(call_fault(endpoint, asset, fault, clear=clear))
    except KeyError as exc:
        raise click.BadParameter(str(exc.args[0])) from None
    click.echo(f"{'cleared' if clear else 'injected'} {fault} on {asset}")



@sim.command("scenario")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False))
@click.option("--scenario", "scenario_path", type=click.Path(exists=True, dir_okay=False),
              default=None, help="scenario YAML (faults with start/end); or use --fault")
@click.option("--fault", default=None, help="one fault (none: normal operation)")
@click.option("--asset", default="pump-1", show_default=True, help="asset of --fault")
@click.option("--at", "fault_at", default=30.0, show_default=True, help="seconds")
@click.option("--until", "fault_until", type=float, default=None, help="clear it at (s)")
@click.option("--seconds", default=90.0, show_default=True)
@click.option("--rate", default=10.0, show_default=True, help="samples/s per tag")
@click.option("--seed", default=7, show_default=True)
@click.option("--labels", type=click.Path(dir_okay=False), default=None,
              help="also write the ground truth as CSV")
def sim_scenario(output, scenario_path, fault, asset, fault_at, fault_until, seconds, rate,
                 seed, labels) -> None:
    """Write a deterministic recording of the simulated plant (event time, no servers)."""
    from pydantic import ValidationError

    from tocsin.connectors.simulator.scenario import (
        load_scenario,
        single_fault,
        write_scenario,
    )

    if scenario_path:
        sc = load_scenario(scenario_path)
    else:
        try:
            sc = single_fault(fault, asset=asset, at=fault_at, until=fault_until,
                              seconds=seconds, rate=rate, seed=seed)
        except ValidationError as exc:
            raise click.BadParameter(exc.errors()[0]["msg"], param_hint="--fault") from None
    n = write_scenario(output, sc, labels=labels)
    click.echo(f"wrote {n} frames to {output}" + (f"; ground truth in {labels}" if labels else ""))


COMMANDS = (sim,)
