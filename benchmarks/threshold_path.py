"""Side-by-side benchmark of the threshold path: frames -> Kafka -> worker -> alerts.

Contenders, run in the same invocation on the same broker, each on its own topic prefix:
  tocsin  `tocsin worker` as deployed: the threshold path on Tocsin's runtime with its
          guarantees on (exactly once: outputs, alarm state and offsets in one Kafka
          transaction per batch; read_committed consumer here)
  bare    benchmarks/bare_loop.py: confluent-kafka consume -> same check -> produce (ceiling)
  tocsin-base  with --baseline-tree DIR: the same worker from an earlier source tree (before
          and after in one run)
  bare-batched  with --bare-batched: the bare loop with linger.ms 5 (its alerts batched per
          produce request, as the runtime's transaction batches them)

Phases per contender and round:
  latency     frames of --samples samples at --rate frames/s for --duration s; every frame
              carries one sample that toggles a high limit, so every frame yields one alert
              event; latency = alert consumed here - source timestamp of that sample.
  throughput  --burst frames produced as fast as possible; samples/s = samples between the
              first and the last alert consumed / that span.

A private broker is first warmed up (``--warmup-s``, 60 s of the latency traffic through the
tocsin contender, discarded): a fresh broker's JVM is still compiling, and the first minutes
measured its start-up, not the contenders.

Besides wall-clock samples/s, each contender's CPU-seconds over the burst span are read
from /proc: samples per CPU-second is the per-message cost, which a shared machine's load
moves much less than the wall clock. Report and JSON: benchmarks/report.py. Usage:
    python -m benchmarks.threshold_path [--broker HOST:PORT] [--rounds 3]
        [--baseline-tree DIR] [--set TOCSIN_X=V ...] [--warmup-s S]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import orjson
from confluent_kafka import Consumer, Producer

from benchmarks.report import Report, add_arguments
from tocsin.connectors import kafka_admin
from tocsin.contracts import topics
from tocsin.contracts.alerts import Alert
from tocsin.services.kafka import KafkaBroker, free_port

ASSETS = [f"asset-{i}" for i in range(8)]
TAGS = ["trigger", "t1", "t2", "t3", "t4"]
HERE = Path(__file__).resolve().parent


def plant_yaml() -> str:
    lines = ["assets:"]
    for a in ASSETS:
        lines += [f"  {a}:", "    tags:", "      trigger: {high: 90.0, deadband: 1.0}"]
        lines += [f"      {t}: {{high: 1000.0, low: -1000.0}}" for t in TAGS[1:]]
    return "\n".join(lines) + "\n"


class FrameMaker:
    """Cheap frame generator (the load must not eat the CPU the contenders need): per asset a
    template of `samples` samples over the last 0.2 ms; the newest sample is the trigger, hot
    on even frame numbers, so every frame toggles one high alarm."""

    def __init__(self, samples: int):
        per = max(1, samples // len(TAGS))
        self.tags = [t for _ in range(per) for t in TAGS]
        self.offsets = [(per - 1 - i) * 10_000 for i in range(per) for _ in TAGS]
        rng = np.random.default_rng(1)
        self.values = [round(v, 3) for v in rng.normal(50.0, 1.0, len(self.tags)).tolist()]
        self.trigger = max(i for i, t in enumerate(self.tags) if t == "trigger")
        for i, t in enumerate(self.tags):
            if t == "trigger":
                self.values[i] = 50.0
        self.quality = [0] * len(self.tags)

    def frame(self, asset: str, k: int, now_ns: int) -> bytes:
        values = list(self.values)
        values[self.trigger] = 95.0 if k % 2 == 0 else 50.0
        return orjson.dumps({"schema": "tocsin.readings/1", "asset": asset, "seq": k,
                             "tag": self.tags, "ts": [now_ns - o for o in self.offsets],
                             "value": values, "quality": self.quality})


def load(broker: str, topic: str, rate: float, count: int, samples: int, k0: int = 0) -> None:
    """Producer process: `count` frames at `rate` frames/s (0: as fast as possible); frame
    numbers per asset start at `k0` (even: the first frame of each asset raises)."""
    p = Producer({"bootstrap.servers": broker, "linger.ms": 0 if rate else 5, "acks": "all",
                  "enable.idempotence": True})
    maker = FrameMaker(samples)
    per_asset = {a: k0 for a in ASSETS}
    # connect and get the idempotent producer id before the clock starts: frames stamped
    # while librdkafka still waits for the PID would show up as contender latency
    p.produce(topic + ".warmup", b"")
    p.flush(30)
    t0 = time.perf_counter()
    for i in range(count):
        if rate:
            wait = t0 + i / rate - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
        a = ASSETS[i % len(ASSETS)]
        data = maker.frame(a, per_asset[a], time.time_ns())
        per_asset[a] += 1
        while True:
            try:
                p.produce(topic, data, key=a.encode())
                break
            except BufferError:
                p.poll(0.01)
        p.poll(0)
    p.flush(60)


def alert_consumer(broker: str, topic: str) -> Consumer:
    c = Consumer({"bootstrap.servers": broker, "group.id": f"bench-{uuid.uuid4().hex}",
                  "auto.offset.reset": "earliest", "fetch.wait.max.ms": 5,
                  "enable.auto.commit": False, "isolation.level": "read_committed"})
    c.subscribe([topic])
    return c


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) the process has used so far (/proc)."""
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def drain(c: Consumer, expected: int, timeout: float, pid: int | None = None):
    """Consume ``expected`` alerts; with ``pid``, also that process's CPU-seconds between
    the first and the last alert (the burst span)."""
    lat, proc_lat, arrivals = [], [], []
    cpu = [0.0, 0.0]
    deadline = time.monotonic() + timeout
    while len(arrivals) < expected and time.monotonic() < deadline:
        first = c.poll(0.1)
        if first is None:
            continue
        for msg in [first, *c.consume(999, 0)]:
            if msg.error():
                continue
            now = time.time_ns()
            a = Alert.decode(msg.value())
            lat.append((now - a.source_ts) / 1e6)
            proc_lat.append((a.emitted_ts - a.source_ts) / 1e6)
            arrivals.append(now)
        if pid is not None:
            cpu[1] = cpu_s(pid)
            if len(arrivals) == 1 or not cpu[0]:
                cpu[0] = cpu[1]
    return np.array(lat), np.array(proc_lat), np.array(arrivals), cpu[1] - cpu[0]


def start_contender(name: str, broker: str, prefix: str, cfg: Path, workdir: Path,
                    tree: Path | None = None, extra: dict | None = None):
    env = dict(os.environ, TOCSIN_BROKER=broker, TOCSIN_TOPIC_PREFIX=prefix,
               TOCSIN_PARTITIONS="4", TOCSIN_PLANT_CONFIG=str(cfg), PYTHONUNBUFFERED="1",
               TOCSIN_DATA_DIR=str(workdir / f"{prefix}data"), TOCSIN_LOG_LEVEL="WARNING")
    log = open(workdir / f"{prefix}{name}.log", "wb")
    cwd = None
    if name.startswith("tocsin"):
        cmd = [sys.executable, "-m", "tocsin.cli", "worker"]
        env["TOCSIN_LOG_LEVEL"] = "info"
        env["TOCSIN_AGENTS"] = "thresholds"
        env["TOCSIN_PROCESSING_GUARANTEE"] = "exactly_once"
        env.update(extra or {})
        if tree is not None:
            cwd, env["PYTHONPATH"] = str(tree), str(tree)
        marker = "runtime: ready"
    else:
        cmd = [sys.executable, str(HERE / "bare_loop.py"), "--broker", broker, "--prefix",
               prefix, "--plant-config", str(cfg)]
        if name == "bare-batched":
            cmd += ["--linger-ms", "5"]
        marker = "ready"
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=cwd)
    path = workdir / f"{prefix}{name}.log"
    deadline = time.monotonic() + 120
    while marker not in path.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{name} did not start:\n{path.read_text()[-2000:]}")
        time.sleep(0.2)
    return proc


def run_round(name, broker, cfg, workdir, args) -> dict:
    prefix = f"b{uuid.uuid4().hex[:6]}."
    kafka_admin.ensure_topics(broker, [prefix + t for t in topics.ALL], 4)
    readings = prefix + topics.READINGS
    # throughput: the burst waits in the topic before the contender starts, so neither the
    # load generator nor start-up shares the measured span
    load(broker, readings, 0, args.burst, args.samples)
    c = alert_consumer(broker, prefix + topics.ALERTS)
    tree = args.baseline_tree if name == "tocsin-base" else None
    proc = start_contender(name, broker, prefix, cfg, workdir, tree,
                           dict(kv.split("=", 1) for kv in args.set) if name == "tocsin" else None)
    try:
        _, _, arr, burst_cpu = drain(c, args.burst, 600, proc.pid)
        # latency: a fixed rate against the warm contender (frame numbers continue per asset)
        k0 = args.burst // len(ASSETS)
        n = int(args.rate * args.duration)
        prod = mp.Process(target=load, args=(broker, readings, args.rate, n, args.samples, k0))
        prod.start()
        lat, plat, _, _ = drain(c, n, args.duration + 60)
        prod.join()
        c.close()
    finally:
        proc.terminate()
        proc.wait(30)
    span = (arr[-1] - arr[0]) / 1e9 if len(arr) > 1 else float("nan")
    np.save(workdir / f"{prefix}{name}-latency-ms.npy", lat)
    return {
        "received": len(lat), "expected": n,
        "p50": float(np.percentile(lat, 50)), "p99": float(np.percentile(lat, 99)),
        "proc_p50": float(np.percentile(plat, 50)), "proc_p99": float(np.percentile(plat, 99)),
        "burst_received": len(arr),
        "samples_per_s": (len(arr) - 1) * args.samples / span,
        "samples_per_cpu_s": (len(arr) - 1) * args.samples / max(burst_cpu, 1e-9),
    }


def warm_up(broker: str, cfg: Path, workdir: Path, seconds: float, rate: float,
            samples: int) -> None:
    """The same traffic through the tocsin contender for `seconds`, results discarded. A
    fresh broker's JVM is still compiling its hot paths: on this machine the worker's alert
    latency p50 on a new broker went 88 -> 32 -> 21 ms over its first three 10 s runs, against
    11-13 ms on one warmed up (docs/benchmarks.md); without this the first round measures the
    broker's start-up."""
    prefix = f"warm{uuid.uuid4().hex[:6]}."
    kafka_admin.ensure_topics(broker, [prefix + t for t in topics.ALL], 4)
    c = alert_consumer(broker, prefix + topics.ALERTS)
    proc = start_contender("tocsin", broker, prefix, cfg, workdir)
    try:
        n = int(rate * seconds)
        feed = mp.Process(target=load, args=(broker, prefix + topics.READINGS, rate, n, samples))
        feed.start()
        drain(c, n, seconds + 60)
        feed.join()
    finally:
        c.close()
        proc.terminate()
        proc.wait(30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--broker", help="use this broker (default: start a private one)")
    ap.add_argument("--rate", type=float, default=1000.0, help="frames/s in the latency phase")
    ap.add_argument("--samples", type=int, default=100, help="samples per frame")
    ap.add_argument("--duration", type=float, default=20.0, help="s of the latency phase")
    ap.add_argument("--burst", type=int, default=20000,
                    help="frames in the throughput phase (a multiple of 8)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", choices=["bare", "tocsin"], help="run one contender (diagnosis)")
    ap.add_argument("--bare-batched", action="store_true",
                    help="also run the bare loop with linger.ms 5 (alerts batched per request, "
                    "as the runtime's transaction batches them)")
    ap.add_argument("--warmup-s", type=float, default=None,
                    help="s of the latency traffic through the tocsin contender before the "
                    "rounds, discarded (default 60 on the private broker, 0 with --broker)")
    ap.add_argument("--set", action="append", default=[], metavar="TOCSIN_X=V",
                    help="environment for the tocsin contender (e.g. TOCSIN_BATCH_MAX=2048)")
    args = add_arguments(ap).parse_args()
    rep = Report("threshold_path", vars(args))
    workdir = Path(tempfile.mkdtemp(prefix="tocsin-bench-"))
    cfg = workdir / "plant.yaml"
    cfg.write_text(plant_yaml())
    broker_obj = None
    broker = args.broker
    if broker is None:
        broker_obj = KafkaBroker(workdir / "kafka", port=free_port(),
                                 controller_port=free_port()).start()
        broker = broker_obj.bootstrap
    names = [args.only] if args.only else ["bare", "tocsin"]
    if args.baseline_tree and not args.only:
        names.append("tocsin-base")
    if args.bare_batched and not args.only:
        names.append("bare-batched")
    print(f"work dir (logs, per-alert latencies): {workdir}", flush=True)
    warm = args.warmup_s if args.warmup_s is not None else (0.0 if args.broker else 60.0)
    try:
        if warm > 0:
            print(f"warming the broker up: {warm:.0f} s at {args.rate:.0f} frames/s", flush=True)
            warm_up(broker, cfg, workdir, warm, args.rate, args.samples)
        for r in range(args.rounds):
            for name in names:
                res = run_round(name, broker, cfg, workdir, args)
                rep.add(name, samples_per_s=res["samples_per_s"],
                        samples_per_cpu_s=res["samples_per_cpu_s"], p50_ms=res["p50"],
                        p99_ms=res["p99"], worker_p99_ms=res["proc_p99"],
                        alerts_missing=res["expected"] - res["received"])
                print(f"round {r + 1} {name:>11}: {res['received']}/{res['expected']} alerts, "
                      f"latency p50 {res['p50']:.2f} ms p99 {res['p99']:.2f} ms "
                      f"(in-worker p99 {res['proc_p99']:.2f} ms); burst "
                      f"{res['samples_per_s']:,.0f} samples/s, "
                      f"{res['samples_per_cpu_s']:,.0f} per CPU-s", flush=True)
    finally:
        if broker_obj:
            broker_obj.stop()
    rep.note(f"{args.rate:.0f} frames/s x {args.samples} samples for {args.duration:.0f} s "
             f"(latency); burst of {args.burst} frames (samples/s); tocsin env {args.set}; "
             f"broker warmed up {warm:.0f} s")
    if not args.only:
        rep.check("threshold path vs bare loop (samples/s)", "samples_per_s", "tocsin",
                  peer="bare", op=">=", target=0.8)
        rep.check("threshold path vs bare loop (samples per CPU-s)", "samples_per_cpu_s",
                  "tocsin", peer="bare")
        rep.check(f"p99 at {args.rate:.0f} frames/s x {args.samples}", "p99_ms", "tocsin",
                  op="<=", target=10)
        rep.check("bare loop p99 (same run)", "p99_ms", "bare")
        if "bare-batched" in names:
            rep.check("threshold path vs bare loop, linger 5 ms (samples/s)", "samples_per_s",
                      "tocsin", peer="bare-batched")
            rep.check("threshold path vs bare loop, linger 5 ms (samples per CPU-s)",
                      "samples_per_cpu_s", "tocsin", peer="bare-batched")
        if "tocsin-base" in names:
            rep.check("this tree vs baseline tree (samples/s)", "samples_per_s", "tocsin",
                      peer="tocsin-base")
            rep.check("this tree vs baseline tree (samples per CPU-s)", "samples_per_cpu_s",
                      "tocsin", peer="tocsin-base")
            rep.check("baseline tree vs bare loop (samples/s)", "samples_per_s",
                      "tocsin-base", peer="bare")
    rep.finish(args)


if __name__ == "__main__":
    main()
