"""Side-by-side benchmark of fraud scoring: transactions -> Kafka -> worker -> scores.

Contenders, in the same invocation on the same broker, each on its own topic prefix and
consumer group, each a `tocsin payments worker` process with the same model and features:
  batched       micro-batches (up to --batch-max or --batch-wait-ms), load-aware switch on
                (as deployed)
  batched-full  the same micro-batches with the switch pinned to the full model (the effect of
                batching alone)
  naive         the straightforward per-transaction scorer: the full model called once per
                message, no batching, no switch

Phases per contender:
  latency     simulated transactions at each --rates value for --seconds s against the warm
              worker; latency = score consumed here - ingest_ts stamped just before produce
              (the moment a feed would have accepted it). p50 / p99 and the light-branch share.
  throughput  --burst transactions wait in the topic, then the worker starts; transactions/s
              between its first and last score (worker timestamps).

Usage: python -m benchmarks.fraud_scoring [--broker HOST:PORT] [--model-dir DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np
from confluent_kafka import Consumer, Producer

from tocsin.connectors import kafka_admin
from tocsin.connectors.simulator.payswitch import PaymentSwitch
from tocsin.contracts import topics
from tocsin.contracts.payments import FraudScore, Transaction


def transactions(n: int) -> list[Transaction]:
    sim = PaymentSwitch(customers=3000, terminals=500, seed=21).generate(max(1, n // 7000 + 1))
    return sim.transactions[:n]


def start_worker(broker, prefix, model_dir, data_dir, extra, log: Path):
    env = dict(os.environ, TOCSIN_BROKER=broker, TOCSIN_TOPIC_PREFIX=prefix,
               TOCSIN_PARTITIONS="4", TOCSIN_DATA_DIR=str(data_dir),
               TOCSIN_FRAUD_MODEL_DIR=str(model_dir), PYTHONUNBUFFERED="1",
               TOCSIN_DEV="1")  # simulated data: the development PAN key is fine
    fh = open(log, "wb")
    p = subprocess.Popen([sys.executable, "-m", "tocsin.cli", "payments", "worker", *extra],
                         env=env, stdout=fh, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 180
    while b"[^Worker]: Ready" not in log.read_bytes():
        if p.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"worker did not start; see {log}")
        time.sleep(0.2)
    return p


def stop(p) -> None:
    p.terminate()
    try:
        p.wait(30)
    except subprocess.TimeoutExpired:
        p.kill()


class Scores:
    """Consumes payments.scores in a thread, recording (consumed_ns, score)."""

    def __init__(self, broker, topic):
        self.c = Consumer({"bootstrap.servers": broker, "group.id": uuid.uuid4().hex,
                           "auto.offset.reset": "earliest", "fetch.wait.max.ms": 5})
        self.c.subscribe([topic])
        self.items: list[tuple[int, FraudScore]] = []
        self.run = True
        self.t = threading.Thread(target=self._loop, daemon=True)
        self.t.start()

    def _loop(self):
        # block for the first message only, then take what is already fetched: consume(n, t)
        # waits the whole timeout unless n messages arrive, which added up to 50 ms to every
        # latency measured here before (session 3)
        while self.run:
            first = self.c.poll(0.05)
            if first is None:
                continue
            now = time.time_ns()
            for m in [first, *self.c.consume(999, 0)]:
                if not m.error():
                    self.items.append((now, FraudScore.decode(m.value())))

    def wait(self, n, timeout):
        deadline = time.monotonic() + timeout
        while len(self.items) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        return len(self.items) >= n

    def close(self):
        self.run = False
        self.t.join()
        self.c.close()


def produce_at(broker, topic, txns, rate) -> None:
    p = Producer({"bootstrap.servers": broker, "linger.ms": 0, "acks": 1})
    t0 = time.perf_counter()
    for i, t in enumerate(txns):
        due = t0 + i / rate
        while True:
            d = due - time.perf_counter()
            if d <= 0:
                break
            time.sleep(min(d, 0.001))
        t.ingest_ts = time.time_ns()
        p.produce(topic, t.encode(), key=t.card_id.encode())
        p.poll(0)
    p.flush(30)


def latency(broker, model_dir, extra, rate, seconds, tmp, name, txns):
    prefix = f"bf{uuid.uuid4().hex[:6]}."
    kafka_admin.ensure_topics(broker, [prefix + t for t in topics.PAYMENTS], 4)
    w = start_worker(broker, prefix, model_dir, tmp / f"{name}-{rate}", extra,
                     tmp / f"{name}-{rate}.log")
    sc = Scores(broker, prefix + topics.PAY_SCORES)
    try:
        warm = txns[:200]
        produce_at(broker, prefix + topics.TRANSACTIONS, warm, 200)
        sc.wait(len(warm), 60)
        n0 = len(sc.items)
        n = int(rate * seconds)
        produce_at(broker, prefix + topics.TRANSACTIONS, txns[200:200 + n], rate)
        sc.wait(n0 + n, 30 + seconds * 3)
        got = sc.items[n0:]
    finally:
        sc.close()
        stop(w)
    lat = np.array([(c - s.ingest_ts) / 1e6 for c, s in got])
    # where it goes: ingest -> scored in the worker (emitted_ts), and scored -> consumed here
    wrk = np.array([(s.emitted_ts - s.ingest_ts) / 1e6 for _, s in got])
    back = np.array([(c - s.emitted_ts) / 1e6 for c, s in got])
    light = sum(s.branch == "light" for _, s in got) / max(len(got), 1)

    def pct(a, q):
        return float(np.percentile(a, q)) if len(a) else None

    return {"n": len(got), "sent": n, "p50": pct(lat, 50), "p99": pct(lat, 99), "light": light,
            "to_scored_p50": pct(wrk, 50), "to_scored_p99": pct(wrk, 99),
            "scored_to_consumed_p50": pct(back, 50), "scored_to_consumed_p99": pct(back, 99)}


def throughput(broker, model_dir, extra, burst, tmp, name, txns):
    prefix = f"bf{uuid.uuid4().hex[:6]}."
    kafka_admin.ensure_topics(broker, [prefix + t for t in topics.PAYMENTS], 4)
    p = Producer({"bootstrap.servers": broker, "linger.ms": 20})
    now = time.time_ns()
    for t in txns[:burst]:
        t.ingest_ts = now
        p.produce(prefix + topics.TRANSACTIONS, t.encode(), key=t.card_id.encode())
        p.poll(0)
    p.flush(60)
    sc = Scores(broker, prefix + topics.PAY_SCORES)
    w = start_worker(broker, prefix, model_dir, tmp / f"{name}-tp", extra, tmp / f"{name}-tp.log")
    try:
        ok = sc.wait(burst, 600)
    finally:
        sc.close()
        stop(w)
    em = sorted(s.emitted_ts for _, s in sc.items)
    rate = (len(em) - 1) / ((em[-1] - em[0]) / 1e9) if len(em) > 1 else 0.0
    light = sum(s.branch == "light" for _, s in sc.items) / max(len(sc.items), 1)
    return {"n": len(em), "complete": ok, "rate": rate, "light": light}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--broker", default=os.environ.get("TOCSIN_BROKER", "127.0.0.1:9092"))
    ap.add_argument("--model-dir", default=None, help="default: train a small one here")
    ap.add_argument("--rates", default="1000,5000")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--burst", type=int, default=20000)
    ap.add_argument("--batch-max", type=int, default=64)
    ap.add_argument("--batch-wait-ms", type=float, default=2.0)
    ap.add_argument("--only", default="batched,batched-full,naive")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="fraud-bench-"))
    model_dir = args.model_dir
    if model_dir is None:
        from tests.fraud_helpers import train_tiny

        model_dir = train_tiny(tmp / "model")
    rates = [float(r) for r in args.rates.split(",") if r]
    need = int(max(rates, default=0) * args.seconds) + 200
    txns = transactions(max(need, args.burst))
    batching = ["--batch-max", str(args.batch_max), "--batch-wait-ms", str(args.batch_wait_ms)]
    contenders = {"batched": batching, "batched-full": batching + ["--force-branch", "full"],
                  "naive": ["--naive"]}
    res: dict = {}
    for name in args.only.split(","):
        extra = contenders[name]
        res[name] = {"throughput": throughput(args.broker, model_dir, extra, args.burst, tmp,
                                              name, [Transaction(**{k: getattr(t, k) for k in
                                                     Transaction.__slots__}) for t in txns])}
        print(name, "throughput", res[name]["throughput"], flush=True)
        for r in rates:
            res[name][r] = latency(args.broker, model_dir, extra, r, args.seconds, tmp, name,
                                   list(txns))
            print(name, r, res[name][r], flush=True)
    print()
    print("| contender | sustained tx/s | " + " | ".join(
        f"p50 / p99 at {r:g} tx/s (light share)" for r in rates) + " |")
    print("|---|---|" + "---|" * len(rates))
    for name, d in res.items():
        cells = [f"{d[r]['p50']:.1f} / {d[r]['p99']:.1f} ms ({d[r]['light']:.0%}, "
                 f"{d[r]['n']}/{d[r]['sent']})" if d[r]["p50"] is not None else "none"
                 for r in rates]
        tp = d["throughput"]
        print(f"| {name} | {tp['rate']:,.0f} ({tp['light']:.0%} light) | " + " | ".join(cells)
              + " |")
    base = res.get("naive", {}).get("throughput", {}).get("rate")
    for name in res:
        if name != "naive" and base:
            print(f"sustained ratio {name} / naive: "
                  f"{res[name]['throughput']['rate'] / base:.2f}x")


if __name__ == "__main__":
    main()
