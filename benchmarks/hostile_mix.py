"""Poison input against a real worker (issue 14): alarm latency of good frames under a hostile
mix next to a clean run, and the worker's RSS under 30,000 unknown assets x 20 tags.

Contenders: the worker (`tocsin worker`, agents thresholds + features) of one or more source
trees (``--tree``, default this checkout; give an older checkout to compare before/after), each
on its own topic prefix of the same broker, one after the other in the same invocation.
Phases per contender, in this order (a worker that crash-loops on poison measures nothing
after it):
  clean     --rate good frames/s of pump-1 for --duration s; each toggles bearing_temp's high
            limit, so each is one alert event; latency = alert consumed here - source time.
  unknown   --assets frames of unknown assets x --tags tags, then one good frame; RSS of the
            worker (VmRSS) before and 5 s after it alarmed; warning lines in its log.
  hostile   the clean phase again, with one hostile record (tocsin.connectors.simulator.hostile:
            garbage, 2 MB garbage, ragged arrays, booleans, seq 1e30, NaN, empty/control-char
            ids, future and ancient timestamps) after every --every good frames.
Everything goes to partition 0 of plant.readings, so the alarm of the last good frame means
the thresholds agent has read everything before it. Prints p50/p99 per phase, the ratio
hostile/clean, dead letters and RSS. Usage:
    python -m benchmarks.hostile_mix --broker 127.0.0.1:9092 [--tree /path/to/old/checkout]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from tocsin.connectors.simulator.hostile import good_frame, hostile_frames, unknown_asset_frames
from tocsin.contracts.alerts import Alert

HERE = Path(__file__).resolve().parent.parent
TOPICS = ("plant.readings", "plant.alerts", "plant.features", "plant.scores", "tocsin.deadletter")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def make_topics(broker: str, prefix: str) -> None:
    admin = AdminClient({"bootstrap.servers": broker})
    big = {"max.message.bytes": str(4 << 20)}  # room for the 2 MB garbage record
    new = [NewTopic(prefix + t, 2, 1, config=big if t == "plant.readings" else {})
           for t in TOPICS]
    for fut in admin.create_topics(new).values():
        fut.result(30)
    time.sleep(1.0)


class Bench:
    def __init__(self, broker: str, tree: Path, workdir: Path):
        self.broker, self.tree, self.workdir = broker, tree, workdir
        self.prefix = f"h{uuid.uuid4().hex[:6]}."
        make_topics(broker, self.prefix)
        self.p = Producer({"bootstrap.servers": broker, "acks": "all", "linger.ms": 0,
                           "message.max.bytes": 4 << 20, "enable.idempotence": True})
        self.c = Consumer({"bootstrap.servers": broker, "group.id": f"b-{uuid.uuid4().hex}",
                           "auto.offset.reset": "earliest", "enable.auto.commit": False,
                           "fetch.wait.max.ms": 5})
        self.c.subscribe([self.prefix + "plant.alerts"])
        self.k = 0
        self.sent: set[int] = set()  # source times of the good frames
        self.spurious = 0  # other alert events: the rate rule of the good frames, or alerts
        # made from hostile input (the old worker alarmed on frames stamped 1970)
        self.log = workdir / f"{self.prefix}worker.log"
        env = dict(os.environ, TOCSIN_BROKER=broker, TOCSIN_TOPIC_PREFIX=self.prefix,
                   TOCSIN_PARTITIONS="2", TOCSIN_AGENTS="thresholds,features",
                   TOCSIN_DATA_DIR=str(workdir / f"{self.prefix}data"), PYTHONUNBUFFERED="1",
                   PYTHONPATH=str(tree))
        self.proc = subprocess.Popen([sys.executable, "-m", "tocsin.cli", "worker"], env=env,
                                     cwd=str(tree), stdout=open(self.log, "wb"),
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while "runtime: ready" not in self.log.read_text(errors="replace"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker did not start:\n{self.log.read_text()[-2000:]}")
            time.sleep(0.2)

    def send(self, value: bytes) -> None:
        self.p.produce(self.prefix + "plant.readings", value, partition=0)
        self.p.poll(0)

    def good(self) -> None:
        ts = time.time_ns()
        self.sent.add(ts)
        self.send(good_frame("pump-1", "bearing_temp", self.k, ts, 95.0, 50.0))
        self.k += 1

    def warm_up(self, timeout: float) -> None:
        """Until the worker has its partitions and answers: the phases measure a warm one."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.good()
            self.p.flush(10)
            if self.drain(1.0):
                break
        time.sleep(1.0)
        self.drain(0.5)

    def phase(self, rate: float, duration: float, every: int, timeout: float) -> np.ndarray:
        n = int(rate * duration)
        bad = hostile_frames("pump-1", 0, tag="bearing_temp") if every else []
        expected, lat = n, []
        t0 = time.perf_counter()
        for i in range(n):
            wait = t0 + i / rate - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            self.good()
            if every and i % every == every - 1:
                kind, _ = bad[(i // every) % len(bad)]
                fresh = dict(hostile_frames("pump-1", time.time_ns(), tag="bearing_temp"))[kind]
                self.send(fresh)
            lat += self.drain(0)
        self.p.flush(30)
        deadline = time.monotonic() + timeout
        while len(lat) < expected and time.monotonic() < deadline:
            lat += self.drain(0.2)
        return np.array(lat)

    def drain(self, wait: float) -> list[float]:
        out = []
        for msg in self.c.consume(1000, wait):
            if msg.error():
                continue
            a = Alert.decode(msg.value())
            if a.source_ts in self.sent and a.rule == "high":
                out.append((time.time_ns() - a.source_ts) / 1e6)
            else:
                self.spurious += 1
        return out

    def unknown(self, assets: int, tags: int, timeout: float) -> dict:
        before = rss_mb(self.proc.pid)
        warn0 = self.log.read_text(errors="replace").count("WARNING")
        for frame in unknown_asset_frames(assets, tags, time.time_ns()):
            while True:
                try:
                    self.send(frame)
                    break
                except BufferError:
                    self.p.poll(0.05)
        self.good()
        self.p.flush(60)
        got, deadline = [], time.monotonic() + timeout
        while not got and time.monotonic() < deadline:
            got = self.drain(0.2)
        time.sleep(5.0)  # the features agent reads the same frames
        after = rss_mb(self.proc.pid)
        warns = self.log.read_text(errors="replace").count("WARNING") - warn0
        return {"rss_before_mb": before, "rss_after_mb": after, "alarmed": bool(got),
                "warning_lines": warns}

    def deadletters(self) -> int:
        c = Consumer({"bootstrap.servers": self.broker, "group.id": f"d-{uuid.uuid4().hex}",
                      "auto.offset.reset": "earliest", "enable.auto.commit": False})
        c.subscribe([self.prefix + "tocsin.deadletter"])
        n, idle = 0, time.monotonic()
        while time.monotonic() - idle < 3:
            msg = c.poll(0.5)
            if msg is not None and not msg.error():
                n, idle = n + 1, time.monotonic()
        c.close()
        return n

    def close(self) -> str:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.c.close()
        return self.log.read_text(errors="replace")


def pct(a: np.ndarray, q: float) -> float:
    return float(np.percentile(a, q)) if len(a) else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--broker", default="127.0.0.1:9092")
    ap.add_argument("--tree", action="append", type=Path,
                    help="source tree whose worker runs (repeat to compare); default: here")
    ap.add_argument("--rate", type=float, default=50.0, help="good frames/s")
    ap.add_argument("--duration", type=float, default=20.0, help="s per latency phase")
    ap.add_argument("--every", type=int, default=5, help="good frames per hostile record")
    ap.add_argument("--assets", type=int, default=30_000)
    ap.add_argument("--tags", type=int, default=20)
    ap.add_argument("--timeout", type=float, default=120.0)
    args = ap.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="tocsin-hostile-"))
    rows = []
    for tree in args.tree or [HERE]:
        b = Bench(args.broker, tree.resolve(), workdir)
        try:
            b.warm_up(args.timeout)
            clean = b.phase(args.rate, args.duration, 0, args.timeout)
            unk = b.unknown(args.assets, args.tags, args.timeout * 2)  # before the poison:
            hostile = b.phase(args.rate, args.duration, args.every, args.timeout)
        finally:
            log = b.close()
        n = int(args.rate * args.duration)
        rows.append((tree, clean, hostile, unk, b.deadletters(), log.count("Traceback"), n,
                     b.spurious))
    print(f"\nload: {args.rate:g} good frames/s x {args.duration:g} s per phase, 1 hostile "
          f"record per {args.every} good; unknown: {args.assets} assets x {args.tags} tags")
    for tree, clean, hostile, unk, dls, tbs, n, spurious in rows:
        print(f"\n== worker of {tree}")
        for name, lat in (("clean", clean), ("hostile", hostile)):
            print(f"  {name:8s} alarms {len(lat):5d}/{n}  p50 {pct(lat, 50):8.1f} ms  "
                  f"p99 {pct(lat, 99):8.1f} ms  max {pct(lat, 100):8.1f} ms")
        print(f"  ratio hostile/clean: p50 {pct(hostile, 50) / pct(clean, 50):.2f}  "
              f"p99 {pct(hostile, 99) / pct(clean, 99):.2f}")
        print(f"  dead letters {dls}; tracebacks in the worker log {tbs}; other alert events "
              f"(rate rule, or made from hostile records) {spurious}")
        print(f"  unknown assets: RSS {unk['rss_before_mb']:.0f} -> {unk['rss_after_mb']:.0f} "
              f"MB, warning lines {unk['warning_lines']}, alarm after them: {unk['alarmed']}")
    print(f"\nlogs under {workdir}")


if __name__ == "__main__":
    main()
