"""The threshold runner in-process on a broker: where its time goes (diagnosis, not a verdict).

  burst    pre-fill --frames frames x 100 samples, run the runner until all are processed:
           samples/s, CPU us per frame, and with --profile the cProfile top 30.
  commits  --rate frames/s for --seconds against the warm runner: per transaction the
           commit time (produce + send offsets + commit) and records, per record the pickup
           time (Kafka timestamp -> process), p50/p90/p99.

Both with the runtime's guarantees as configured (exactly once by default); ``--set
name=value`` overrides a worker setting (batch_max=2048), ``--producer k=v`` /
``--consumer k=v`` a librdkafka property (retry.backoff.ms=100 to see the old backoff).
Usage: python -m benchmarks.runner_profile burst|commits [--broker 127.0.0.1:9092]
"""

from __future__ import annotations

import argparse
import cProfile
import multiprocessing as mp
import os
import pstats
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np

from benchmarks.threshold_path import load, plant_yaml
from tocsin.config.plant import load_plant
from tocsin.config.worker import load_settings
from tocsin.connectors import kafka_admin
from tocsin.contracts import topics
from tocsin.streams import metrics
from tocsin.streams.runtime.runner import Runner
from tocsin.streams.thresholds_op import ThresholdsOperator


def _pairs(items: list[str]) -> dict[str, str]:
    return dict(kv.split("=", 1) for kv in items)


def make_runner(args, prefix: str) -> Runner:
    cfg = Path(tempfile.mkdtemp(prefix="runner-profile-")) / "plant.yaml"
    cfg.write_text(plant_yaml())
    s = load_settings(broker=args.broker, topic_prefix=prefix, plant_config=cfg,
                      agents="thresholds", worker_name=f"prof-{os.getpid()}", **_pairs(args.set))
    r = Runner(ThresholdsOperator(s, load_plant(cfg)), s)
    pc, cc = r.producer_conf, r.consumer_conf
    r.producer_conf = lambda: {**pc(), **_pairs(args.producer)}  # type: ignore[method-assign]
    r.consumer_conf = lambda: {**cc(), **_pairs(args.consumer)}  # type: ignore[method-assign]
    return r


def burst(args, prefix: str) -> None:
    load(args.broker, prefix + topics.READINGS, 0, args.frames, 100)
    r = make_runner(args, prefix)
    frames = metrics.FRAMES.labels("thresholds")
    base = frames._value.get()
    got: dict[str, float] = {}

    def watch() -> None:
        while frames._value.get() <= base:
            time.sleep(0.01)
        got["t0"], got["c0"] = time.perf_counter(), time.process_time()
        while frames._value.get() < base + args.frames:
            time.sleep(0.01)
        got["t1"], got["c1"] = time.perf_counter(), time.process_time()
        r.stop()

    threading.Thread(target=watch, daemon=True).start()
    prof = cProfile.Profile() if args.profile else None
    if prof:
        prof.enable()
    r.run()
    if prof:
        prof.disable()
    dt, cpu = got["t1"] - got["t0"], got["c1"] - got["c0"]
    print(f"{args.frames} frames in {dt:.2f} s: {args.frames * 100 / dt:,.0f} samples/s, "
          f"CPU {cpu / args.frames * 1e6:.0f} us per frame; load {os.getloadavg()[0]:.1f}")
    if prof:
        pstats.Stats(prof).sort_stats("tottime").print_stats(30)


def commits(args, prefix: str) -> None:
    r = make_runner(args, prefix)
    commit_s: list[float] = []
    sizes: list[int] = []
    pickup_ms: list[int] = []
    commit, process = r._commit, r.op.process

    def timed_commit(records, outputs, changes) -> None:
        t = time.perf_counter()
        commit(records, outputs, changes)
        commit_s.append(time.perf_counter() - t)
        sizes.append(len(records))

    def timed_process(records, out) -> None:
        now = time.time_ns() // 1_000_000
        pickup_ms.extend(now - x.timestamp_ms for x in records)
        process(records, out)

    r._commit, r.op.process = timed_commit, timed_process  # type: ignore[method-assign]
    threading.Thread(target=r.run, daemon=True).start()
    r.ready.wait(60)
    time.sleep(1)
    feed = mp.Process(target=load, args=(args.broker, prefix + topics.READINGS, args.rate,
                                         int(args.rate * args.seconds), 100))
    feed.start()
    feed.join()
    time.sleep(1)
    r.stop()
    time.sleep(1)
    c, n, pk = np.array(commit_s) * 1e3, np.array(sizes), np.array(pickup_ms)

    def pct(a) -> str:
        return " / ".join(f"{np.percentile(a, q):.1f}" for q in (50, 90, 99))

    print(f"{args.rate:g} frames/s, {len(c)} transactions, records per transaction median "
          f"{np.median(n):.0f} max {n.max()}; commit ms p50/p90/p99 {pct(c)}; pickup ms "
          f"{pct(pk)}; load {os.getloadavg()[0]:.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("what", choices=["burst", "commits"])
    ap.add_argument("--broker", default=os.environ.get("TOCSIN_TEST_BROKER", "127.0.0.1:9092"))
    ap.add_argument("--frames", type=int, default=8000)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--rate", type=float, default=200.0)
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--set", action="append", default=[], metavar="SETTING=V")
    ap.add_argument("--producer", action="append", default=[], metavar="PROP=V")
    ap.add_argument("--consumer", action="append", default=[], metavar="PROP=V")
    args = ap.parse_args()
    prefix = f"rp{uuid.uuid4().hex[:6]}."
    kafka_admin.ensure_topics(args.broker, [prefix + t for t in topics.ALL], 4)
    (burst if args.what == "burst" else commits)(args, prefix)


if __name__ == "__main__":
    main()
