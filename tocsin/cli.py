"""The `tocsin` command line (click). Heavy imports happen inside each command."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

import click

from tocsin.errors import TocsinError


def _fail(exc: Exception) -> None:
    click.secho(f"error: {exc}", fg="red", err=True)
    sys.exit(2)


class _Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except TocsinError as exc:
            _fail(exc)


@click.group(cls=_Group)
@click.version_option(package_name="tocsin")
def main() -> None:
    """Tocsin: streaming alarms from plants and payment switches, on Kafka."""
    logging.basicConfig(level=os.environ.get("TOCSIN_LOG_LEVEL", "INFO").upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # asyncua logs every connect step at INFO and security notes at WARNING
    logging.getLogger("asyncua").setLevel(logging.ERROR)
    logging.getLogger("pymodbus").setLevel(logging.WARNING)


# --------------------------------------------------------------------------- services
@main.group(cls=_Group)
def services() -> None:
    """Start, stop and inspect the local services (Kafka) on 127.0.0.1."""


@services.command("up")
@click.option("--kafka-port", default=9092, show_default=True)
@click.option("--controller-port", default=9093, show_default=True)
@click.option("--heap", default="1g", show_default=True, help="JVM heap for the broker")
@click.option("--timeout", default=120.0, show_default=True, help="seconds to wait for ready")
@click.option("--influx-port", default=8086, show_default=True)
@click.option("--no-influx", is_flag=True, help="Kafka only")
def services_up(kafka_port: int, controller_port: int, heap: str, timeout: float,
                influx_port: int, no_influx: bool) -> None:
    """Provision (first time: Kafka from Maven Central, influxd built from the Go module
    proxy, both into the cache) and start Kafka and InfluxDB on 127.0.0.1."""
    from tocsin.services.registry import influx_up, kafka_up

    state = kafka_up(kafka_port, controller_port, heap=heap, timeout=timeout)
    click.echo(f"kafka: up at {state['bootstrap']} (pid {state['pid']}, log {state['log']})")
    if not no_influx:
        st = influx_up(influx_port)
        click.echo(f"influxdb: up at {st['url']} (pid {st['pid']}, org {st['org']}, bucket "
                   f"{st['bucket']}, token {st['token']})")


@services.command("down")
def services_down() -> None:
    """Stop the services `up` started."""
    from tocsin.services.registry import influx_down, kafka_down

    click.echo("kafka: stopped" if kafka_down() else "kafka: was not running")
    click.echo("influxdb: stopped" if influx_down() else "influxdb: was not running")


@services.command("status")
def services_status() -> None:
    """Say what is running; exit 1 when Kafka is not."""
    from tocsin.services.registry import kafka_status

    from tocsin.services.registry import influx_status

    state = kafka_status()
    influx = influx_status()
    click.echo("influxdb: down" if influx is None else
               f"influxdb: up at {influx['url']} (pid {influx['pid']}, data {influx['data_dir']})")
    if state is None:
        click.echo("kafka: down")
        sys.exit(1)
    click.echo(f"kafka: up at {state['bootstrap']} (pid {state['pid']}, "
               f"Kafka {state['version']}, data {state['data_dir']})")


# --------------------------------------------------------------------------- worker
def _settings(broker, prefix, plant_config):
    from tocsin.streams.settings import load_settings

    return load_settings(broker=broker, topic_prefix=prefix, plant_config=plant_config)


_broker_opt = click.option("--broker", default=None, help="Kafka host:port (env TOCSIN_BROKER)")
_prefix_opt = click.option("--prefix", default=None, help="topic prefix (env TOCSIN_TOPIC_PREFIX)")


@main.command()
@_broker_opt
@_prefix_opt
@click.option("--plant-config", type=click.Path(exists=True, dir_okay=False), default=None,
              help="plant YAML with limits (env TOCSIN_PLANT_CONFIG; default: the demo plant)")
@click.option("--agents", default=None, help="comma-separated subset of thresholds,features,"
              "anomaly (env TOCSIN_AGENTS; default: all)")
@click.option("--model-dir", type=click.Path(file_okay=False), default=None,
              help="model artifacts (env TOCSIN_MODEL_DIR; default ~/.local/share/tocsin/models)")
@click.option("--backend", type=click.Choice(["onnxruntime", "tensorrt", "torch"]), default=None,
              help="inference backend (env TOCSIN_BACKEND; default onnxruntime)")
def worker(broker, prefix, plant_config, agents, model_dir, backend) -> None:
    """Run the stream worker (Faust): thresholds (plant.readings -> plant.alerts), features
    (-> plant.features) and anomaly scores (-> plant.scores)."""
    from faust.worker import Worker

    from tocsin.errors import ConfigError
    from tocsin.streams import metrics, topics
    from tocsin.streams.app import create_app
    from tocsin.streams.settings import load_settings

    settings = load_settings(broker=broker, topic_prefix=prefix, plant_config=plant_config,
                             agents=agents, model_dir=model_dir, backend=backend)
    if settings.backend == "tensorrt":  # fail at start-up, not on the first message
        import onnxruntime as ort

        if "TensorrtExecutionProvider" not in ort.get_available_providers():
            raise ConfigError("TOCSIN_BACKEND=tensorrt needs onnxruntime-gpu with TensorRT and "
                              "an NVIDIA GPU (pip install onnxruntime-gpu tensorrt); this machine "
                              f"offers {ort.get_available_providers()}")
    topics.ensure_topics(settings.broker, [settings.topic(t) for t in topics.ALL],
                         settings.partitions)
    app = create_app(settings)
    metrics.serve(settings.metrics_port, settings.metrics_host)
    Worker(app, loglevel=settings.log_level, quiet=True).execute_from_commandline()


@main.group(cls=_Group)
def topics() -> None:
    """Manage Tocsin's topics."""


@topics.command("create")
@_broker_opt
@_prefix_opt
def topics_create(broker, prefix) -> None:
    """Create every Tocsin topic that is missing."""
    from tocsin.streams import topics as t

    s = _settings(broker, prefix, None)
    names = [s.topic(n) for n in t.ALL]
    t.ensure_topics(s.broker, names, s.partitions)
    click.echo("topics: " + ", ".join(names))


# --------------------------------------------------------------------------- simulator
@main.group(cls=_Group)
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
            await _until_signal()
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

    cfg = load_modbus_config(config_path or Path(__file__).parent / "data" / "modbus.yaml")

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
            await _until_signal()
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


# --------------------------------------------------------------------------- connectors
@main.group(cls=_Group)
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
    from tocsin.services.kafka import cache_dir
    from tocsin.streams import topics

    s = _settings(broker, prefix, None)
    # default spool per connector and target topic: frames are never forwarded elsewhere
    spool = None if no_spool else (spool_dir or
                                   cache_dir() / "spool" / f"{name}--{s.topic(topics.READINGS)}")
    sink = KafkaFrameSink(s.broker, s.topic(topics.READINGS), spool_dir=spool,
                          spool_max_bytes=spool_max_mb << 20, spool_policy=spool_policy)
    if spool is not None:
        click.echo(f"connector {name}: store-and-forward spool {spool} "
                   f"({sink.spool.pending} frames waiting from an earlier run)")

    async def run():
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        n = await run_source(source, sink, stop)
        click.echo(f"connector: read {n} frames ({sink.delivered} acknowledged by Kafka)")

    asyncio.run(run())


@connect.command("opcua")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
              default=None, help="connector YAML (default: the simulated plant's)")
@_broker_opt
@_prefix_opt
@_spool_opts
def connect_opcua(config_path, broker, prefix, spool_dir, spool_max_mb, spool_policy,
                  no_spool) -> None:
    """Subscribe to an OPC UA server and publish frames until Ctrl-C."""
    from tocsin.connectors.opcua import OpcUaSource, load_opcua_config

    cfg = load_opcua_config(config_path or Path(__file__).parent / "data" / "opcua.yaml")
    _run_connector(OpcUaSource(cfg), f"opcua-{cfg.name}", broker, prefix, spool_dir,
                   spool_max_mb, spool_policy, no_spool)


@connect.command("modbus")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
              default=None, help="connector YAML (default: the simulated plant's)")
@_broker_opt
@_prefix_opt
@_spool_opts
def connect_modbus(config_path, broker, prefix, spool_dir, spool_max_mb, spool_policy,
                   no_spool) -> None:
    """Poll Modbus/TCP devices and publish frames until Ctrl-C."""
    from tocsin.connectors.modbus import ModbusSource, load_modbus_config

    cfg = load_modbus_config(config_path or Path(__file__).parent / "data" / "modbus.yaml")
    _run_connector(ModbusSource(cfg), f"modbus-{cfg.name}", broker, prefix, spool_dir,
                   spool_max_mb, spool_policy, no_spool)


@main.group(cls=_Group)
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


# --------------------------------------------------------------------------- alerts
@main.group(cls=_Group)
def alerts() -> None:
    """Watch alerts."""


@main.group(cls=_Group)
def scores() -> None:
    """Watch anomaly scores."""


@scores.command("tail")
@_broker_opt
@_prefix_opt
@click.option("--every", default=5.0, show_default=True, help="seconds between updates")
@click.option("--from-beginning", is_flag=True)
def scores_tail(broker, prefix, every: float, from_beginning: bool) -> None:
    """Print the newest scores of each asset every few seconds until Ctrl-C."""
    from tocsin.streams import topics
    from tocsin.streams.scores_view import ScoresWatch

    s = _settings(broker, prefix, None)
    w = ScoresWatch(s.broker, s.topic(topics.SCORES), every=every, from_beginning=from_beginning)
    try:
        w.run()
    except KeyboardInterrupt:
        pass


# --------------------------------------------------------------------------- history
_influx_opts = [
    click.option("--influx-url", envvar="TOCSIN_INFLUX_URL", default="http://127.0.0.1:8086",
                 show_default=True),
    click.option("--influx-token", envvar="TOCSIN_INFLUX_TOKEN", default="tocsin-local-token"),
    click.option("--influx-org", envvar="TOCSIN_INFLUX_ORG", default="tocsin", show_default=True),
    click.option("--influx-bucket", envvar="TOCSIN_INFLUX_BUCKET", default="tocsin",
                 show_default=True),
]


def _with_influx(f):
    for opt in reversed(_influx_opts):
        f = opt(f)
    return f


@main.group(cls=_Group)
def sink() -> None:
    """Write streams into external stores."""


@sink.command("influx")
@_broker_opt
@_prefix_opt
@_with_influx
@click.option("--batch", default=5000, show_default=True, help="points per write")
@click.option("--flush", "flush_s", default=1.0, show_default=True, help="max seconds a point waits")
def sink_influx(broker, prefix, influx_url, influx_token, influx_org, influx_bucket, batch,
                flush_s) -> None:
    """Write readings and alerts into InfluxDB until Ctrl-C (offsets committed only after
    InfluxDB acknowledged the points)."""
    from tocsin.connectors.influx_sink import InfluxHistorySink

    s = _settings(broker, prefix, None)
    sk = InfluxHistorySink(s.broker, s.topic_prefix, influx_url, influx_token, influx_org,
                           influx_bucket, batch_lines=batch, flush_s=flush_s)
    click.echo(f"history sink: {s.broker} {s.topic_prefix}* -> {influx_url} bucket {influx_bucket}")
    sk.run(stop=_stop_flag())
    st = sk.stats
    click.echo(f"history sink: {st.points:,} points in {st.batches:,} batches, {st.retries} "
               f"retries, {st.rejected} rejected, {st.deadlettered} dead-lettered")


@main.group(cls=_Group)
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


_fmt_opt = click.option("--format", "fmt", default="table", show_default=True,
                        type=click.Choice(["table", "csv", "json"]))


@history.command("readings")
@click.option("--asset", required=True)
@click.option("--tag", "tags", multiple=True, help="tag name (repeat; default: all)")
@click.option("--start", default="-1h", show_default=True, help="-1h style or RFC 3339")
@click.option("--stop", default="now()", show_default=True)
@click.option("--every", default=None, help="aggregate window, e.g. 10s, 1m")
@click.option("--fn", default="mean", show_default=True, help="aggregate function")
@click.option("--rollup", is_flag=True, help="read the 1-minute rollup bucket")
@click.option("--plot", type=click.Path(dir_okay=False), default=None, help="also a PNG")
@_fmt_opt
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
@_fmt_opt
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
@_fmt_opt
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


# --------------------------------------------------------------------------- record/replay
@main.command()
@click.argument("topics_", metavar="TOPIC...", nargs=-1, required=True)
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="recording file to write")
@_broker_opt
@click.option("--start", default="beginning", show_default=True,
              help="beginning | end | offset:N | an ISO-8601 time")
@click.option("--until", default="end", show_default=True,
              help="end (the end as of now) | live (until Ctrl-C/--duration) | ISO-8601 time")
@click.option("--duration", type=float, default=None, help="seconds, for --until live")
def record(topics_, output, broker, start, until, duration) -> None:
    """Record TOPIC... (every partition) into a compressed recording file."""
    from rich.progress import Progress, TextColumn, TimeElapsedColumn

    from tocsin.connectors.recorder import RecordSpec
    from tocsin.connectors.recorder import record as do_record

    s = _settings(broker, None, None)
    stop = _stop_flag()
    with Progress(TextColumn("{task.description}"), TimeElapsedColumn(),
                  transient=False) as bar:
        task = bar.add_task("recording", total=None)

        def progress(n, nbytes):
            bar.update(task, description=f"recording: {n:,} messages, {nbytes / 1e6:.1f} MB")

        n = do_record(s.broker, RecordSpec(list(topics_), start, until, duration), output,
                      progress=progress, stop=stop)
    click.echo(f"recorded {n:,} messages from {', '.join(topics_)} to {output}")


@main.command("replay")
@click.argument("recording", type=click.Path(exists=True, dir_okay=False))
@_broker_opt
@_prefix_opt
@click.option("--speed", default="max", show_default=True,
              help="max (as fast as possible), or a factor: 1 = original timing, 10 = 10x")
@click.option("--rename", multiple=True, metavar="OLD=NEW", help="publish OLD to NEW")
@click.option("--topic", "only", multiple=True, help="replay only these recorded topics")
@click.option("--rebase", is_flag=True, help="shift timestamps so the first message is now")
@click.option("--allow-truncated", is_flag=True,
              help="replay the whole blocks of a recording that ends early")
@click.option("--expect", type=click.Path(dir_okay=False), default=None,
              help="golden check: run an isolated pipeline and diff its alerts to this file")
@click.option("--update", is_flag=True, help="with --expect: (re)write the expected file")
@click.option("--shadow", nargs=2, type=click.Path(exists=True, dir_okay=False),
              default=None, metavar="PLANT_A PLANT_B",
              help="run two isolated pipelines with two plant configs and compare alerts")
@click.option("--plant-config", type=click.Path(exists=True, dir_okay=False), default=None,
              help="plant config for the --expect pipeline")
def replay_cmd(recording, broker, prefix, speed, rename, only, rebase, allow_truncated,
               expect, update, shadow, plant_config) -> None:
    """Publish a RECORDING to Kafka, or check it against expected alerts (--expect)."""
    s = _settings(broker, None, None)
    if expect or shadow:
        from tocsin.streams.golden_cli import golden, shadow_run

        if shadow:
            sys.exit(shadow_run(recording, s.broker, shadow[0], shadow[1], allow_truncated))
        sys.exit(golden(recording, s.broker, expect, update, plant_config, allow_truncated))
    from tocsin.connectors.replayer import ReplaySpec, replay

    try:
        factor = 0.0 if speed == "max" else float(speed)
        if factor < 0:
            raise ValueError
    except ValueError:
        raise click.BadParameter(f"{speed!r}: expected 'max' or a positive number",
                                 param_hint="--speed") from None
    ren = {}
    for r in rename:
        old, sep, new = r.partition("=")
        if not sep or not old or not new:
            raise click.BadParameter(f"{r!r}: expected OLD=NEW", param_hint="--rename")
        ren[old] = new

    def progress(res):
        click.echo(f"  {res.messages:,} messages, {res.samples:,} samples, "
                   f"{res.seconds:.1f} s", err=True)

    res = replay(recording, s.broker, ReplaySpec(factor, prefix or "", ren, list(only) or None,
                                                 rebase, allow_truncated),
                 progress=progress, stop=_stop_flag())
    rate = res.messages / res.seconds if res.seconds else 0.0
    click.echo(f"replayed {res.messages:,} messages ({res.samples:,} samples) in "
               f"{res.seconds:.2f} s: {rate:,.0f} messages/s")


@main.group(cls=_Group)
def recording() -> None:
    """Inspect recordings."""


@main.group("import", cls=_Group)
def import_() -> None:
    """Turn exports and public data sets into recordings for `tocsin replay`."""


@import_.command("csv")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False))
@click.option("--asset", required=True, help="asset id the readings belong to")
@click.option("--timestamp-col", default=None, help="column with ISO-8601 or numeric times")
@click.option("--timestamp-unit", default="s", show_default=True,
              type=click.Choice(["s", "ms", "us", "ns"]))
@click.option("--start", default=None, help="ISO-8601 start, for files without a clock")
@click.option("--period", type=float, default=None, help="seconds between rows (with --start)")
@click.option("--sensor-cols", default=None, help="comma-separated (default: all others)")
@click.option("--label-cols", default="", help="comma-separated label columns")
@click.option("--sep", default=",", show_default=True, help="a character, or 'whitespace'")
@click.option("--no-header", is_flag=True, help="the first line is data")
@click.option("--names", default=None, help="comma-separated column names (no header)")
@click.option("--frame-rows", default=10, show_default=True, help="rows per readings frame")
def import_csv_cmd(path, output, asset, timestamp_col, timestamp_unit, start, period,
                   sensor_cols, label_cols, sep, no_header, names, frame_rows) -> None:
    """Import a labeled CSV file (timestamp, sensor columns, label columns)."""
    from tocsin.connectors.csv_import import CsvSpec, import_csv

    def split(v):
        return [c.strip() for c in v.split(",") if c.strip()] if v else None

    spec = CsvSpec(asset=asset, timestamp_col=timestamp_col, timestamp_unit=timestamp_unit,
                   start=start, period=period, sensor_cols=split(sensor_cols),
                   label_cols=split(label_cols) or [], sep=sep, header=not no_header,
                   names=split(names), frame_rows=frame_rows)
    rows, frames, labels = import_csv(path, output, spec)
    click.echo(f"imported {rows:,} rows into {frames:,} frames and {labels:,} label changes: "
               f"{output}")


@recording.command("info")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--allow-truncated", is_flag=True)
def recording_info(path, allow_truncated) -> None:
    """Header, topics and message counts of a recording (reads and checks every block)."""
    from collections import Counter

    import orjson

    from tocsin.connectors.recording import RecordingReader

    with RecordingReader(path, allow_truncated=allow_truncated) as r:
        counts = Counter(m.topic for m in r)
        click.echo(orjson.dumps(r.header, option=orjson.OPT_INDENT_2).decode())
        for t in r.topics:
            click.echo(f"{t}: {counts.get(t, 0):,} messages")
        click.echo(f"blocks: {r.blocks_read}, complete: {r.total is not None}")


@recording.command("expected")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False))
def recording_expected(path, output) -> None:
    """Write the alerts recorded in PATH (its *plant.alerts topic) as an --expect file."""
    from tocsin.streams.isolated import alerts_in_recording, save_expected

    alerts = alerts_in_recording(path)
    save_expected(output, alerts)
    click.echo(f"{len(alerts)} alert events written to {output}")


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

    from tocsin.connectors.simulator.scenario import load_scenario, single_fault, write_scenario

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


def _stop_flag():
    """A callable that turns true on Ctrl-C/SIGTERM, for clean stops of long loops."""
    flag = {"stop": False}

    def handler(*_):
        flag["stop"] = True

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return lambda: flag["stop"]


# --------------------------------------------------------------------------- demo
@main.command()
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
@_prefix_opt
@click.pass_context
def demo(ctx, duration, fault, fault_after, kafka_port, opcua_port, modbus_port, protocol, asset,
         broker, history, train_missing, prefix) -> None:
    """Start everything on embedded defaults and show the alerts and anomaly scores of an
    injected fault.

    Exits 0 when at least one alert was raised, 1 otherwise.
    """
    from tocsin.demo import run_demo
    from tocsin.models import artifacts

    from tocsin.connectors.simulator.plant import DEFAULT_ASSETS, FAULTS

    if fault not in FAULTS or DEFAULT_ASSETS.get(asset) not in FAULTS[fault]:
        ok = sorted(f for f, by in FAULTS.items() if DEFAULT_ASSETS.get(asset) in by)
        raise click.BadParameter(f"{fault!r} on {asset!r}; faults of {asset}: {ok}",
                                 param_hint="--fault/--asset")
    if train_missing and not artifacts.asset_types(artifacts.default_root()):
        click.secho("no anomaly models yet: training them on simulated normal operation "
                    "first (once; `tocsin train` does it by itself)", bold=True)
        ctx.invoke(train.commands["plant"])
    if train_missing and "fusion" in train.commands:
        from tocsin.detectors import fusion_store

        if fusion_store.newest(artifacts.default_root()) is None:
            click.secho("no fusion network yet: learning it from simulated fault runs scored "
                        "by those models (once; `tocsin train fusion`)", bold=True)
            ctx.invoke(train.commands["fusion"])
    sys.exit(run_demo(duration=duration, fault=fault, fault_after=fault_after,
                      kafka_port=kafka_port, opcua_port=opcua_port, broker=broker,
                      prefix=prefix, protocol=protocol, modbus_port=modbus_port,
                      asset=asset, history=history))


async def _until_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


# --------------------------------------------------------------------------- train
@main.group(cls=_Group, invoke_without_command=True)
@click.pass_context
def train(ctx) -> None:
    """Train models into versioned artifact folders (needs the `train` extra: torch).

    Without a subcommand: `train plant` on its defaults (simulated normal operation).
    """
    if ctx.invoked_subcommand is None:
        ctx.invoke(train.commands["plant"])


# Domain command groups live in their own modules and register themselves here, so the plant,
# payments and imaging CLIs stay small and independent.
def _register_extensions() -> None:
    import importlib

    for mod in ("tocsin.cli_plant_models", "tocsin.cli_payments", "tocsin.cli_imaging",
                "tocsin.cli_alerts_lifecycle"):
        try:
            m = importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name == mod:
                continue
            raise
        m.register(main, train)


_register_extensions()


if __name__ == "__main__":
    main()
