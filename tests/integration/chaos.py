"""Chaos helpers shared by the chaos tests (plant alerts here; fraud scores may reuse them):
a fleet of `tocsin ...` worker processes of one group that can be killed with SIGKILL,
restarted, added and removed, a random schedule of those faults, and a read_committed
collector. The fraud helper's hook: build a `Fleet` with its own command (`payments ...`),
pass it to `run_schedule`, collect its output topic with `Collector`, compare with its own
golden set; `survived()` reports kills and rebalances the same way."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from confluent_kafka import Consumer

from tests.waiting import wait_for


class Fleet:
    def __init__(self, args: list[str], env: dict, logdir: Path,
                 ready_marker: str = "runtime: ready"):
        self.args, self.env, self.logdir, self.marker = args, env, logdir, ready_marker
        self.procs: dict[str, subprocess.Popen] = {}
        self.kills = 0
        self.events: list[str] = []
        self._logs: dict[str, object] = {}

    def log(self, name: str) -> Path:
        return self.logdir / f"{name}.log"

    def start(self, name: str, wait: bool = True) -> None:
        fh = self._logs.get(name) or open(self.log(name), "ab")
        self._logs[name] = fh
        mark = self.log(name).stat().st_size if self.log(name).exists() else 0
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "tocsin.cli", *self.args, "--worker-name", name],
            env=dict(self.env, TOCSIN_WORKER_NAME=name), stdout=fh, stderr=subprocess.STDOUT)
        self.events.append(f"start {name}")
        if wait:
            p = self.procs[name]

            def ready() -> bool:
                if p.poll() is not None:
                    raise AssertionError(f"{name} exited:\n{self.text(name)[-3000:]}")
                return self.marker in self.text(name)[mark:]

            wait_for(ready, 180, f"{name} ready", seen=lambda: self.text(name)[-2000:])

    def text(self, name: str) -> str:
        return self.log(name).read_text(errors="replace")

    def kill(self, name: str) -> None:
        p = self.procs.pop(name)
        p.send_signal(signal.SIGKILL)
        p.wait()
        self.kills += 1
        self.events.append(f"kill -9 {name}")

    def remove(self, name: str) -> None:
        p = self.procs.pop(name)
        p.terminate()
        p.wait(60)
        self.events.append(f"remove {name}")

    def alive(self) -> list[str]:
        return [n for n, p in self.procs.items() if p.poll() is None]

    def rebalances(self) -> int:
        return sum(self.text(n).count(": assigned ") + self.text(n).count(": revoked ") +
                   self.text(n).count(": lost ") for n in self._logs)

    def survived(self) -> str:
        return f"{self.kills} kills (SIGKILL), {self.rebalances()} rebalance callbacks"

    def stop_all(self) -> None:
        for n in list(self.procs):
            p = self.procs.pop(n)
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
        for fh in self._logs.values():
            fh.close()  # type: ignore[attr-defined]


def run_schedule(fleet: Fleet, names: list[str], until: Callable[[], bool], rng: random.Random,
                 *, add: str | None = None, remove: str | None = None,
                 extra: list[tuple[float, Callable[[], None], str]] = (),
                 gap_s: tuple[float, float] = (3.0, 8.0)) -> None:
    """Until ``until()``: every ``gap_s`` a random live worker of ``names`` is killed with
    SIGKILL and restarted 0-2 s later; after the 2nd kill ``add`` joins, after the 3rd
    ``remove`` leaves for good; ``extra`` (t, action, label) run once at t s."""
    t0 = time.monotonic()
    pending = sorted(extra, key=lambda e: e[0])
    n = 0
    while not until():
        time.sleep(rng.uniform(*gap_s))
        while pending and time.monotonic() - t0 >= pending[0][0]:
            _, action, label = pending.pop(0)
            action()
            fleet.events.append(label)
        victims = [v for v in fleet.alive() if v in names]
        if not victims:
            continue
        v = rng.choice(victims)
        fleet.kill(v)
        time.sleep(rng.uniform(0.0, 2.0))
        fleet.start(v, wait=False)
        n += 1
        if n == 2 and add:
            fleet.start(add, wait=False)
            names.append(add)
        if n == 3 and remove and remove in fleet.alive():
            fleet.remove(remove)
            names.remove(remove)
    for _, action, label in pending:
        action()
        fleet.events.append(label)


class Collector:
    """Every record of ``topic`` seen by a read_committed consumer, in a thread."""

    def __init__(self, bootstrap: str, topic: str, decode: Callable[[bytes], object]):
        self.items: list = []
        self._stop = threading.Event()
        self._c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"chaos-{uuid.uuid4().hex}",
                            "auto.offset.reset": "earliest", "enable.auto.commit": False,
                            "isolation.level": "read_committed"})
        self._c.subscribe([topic])
        self._decode = decode
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for m in self._c.consume(500, 0.2):
                if not m.error():
                    self.items.append(self._decode(m.value()))

    def close(self) -> None:
        self._stop.set()
        self._t.join(10)
        self._c.close()


def worker_env(bootstrap: str, prefix: str, **extra: str) -> dict:
    return dict(os.environ, TOCSIN_BROKER=bootstrap, TOCSIN_TOPIC_PREFIX=prefix,
                TOCSIN_PARTITIONS="4", PYTHONUNBUFFERED="1", TOCSIN_DEV="1", **extra)
