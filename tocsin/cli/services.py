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
@click.option("--heap", default="1g", show_default=True, help="JVM heap for the broker")
@click.option("--timeout", default=120.0, show_default=True, help="seconds to wait for ready")
@click.option("--influx-port", default=8086, show_default=True)
@click.option("--no-influx", is_flag=True, help="Kafka only")
@click.option("--secure", is_flag=True, help="Kafka with TLS and SCRAM-SHA-512 (certificates "
              "and passwords generated locally; docs/security.md)")
def services_up(kafka_port: int, controller_port: int, heap: str, timeout: float,
                influx_port: int, no_influx: bool, secure: bool) -> None:
    """Provision (first time: Kafka from Maven Central, influxd built from the Go module
    proxy, both into the cache) and start Kafka and InfluxDB on 127.0.0.1."""
    from tocsin.config.influx_security import mask
    from tocsin.services.registry import influx_up, kafka_up

    state = kafka_up(kafka_port, controller_port, heap=heap, timeout=timeout, secure=secure)
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
    mode = ", TLS + SCRAM-SHA-512" if state.get("secure") else ""
    click.echo(f"kafka: up at {state['bootstrap']} (pid {state['pid']}, "
               f"Kafka {state['version']}{mode}, data {state['data_dir']})")


COMMANDS = (services,)
