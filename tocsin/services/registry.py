"""Remember which services `tocsin services up` started, so `down` and `status` find them."""

from __future__ import annotations

from pathlib import Path

import orjson

from tocsin.services.kafka import (
    KafkaBroker,
    _port_open,
    cache_dir,
    pid_alive,
    stop_pid,
)


def run_dir() -> Path:
    d = cache_dir() / "run"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _state_file() -> Path:
    return run_dir() / "kafka.json"


def kafka_status() -> dict | None:
    """The running broker's record, or None when none is running."""
    try:
        state = orjson.loads(_state_file().read_bytes())
    except (OSError, ValueError):
        return None
    # a dead pid, or a reused one that is not our broker: it must also listen on its port
    if not pid_alive(state["pid"]) or not _port_open(state["port"]):
        return None
    return state


def kafka_up(port: int = 9092, controller_port: int = 9093, data_dir: Path | None = None,
             heap: str = "1g", timeout: float = 90.0) -> dict:
    running = kafka_status()
    if running:
        if running["port"] != port:
            from tocsin.errors import ServiceError

            raise ServiceError(f"a Tocsin Kafka is already running on port {running['port']} "
                               f"(pid {running['pid']}); run `tocsin services down` first")
        return running
    broker = KafkaBroker(data_dir or run_dir() / "kafka-data", port=port,
                         controller_port=controller_port, heap=heap, detach=True)
    broker.start(timeout=timeout)
    state = {"pid": broker.proc.pid, "port": port, "controller_port": controller_port,
             "bootstrap": broker.bootstrap, "data_dir": str(broker.data_dir),
             "log": str(broker.log_path), "version": broker.version}
    _state_file().write_bytes(orjson.dumps(state))
    return state


def kafka_down() -> bool:
    state = kafka_status()
    _state_file().unlink(missing_ok=True)
    if state is None:
        return False
    return stop_pid(state["pid"])


# --------------------------------------------------------------------------- influxd
def _influx_state() -> Path:
    return run_dir() / "influx.json"


def influx_status() -> dict | None:
    try:
        state = orjson.loads(_influx_state().read_bytes())
    except (OSError, ValueError):
        return None
    return state if pid_alive(state["pid"]) and _port_open(state["port"]) else None


def influx_up(port: int = 8086, data_dir: Path | None = None, timeout: float = 60.0) -> dict:
    from tocsin.services.influx import InfluxServer

    running = influx_status()
    if running:
        return running
    srv = InfluxServer(data_dir or run_dir() / "influx-data", port=port, detach=True)
    srv.start(timeout=timeout)
    state = {"pid": srv.proc.pid, "port": port, "url": srv.url, "org": srv.org,
             "bucket": srv.bucket, "token": srv.token, "data_dir": str(srv.data_dir),
             "log": str(srv.log_path)}
    _influx_state().write_bytes(orjson.dumps(state))
    return state


def influx_down() -> bool:
    state = influx_status()
    _influx_state().unlink(missing_ok=True)
    return False if state is None else stop_pid(state["pid"])
