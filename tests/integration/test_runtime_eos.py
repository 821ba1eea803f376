"""The runtime's exactly-once guarantee, on the real broker: a counting operator's worker is
killed with SIGKILL at random moments while input flows, restarted each time, and a
read_committed consumer must see every input exactly once with per-key counts 1, 2, 3, ...
(state restored from the changelog, never a step back, never a duplicate)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict

from confluent_kafka import Consumer, Producer

from tests.waiting import wait_for
from tocsin.connectors import kafka_admin
from tocsin.streams.runtime.counting import IN, OUT

N = 6000
KEYS = 40


def _worker(kafka: str, prefix: str, name: str, log) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tocsin.streams.runtime.counting",
                             "--broker", kafka, "--prefix", prefix, "--worker", name],
                            stdout=log, stderr=subprocess.STDOUT,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))


def _feed(kafka: str, topic: str, n: int, seconds: float) -> None:
    p = Producer({"bootstrap.servers": kafka, "partitioner": "murmur2_random", "linger.ms": 5})
    for i in range(n):
        p.produce(topic, key=f"k{i % KEYS}".encode(), value=str(i).encode())
        if i % 100 == 99:
            p.poll(0)
            time.sleep(seconds / (n / 100))
    p.flush(30)


class Outputs:
    """A read_committed consumer of the output topic, in a thread."""

    def __init__(self, kafka: str, topic: str):
        self.by_key: dict[str, list[tuple[int, int]]] = defaultdict(list)
        self.values: dict[int, int] = defaultdict(int)
        self.n = 0
        self._stop = threading.Event()
        self._c = Consumer({"bootstrap.servers": kafka, "group.id": f"chk-{uuid.uuid4().hex}",
                            "auto.offset.reset": "earliest", "enable.auto.commit": False,
                            "isolation.level": "read_committed"})
        self._c.subscribe([topic])
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for m in self._c.consume(1000, 0.2):
                if m.error():
                    continue
                key, count, value = m.value().decode().split(":")
                self.by_key[key].append((int(count), int(value)))
                self.values[int(value)] += 1
                self.n += 1

    def close(self) -> None:
        self._stop.set()
        self._t.join(10)
        self._c.close()


def test_kill9_exactly_once(kafka, tmp_path):
    prefix = f"t{uuid.uuid4().hex[:8]}."
    kafka_admin.ensure_topics(kafka, [prefix + IN, prefix + OUT, prefix + "tocsin.deadletter"], 4)
    rng = random.Random()
    seed = rng.randrange(1 << 30)
    rng.seed(seed)
    out = Outputs(kafka, prefix + OUT)
    log = open(tmp_path / "worker.log", "ab")
    w = _worker(kafka, prefix, "w1", log)
    feeder = threading.Thread(target=_feed, args=(kafka, prefix + IN, N, 30.0), daemon=True)
    feeder.start()
    kills, restored = 0, 0
    try:
        while feeder.is_alive() or kills < 5:
            # a kill only once this incarnation has committed something: a kill during
            # start-up tests nothing
            seen = out.n
            wait_for(lambda s=seen: out.n > s or not feeder.is_alive() and out.n >= N, 120,
                     "progress after a restart", seen=lambda: f"{out.n} outputs")
            time.sleep(rng.uniform(0.0, 1.5))
            w.send_signal(signal.SIGKILL)
            w.wait()
            kills += 1
            w = _worker(kafka, prefix, "w1", log)
        feeder.join()
        wait_for(lambda: len(out.values) >= N, 180, f"{N} distinct outputs",
                 seen=lambda: f"{len(out.values)} distinct, {out.n} in all")
        time.sleep(2)  # anything late would be a duplicate: give it the chance to show
        restored = (tmp_path / "worker.log").read_text(errors="replace").count(
            "restored (") - (tmp_path / "worker.log").read_text(errors="replace").count(
            "restored (0 records")
    finally:
        w.terminate()
        w.wait(30)
        out.close()
        log.close()
    print(f"seed {seed}: {kills} kills survived, {out.n} outputs, {restored} partition "
          f"restores with state")
    assert restored > 0, "no restart ever restored state: the kills tested nothing"
    dups = {v: c for v, c in out.values.items() if c > 1}
    assert not dups, f"duplicated outputs (seed {seed}): {list(dups.items())[:10]}"
    assert set(out.values) == set(range(N))
    for key, seq in out.by_key.items():
        counts = [c for c, _ in seq]
        assert counts == list(range(1, len(seq) + 1)), f"{key}: counts {counts[:40]}"
        values = [v for _, v in seq]
        assert values == sorted(values), f"{key}: out of input order"
