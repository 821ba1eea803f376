"""`tocsin` CLI: Start, stop and inspect the local services (Kafka, InfluxDB) on 127.0.0.1."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from tocsin.cli.common import Group


@click.group(cls=Group)
def services() -> None:
    """Start, stop and inspect the local services (Kafka) on 127.0.0.1."""


@services.command("up")
@click.option("--kafka-port", default=9092, show_default=True)
@click.option("--controller-port", default=9093, show_default=True)
@click.option("--heap", default=None, help="JVM heap of each broker [default: 1g, 384m per "
              "node of a cluster]")
@click.option("--brokers", default=1, show_default=True, type=click.IntRange(1, 7),
              help="KRaft nodes (each broker and controller; node i on --kafka-port + 2(i-1)); "
              "3 gives replication 3 with min.insync.replicas 2")
@click.option("--timeout", default=120.0, show_default=True, help="seconds to wait for ready")
@click.option("--influx-port", default=8086, show_default=True)
@click.option("--no-influx", is_flag=True, help="Kafka only")
@click.option("--secure", is_flag=True, help="Kafka with TLS and SCRAM-SHA-512 (certificates "
              "and passwords generated locally; docs/security.md)")
def services_up(kafka_port: int, controller_port: int, heap: str | None, brokers: int,
                timeout: float, influx_port: int, no_influx: bool, secure: bool) -> None:
    """Provision (first time: Kafka from Maven Central, influxd built from the Go module
    proxy, both into the cache) and start Kafka and InfluxDB on 127.0.0.1."""
    from tocsin.config.influx_security import mask
    from tocsin.services.registry import influx_up, kafka_up

    heap = heap or ("1g" if brokers == 1 else "384m")
    state = kafka_up(kafka_port, controller_port, heap=heap, timeout=timeout, secure=secure,
                     brokers=brokers)
    if state.get("cluster"):
        _echo_nodes(state)
    else:
        mode = " (TLS + SCRAM-SHA-512)" if state.get("secure") else ""
        click.echo(f"kafka: up at {state['bootstrap']}{mode} (pid {state['pid']}, log "
                   f"{state['log']})")
    if state.get("secure"):
        click.echo(f"kafka: clients: export TOCSIN_KAFKA_CONFIG_FILE={state['client_file']}")
    if not no_influx:
        st = influx_up(influx_port)
        token = Path(st["token_file"]).read_text().strip()
        click.echo(f"influxdb: up at {st['url']} (pid {st['pid']}, org {st['org']}, bucket "
                   f"{st['bucket']}, token {mask(token)} in {st['token_file']})")


@services.command("down")
def services_down() -> None:
    """Stop the services `up` started."""
    from tocsin.services.registry import influx_down, kafka_down

    click.echo("kafka: stopped" if kafka_down() else "kafka: was not running")
    click.echo("influxdb: stopped" if influx_down() else "influxdb: was not running")


@services.command("status")
def services_status() -> None:
    """Say what is running; exit 1 when Kafka is not."""
    from tocsin.services.registry import influx_status, kafka_status

    state = kafka_status()
    influx = influx_status()
    click.echo("influxdb: down" if influx is None else
               f"influxdb: up at {influx['url']} (pid {influx['pid']}, data {influx['data_dir']})")
    if state is None:
        click.echo("kafka: down")
        sys.exit(1)
    if state.get("cluster"):
        _echo_nodes(state)
        return
    mode = ", TLS + SCRAM-SHA-512" if state.get("secure") else ""
    click.echo(f"kafka: up at {state['bootstrap']} (pid {state['pid']}, "
               f"Kafka {state['version']}{mode}, data {state['data_dir']})")


def _echo_nodes(state: dict) -> None:
    from tocsin.services.kafka import replication_for

    rf, isr = replication_for(state["size"])
    up = sum(1 for n in state["nodes"] if n.get("alive"))
    click.echo(f"kafka: cluster of {state['size']} ({up} up) at {state['bootstrap']} "
               f"(Kafka {state['version']}, replication {rf}, min.insync.replicas {isr}, "
               f"data {state['data_dir']})")
    for n in state["nodes"]:
        what = f"up (pid {n['pid']})" if n.get("alive") else "down"
        click.echo(f"  node {n['node_id']}: {what} at 127.0.0.1:{n['port']} "
                   f"(controller {n['controller_port']}, log {n['log']})")


@services.command("kill-broker")
@click.argument("node", type=int)
def services_kill_broker(node: int) -> None:
    """SIGKILL node NODE (1..N) of the cluster `up --brokers N` started: a crash, for chaos
    tests. `start-broker NODE` brings it back."""
    from tocsin.services.registry import kafka_kill_node

    click.echo(f"kafka: node {node} killed (pid {kafka_kill_node(node)})")


@services.command("start-broker")
@click.argument("node", type=int)
@click.option("--timeout", default=90.0, show_default=True, help="seconds to wait for ready")
def services_start_broker(node: int, timeout: float) -> None:
    """Start node NODE of the cluster again on its data and wait until it serves."""
    from tocsin.services.registry import kafka_start_node

    click.echo(f"kafka: node {node} up (pid {kafka_start_node(node, timeout)})")


COMMANDS = (services,)
