"""Remember which services `tocsin services up` started, so `down` and `status` find them."""

from __future__ import annotations

import os
from pathlib import Path

import orjson

from tocsin.services.kafka import (
    KafkaBroker,
    _port_open,
    cache_dir,
    pid_alive,
    stop_pid,
)

LEGACY_INFLUX_TOKEN = "tocsin-local-token"  # what Tocsin used before per-install tokens


def run_dir() -> Path:
    d = cache_dir() / "run"
    d.mkdir(parents=True, exist_ok=True)
    os.chmod(d, 0o700)  # holds secrets (tokens, passwords, keys)
    return d


def _state_file() -> Path:
    return run_dir() / "kafka.json"


def kafka_status() -> dict | None:
    """The running broker's record (a cluster's: with ``nodes``, each marked ``alive``), or
    None when none is running."""
    try:
        state = orjson.loads(_state_file().read_bytes())
    except (OSError, ValueError):
        return None
    if state.get("cluster"):
        for n in state["nodes"]:  # a dead pid, or a reused one that is not our node
            n["alive"] = bool(n.get("pid")) and pid_alive(n["pid"]) and _port_open(n["port"])
        up = [n for n in state["nodes"] if n["alive"]]
        if not up:
            return None
        state.update(pid=up[0]["pid"], port=state["nodes"][0]["port"])
        return state
    # a dead pid, or a reused one that is not our broker: it must also listen on its port
    if not pid_alive(state["pid"]) or not _port_open(state["port"]):
        return None
    return state


def kafka_up(port: int = 9092, controller_port: int = 9093, data_dir: Path | None = None,
             heap: str = "1g", timeout: float = 90.0, secure: bool = False,
             brokers: int = 1) -> dict:
    """Start the broker (``secure``: TLS + SCRAM-SHA-512, its own data folder), or with
    ``brokers`` > 1 a KRaft cluster whose node i listens on ``port + 2(i-1)`` and
    ``controller_port + 2(i-1)``."""
    running = kafka_status()
    if running:
        size = running.get("size", 1)
        if (running["port"] != port or bool(running.get("secure")) != secure
                or size != brokers):
            from tocsin.errors import ServiceError

            mode = "secure" if running.get("secure") else "plaintext"
            what = f"cluster of {size}" if size > 1 else "broker"
            raise ServiceError(f"a {mode} Tocsin Kafka {what} is already running on port "
                               f"{running['port']} (pid {running['pid']}); run "
                               "`tocsin services down` first")
        return running
    if brokers > 1:
        return _cluster_up(port, controller_port, data_dir, heap, timeout, secure, brokers)
    if secure:
        from tocsin.services.kafka_secure import SecureKafkaBroker

        broker = SecureKafkaBroker(data_dir or run_dir() / "kafka-secure-data", port=port,
                                   controller_port=controller_port, heap=heap, detach=True)
    else:
        broker = KafkaBroker(data_dir or run_dir() / "kafka-data", port=port,
                             controller_port=controller_port, heap=heap, detach=True)
    broker.start(timeout=timeout)
    state = {"pid": broker.proc.pid, "port": port, "controller_port": controller_port,
             "bootstrap": broker.bootstrap, "data_dir": str(broker.data_dir),
             "log": str(broker.log_path), "version": broker.version, "secure": secure}
    if secure:
        state["client_file"] = str(broker.client_file)
    _state_file().write_bytes(orjson.dumps(state))
    return state


def _cluster_up(port: int, controller_port: int, data_dir: Path | None, heap: str,
                timeout: float, secure: bool, brokers: int) -> dict:
    from tocsin.errors import ServiceError
    from tocsin.services.kafka_cluster import KafkaCluster

    if secure:
        raise ServiceError("--secure runs one broker; a cluster is plaintext for now")
    data_dir = data_dir or run_dir() / f"kafka-cluster-{brokers}"
    cluster = KafkaCluster(data_dir, size=brokers, heap=heap, detach=True,
                           ports=[port + 2 * i for i in range(brokers)],
                           controller_ports=[controller_port + 2 * i for i in range(brokers)],
                           cluster_id=_formatted_cluster_id(data_dir))
    cluster.start(timeout=timeout)
    _state_file().write_bytes(orjson.dumps(cluster.to_state()))
    return kafka_status() or cluster.to_state()


def _formatted_cluster_id(data_dir: Path) -> str | None:
    """The id a cluster's storage was formatted with, so a new start reuses its data."""
    try:
        for line in (data_dir / "node-1" / "logs" / "meta.properties").read_text().splitlines():
            if line.startswith("cluster.id="):
                return line.split("=", 1)[1].strip()
    except OSError:
        pass
    return None


def _running_cluster():
    from tocsin.errors import ServiceError
    from tocsin.services.kafka_cluster import KafkaCluster

    try:
        state = orjson.loads(_state_file().read_bytes())
    except (OSError, ValueError):
        state = {}
    if not state.get("cluster"):
        raise ServiceError("no Tocsin Kafka cluster was started (`tocsin services up "
                           "--brokers 3`)")
    return KafkaCluster.from_state(state)


def kafka_kill_node(node_id: int) -> int:
    """SIGKILL one node of the cluster `up --brokers N` started; returns its pid."""
    cluster = _running_cluster()
    pid = cluster.kill(node_id)
    _state_file().write_bytes(orjson.dumps(cluster.to_state()))
    return pid


def kafka_start_node(node_id: int, timeout: float = 90.0) -> int:
    """Start one (killed or stopped) node of that cluster again; returns its pid."""
    cluster = _running_cluster()
    pid = cluster.restart(node_id, timeout=timeout)
    _state_file().write_bytes(orjson.dumps(cluster.to_state()))
    return pid


def kafka_down() -> bool:
    state = kafka_status()
    if state is not None and state.get("cluster"):
        _running_cluster().stop()
        _state_file().unlink(missing_ok=True)
        return True
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
    if "token" in state:  # written by an older Tocsin: move the token into its 0600 file
        from tocsin.services import influx_secrets
        from tocsin.services.certs import write_secret

        token_file = influx_secrets.token_file(run_dir())
        if not token_file.exists():
            write_secret(token_file, state["token"])
        state = {k: v for k, v in state.items() if k != "token"}
        state["token_file"] = str(token_file)
        write_secret(_influx_state(), orjson.dumps(state))
    return state if pid_alive(state["pid"]) and _port_open(state["port"]) else None


def influx_up(port: int = 8086, data_dir: Path | None = None, timeout: float = 60.0) -> dict:
    """Start influxd with this install's token (generated on first use, kept 0600); the
    state names the token file, never the token."""
    from tocsin.services import influx_secrets
    from tocsin.services.certs import write_secret
    from tocsin.services.influx import InfluxServer

    running = influx_status()
    if running:
        return running
    data_dir = data_dir or run_dir() / "influx-data"
    token_file = influx_secrets.token_file(run_dir())
    if (data_dir / "influxd.bolt").exists() and not token_file.exists():
        # set up by an older Tocsin with the documented token: keep it working, say so
        write_secret(token_file, LEGACY_INFLUX_TOKEN)
        import logging

        logging.getLogger("tocsin.services").warning(
            "InfluxDB in %s was set up with the old, public token; delete that folder (its "
            "data goes) after `tocsin services down` to get a token of this install", data_dir)
    srv = InfluxServer(data_dir, port=port, detach=True,
                       token=influx_secrets.install_token(run_dir()),
                       password=influx_secrets.install_password(run_dir()))
    srv.start(timeout=timeout)
    state = {"pid": srv.proc.pid, "port": port, "url": srv.url, "org": srv.org,
             "bucket": srv.bucket, "token_file": str(token_file),
             "data_dir": str(srv.data_dir), "log": str(srv.log_path)}
    write_secret(_influx_state(), orjson.dumps(state))
    return state


def influx_down() -> bool:
    state = influx_status()
    _influx_state().unlink(missing_ok=True)
    return False if state is None else stop_pid(state["pid"])
