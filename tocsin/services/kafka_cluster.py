"""A KRaft cluster of several nodes on 127.0.0.1, with chaos controls (kill -9, restart).

Every node is broker and controller at once (the controller quorum is all nodes, so a cluster
of three survives the loss of any one). Topics default to three replicas with two in sync
(:func:`tocsin.services.kafka.replication_for`), so a broker can be killed while producers
with ``acks=all`` go on. The nodes are :class:`~tocsin.services.kafka.KafkaBroker` objects
with the same Maven-built runtime and the same failover settings as a single broker.

Nodes are numbered by their Kafka ``node.id``, 1..size, everywhere (API and CLI).
"""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tocsin.errors import ServiceError
from tocsin.services.kafka import (
    KafkaBroker,
    _cluster_id,
    free_port,
    pid_alive,
    replication_for,
    stop_pid,
)

MAX_NODES = 7


@dataclass
class KafkaCluster:
    """`size` KRaft nodes under `data_dir` (``node-1`` ...); ports default to free ones."""

    data_dir: Path
    size: int = 3
    ports: list[int] = field(default_factory=list)
    controller_ports: list[int] = field(default_factory=list)
    heap: str = "384m"
    detach: bool = False  # outlive this process (`tocsin services up --brokers N`)
    failover: bool = True  # FAILOVER_SETTINGS (False: the old settings, for benchmarks)
    extra: dict[str, str] = field(default_factory=dict)
    cluster_id: str | None = None
    # C1 only: the JIT costs less CPU, so three nodes start in about half the time on a
    # loaded 2-core machine (measured: 49-52 s against 79-103 s), at some steady-state speed
    # that tests do not need; pass () for throughput benchmarks
    jvm_flags: tuple[str, ...] = ("-XX:TieredStopAtLevel=1",)
    nodes: list[KafkaBroker] = field(init=False, repr=False)
    # pids of nodes this object did not start itself (a cluster read back from its state)
    pids: dict[int, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not 1 <= self.size <= MAX_NODES:
            raise ServiceError(f"a cluster has 1 to {MAX_NODES} nodes, not {self.size}")
        self.data_dir = Path(self.data_dir)
        self.ports = list(self.ports) or [free_port() for _ in range(self.size)]
        self.controller_ports = (list(self.controller_ports)
                                 or [free_port() for _ in range(self.size)])
        if len(self.ports) != self.size or len(self.controller_ports) != self.size:
            raise ServiceError(f"a cluster of {self.size} needs {self.size} ports and "
                               f"{self.size} controller ports")
        self.cluster_id = self.cluster_id or _cluster_id()
        voters = ",".join(f"{i + 1}@127.0.0.1:{p}" for i, p in enumerate(self.controller_ports))
        self.nodes = [
            KafkaBroker(self.data_dir / f"node-{i + 1}", port=self.ports[i],
                        controller_port=self.controller_ports[i], heap=self.heap,
                        extra=dict(self.extra), node_id=i + 1, voters=voters,
                        cluster_size=self.size, cluster_id=self.cluster_id,
                        failover=self.failover, detach=self.detach,
                        jvm_flags=tuple(self.jvm_flags))
            for i in range(self.size)
        ]

    # ------------------------------------------------------------------ facts
    @property
    def bootstrap(self) -> str:
        """All nodes, comma-separated: a client reaches the cluster while any one is up."""
        return ",".join(n.bootstrap for n in self.nodes)

    @property
    def replication(self) -> tuple[int, int]:
        """(default replication factor, min.insync.replicas) of this cluster."""
        return replication_for(self.size)

    def node(self, node_id: int) -> KafkaBroker:
        if not 1 <= node_id <= self.size:
            raise ServiceError(f"no node {node_id}: the nodes are 1..{self.size}")
        return self.nodes[node_id - 1]

    def pid(self, node_id: int) -> int | None:
        n = self.node(node_id)
        if n.proc is not None and n.proc.poll() is None:
            return n.proc.pid
        pid = self.pids.get(node_id)
        return pid if pid is not None and pid_alive(pid) else None

    def alive(self) -> list[int]:
        """The node ids whose process is running."""
        return [i for i in range(1, self.size + 1) if self.pid(i) is not None]

    # ------------------------------------------------------------------ life cycle
    def start(self, timeout: float = 120.0) -> "KafkaCluster":
        """Launch every node, then wait for all: no node is ready before a quorum is up."""
        try:
            with ThreadPoolExecutor(self.size) as pool:  # the storage formats side by side
                list(pool.map(KafkaBroker.format, self.nodes))
            for n in self.nodes:  # here, not in the pool: see KafkaBroker.launch
                n.launch()
            deadline = time.monotonic() + timeout
            for n in self.nodes:
                n.wait_ready(max(1.0, deadline - time.monotonic()))
        except BaseException:
            self.stop(timeout=10)
            raise
        return self

    def kill(self, node_id: int) -> int:
        """SIGKILL node `node_id` (no clean shutdown, as a crash) and wait until it is gone;
        returns its pid."""
        pid = self.pid(node_id)
        if pid is None:
            raise ServiceError(f"Kafka node {node_id} is not running")
        os.kill(pid, signal.SIGKILL)
        n = self.node(node_id)
        if n.proc is not None:
            n.proc.wait(timeout=30)
            n.proc = None
        deadline = time.monotonic() + 30
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.pids.pop(node_id, None)
        return pid

    def restart(self, node_id: int, timeout: float = 90.0) -> int:
        """Start node `node_id` again on its data (after :meth:`kill` or :meth:`stop_node`)
        and wait until it serves; returns its new pid."""
        if self.pid(node_id) is not None:
            raise ServiceError(f"Kafka node {node_id} is already running")
        n = self.node(node_id)
        n.start(timeout=timeout)
        assert n.proc is not None
        self.pids.pop(node_id, None)
        return n.proc.pid

    def heal(self, timeout: float = 90.0) -> list[int]:
        """Restart every node that is down (after a chaos step); returns their ids."""
        dead = [i for i in range(1, self.size + 1) if self.pid(i) is None]
        for i in dead:
            self.restart(i, timeout=timeout)
        return dead

    def stop_node(self, node_id: int, timeout: float = 30.0) -> None:
        """A clean stop (SIGTERM: the node hands its leaderships over first)."""
        pid = self.pid(node_id)
        if pid is not None:
            stop_pid(pid, timeout)
        n = self.node(node_id)
        if n.proc is not None:
            n.stop(timeout=1)
        self.pids.pop(node_id, None)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop every node: SIGTERM to all at once (the last ones to go would otherwise wait
        for a quorum that is already gone), SIGKILL what is left after `timeout`."""
        pids = [p for p in (self.pid(i) for i in range(1, self.size + 1)) if p is not None]
        for p in pids:
            try:
                os.kill(p, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout
        while any(pid_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.2)
        for p in pids:
            if pid_alive(p):
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for n in self.nodes:
            if n.proc is not None:
                try:
                    n.proc.wait(timeout=5)
                except Exception:  # noqa: BLE001 - a zombie is reaped by init later
                    pass
                n.proc = None
        self.pids.clear()

    # ------------------------------------------------------------------ state (the CLI)
    def to_state(self) -> dict:
        """What `tocsin services` keeps in its state file to find the cluster again."""
        return {
            "cluster": True, "size": self.size, "data_dir": str(self.data_dir),
            "heap": self.heap, "cluster_id": self.cluster_id, "failover": self.failover,
            "bootstrap": self.bootstrap, "version": self.nodes[0].version,
            "jvm_flags": list(self.jvm_flags),
            "nodes": [{"node_id": i + 1, "pid": self.pid(i + 1), "port": n.port,
                       "controller_port": n.controller_port, "data_dir": str(n.data_dir),
                       "log": str(n.log_path)} for i, n in enumerate(self.nodes)],
        }

    @classmethod
    def from_state(cls, state: dict) -> "KafkaCluster":
        nodes = state["nodes"]
        c = cls(Path(state["data_dir"]), size=state["size"],
                ports=[n["port"] for n in nodes],
                controller_ports=[n["controller_port"] for n in nodes],
                heap=state["heap"], detach=True, failover=state.get("failover", True),
                cluster_id=state["cluster_id"],
                jvm_flags=tuple(state.get("jvm_flags", ("-XX:TieredStopAtLevel=1",))))
        c.pids = {n["node_id"]: n["pid"] for n in nodes if n.get("pid")}
        return c

    def __enter__(self) -> "KafkaCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
