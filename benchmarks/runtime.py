"""The runtime benchmark (issue 15), side by side in one run on one private broker:

  failover    kill -9 of one of two workers while frames flow; seconds from the kill until
              every asset's alerts flow again (an alert of a frame stamped after the kill,
              seen by a read_committed consumer): the runtime (exactly once, 3 s session,
              static membership), classic and KIP-848 protocols; with --baseline-tree DIR
              also the runtime of that tree (the Faust worker measured 63.8 s, docs/runtime.md).
  scaling     a burst of frames through 1, 2 and 3 runtime workers of one group: samples/s and
              worker CPU-seconds per million samples (on 2 cores the CPU figure shows the
              scaling that the wall clock cannot).
  guarantee   one worker, the same burst, exactly_once against at_least_once.

Report and JSON by benchmarks/report.py (each round keeps its load average: the machine is
shared). Usage:
    python -m benchmarks.runtime [--baseline-tree DIR] [--burst 16000] [--rounds 1]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer

from benchmarks.report import Report, add_arguments
from benchmarks.threshold_path import ASSETS, load, plant_yaml
from tocsin.connectors import kafka_admin
from tocsin.contracts import topics
from tocsin.contracts.alerts import Alert
from tocsin.services.kafka import KafkaBroker, free_port

ROOT = Path(__file__).resolve().parent.parent
# the broker settings failover needs (the `cluster` branch makes them the default)
FAILOVER_BROKER = {"group.min.session.timeout.ms": "1000",
                   "group.initial.rebalance.delay.ms": "0",
                   # KIP-848 groups: the session is the broker's (default 45 s)
                   "group.consumer.session.timeout.ms": "3000",
                   "group.consumer.min.session.timeout.ms": "1000",
                   "group.consumer.heartbeat.interval.ms": "1000",
                   "group.consumer.min.heartbeat.interval.ms": "500",
                   "transaction.abort.timed.out.transaction.cleanup.interval.ms": "1000"}


def load_avg() -> str:
    return "load %.1f %.1f %.1f" % os.getloadavg()


class Worker:
    def __init__(self, kind: str, name: str, broker: str, prefix: str, cfg: Path, workdir: Path,
                 old_tree: Path | None, **env):
        e = dict(os.environ, TOCSIN_BROKER=broker, TOCSIN_TOPIC_PREFIX=prefix,
                 TOCSIN_PARTITIONS="4", TOCSIN_PLANT_CONFIG=str(cfg), PYTHONUNBUFFERED="1",
                 TOCSIN_DATA_DIR=str(workdir / f"{prefix}{name}-data"), TOCSIN_AGENTS="thresholds",
                 TOCSIN_WORKER_NAME=name, TOCSIN_LOG_LEVEL="info", **env)
        cwd = ROOT
        if kind == "old":
            cwd, e["PYTHONPATH"] = old_tree, str(old_tree)
        self.marker = "runtime: ready"
        self.log = workdir / f"{prefix}{name}.log"
        self.p = subprocess.Popen([sys.executable, "-m", "tocsin.cli", "worker"], env=e,
                                  cwd=cwd, stdout=open(self.log, "wb"), stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while self.marker not in self.log.read_text(errors="replace"):
            if self.p.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker not ready:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.2)

    def cpu_s(self) -> float:
        try:
            f = Path(f"/proc/{self.p.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(30)
            except subprocess.TimeoutExpired:
                self.p.kill()


def consumer(broker: str, topic: str) -> Consumer:
    c = Consumer({"bootstrap.servers": broker, "group.id": f"bench-{uuid.uuid4().hex}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False,
                  "isolation.level": "read_committed", "fetch.wait.max.ms": 10})
    c.subscribe([topic])
    return c


def setup(broker: str) -> str:
    prefix = f"r{uuid.uuid4().hex[:6]}."
    kafka_admin.ensure_topics(broker, [prefix + t for t in topics.ALL], 4)
    return prefix


def failover(kind, broker, cfg, workdir, args, **env) -> dict:
    prefix = setup(broker)
    c = consumer(broker, prefix + topics.ALERTS)
    ws = [Worker(kind, f"w{i}", broker, prefix, cfg, workdir, args.old_tree, **env)
          for i in (1, 2)]
    for w in ws:
        w.wait_ready()
    n = int(args.rate * (args.settle + args.wait + 30))
    feed = mp.Process(target=load, args=(broker, prefix + topics.READINGS, args.rate, n, 20))
    feed.start()
    try:
        t0 = time.monotonic()
        flowing: set[str] = set()
        while (len(flowing) < len(ASSETS) or time.monotonic() - t0 < args.settle) and \
                time.monotonic() - t0 < 90:  # every asset alarming, and settle s at least
            for m in c.consume(500, 0.1):
                if not m.error():
                    flowing.add(Alert.decode(m.value()).asset)
        t_kill = time.time_ns()
        ws[0].p.kill()
        load_at_kill = load_avg()
        first: dict[str, int] = {}
        deadline = time.monotonic() + args.wait
        while len(first) < len(ASSETS) and time.monotonic() < deadline:
            for m in c.consume(500, 0.1):
                if m.error():
                    continue
                a = Alert.decode(m.value())
                if a.source_ts > t_kill and a.asset not in first:
                    first[a.asset] = time.time_ns()
    finally:
        feed.terminate()
        c.close()
        for w in ws:
            w.stop()
    gaps = sorted((first.get(a, time.time_ns()) - t_kill) / 1e9 for a in ASSETS)
    return {"all_flowing_s": gaps[-1], "median_asset_s": statistics.median(gaps),
            "assets_back": float(len(first)), "load": load_at_kill}


def burst(workers: int, guarantee: str, broker, cfg, workdir, args) -> dict:
    prefix = setup(broker)
    c = consumer(broker, prefix + topics.ALERTS)
    ws = [Worker("new", f"w{i}", broker, prefix, cfg, workdir, None,
                 TOCSIN_PROCESSING_GUARANTEE=guarantee) for i in range(1, workers + 1)]
    try:
        for w in ws:
            w.wait_ready()
        time.sleep(4)  # the group settles (each join is a cooperative rebalance)
        cpu0 = sum(w.cpu_s() for w in ws)
        feed = mp.Process(target=load, args=(broker, prefix + topics.READINGS, 0, args.burst,
                                             args.samples))
        feed.start()
        got, t_first, t_last = 0, 0.0, 0.0
        deadline = time.monotonic() + 600
        while got < args.burst and time.monotonic() < deadline:
            msgs = [m for m in c.consume(1000, 0.2) if not m.error()]
            if msgs:
                t_last = time.monotonic()
                t_first = t_first or t_last
                got += len(msgs)
        cpu = sum(w.cpu_s() for w in ws) - cpu0
        feed.join()
    finally:
        c.close()
        for w in ws:
            w.stop()
    samples = got * args.samples
    return {"received": got, "samples_per_s": samples / max(t_last - t_first, 1e-9),
            "cpu_s_per_m_samples": cpu / (samples / 1e6), "load": load_avg()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rate", type=float, default=100.0, help="frames/s during failover")
    ap.add_argument("--settle", type=float, default=5.0)
    ap.add_argument("--wait", type=float, default=120.0, help="longest wait for failover")
    ap.add_argument("--burst", type=int, default=16000, help="frames per scaling run")
    ap.add_argument("--samples", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--only", choices=["failover", "scaling"])
    args = add_arguments(ap).parse_args()
    args.old_tree = args.baseline_tree
    rep = Report("runtime", vars(args))
    workdir = Path(tempfile.mkdtemp(prefix="tocsin-rt-bench-"))
    cfg = workdir / "plant.yaml"
    cfg.write_text(plant_yaml())
    broker = KafkaBroker(workdir / "kafka", port=free_port(), controller_port=free_port(),
                         extra=FAILOVER_BROKER).start()
    print(f"work dir: {workdir}; {load_avg()}", flush=True)

    def record(name: str, r: dict) -> None:
        rep.add(name, **{k: v for k, v in r.items() if isinstance(v, float)})
        print(f"{name:<34} " + ", ".join(f"{k} {v:,.3g}" if isinstance(v, float) else
                                         f"{k} {v}" for k, v in r.items()), flush=True)

    try:
        for _ in range(args.rounds):
            if args.only != "scaling":
                if args.baseline_tree:
                    record("failover baseline tree", failover("old", broker.bootstrap, cfg,
                                                              workdir, args))
                record("failover runtime", failover("new", broker.bootstrap, cfg, workdir,
                                                    args))
                record("failover runtime, KIP-848", failover(
                    "new", broker.bootstrap, cfg, workdir, args,
                    TOCSIN_GROUP_PROTOCOL="consumer"))
            if args.only == "failover":
                continue
            for n in (1, 2, 3):
                record(f"burst {n} worker(s) exactly_once",
                       burst(n, "exactly_once", broker.bootstrap, cfg, workdir, args))
            record("burst 1 worker at_least_once",
                   burst(1, "at_least_once", broker.bootstrap, cfg, workdir, args))
    finally:
        broker.stop()
    for name in ("failover runtime", "failover runtime, KIP-848", "failover baseline tree"):
        rep.check(f"{name}: all assets flowing again (s)", "all_flowing_s", name)
    rep.check("failover runtime vs baseline tree", "all_flowing_s", "failover runtime",
              peer="failover baseline tree")
    one = "burst 1 worker(s) exactly_once"
    rep.check("exactly_once vs at_least_once (samples/s)", "samples_per_s", one,
              peer="burst 1 worker at_least_once")
    rep.check("exactly_once vs at_least_once (CPU per sample)", "cpu_s_per_m_samples", one,
              peer="burst 1 worker at_least_once")
    for n in (2, 3):
        rep.check(f"{n} workers vs 1 (CPU per sample)", "cpu_s_per_m_samples",
                  f"burst {n} worker(s) exactly_once", peer=one)
    rep.finish(args)


if __name__ == "__main__":
    main()
