"""Remember which services `tocsin services up` started, so `down` and `status` find them."""

from __future__ import annotations

from pathlib import Path

import orjson

from tocsin.services.kafka import KafkaBroker, cache_dir, pid_alive, stop_pid


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
    if not pid_alive(state["pid"]):
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
