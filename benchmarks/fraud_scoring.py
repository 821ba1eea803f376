"""Side-by-side benchmark of fraud scoring: transactions -> Kafka -> worker -> scores.

The worker is the runtime path (card stage -> payments.by-terminal -> terminal stage, each an
exactly-once operator: state, outputs and offsets in one Kafka transaction per batch); scores
are read by a read_committed consumer, so latency includes both stages' commits.

Contenders, in the same invocation on the same broker, each on its own topic prefix and
consumer group, each a `tocsin payments worker` process with the same model and features:
  batched       batches as the runner takes them (what is queued, up to --batch-max; the first
                record waited for at most --batch-wait-ms), load-aware switch on (as deployed)
  batched-full  the same batches with the switch pinned to the full model
  naive         the per-transaction scorer: the full model called once per transaction, no
                switch (same runtime, same commits: the effect of batched inference)

Phases per contender:
  latency     simulated transactions at each --rates value for --seconds s against the warm
              worker; latency = score consumed here - ingest_ts stamped just before produce
              (the moment a feed would have accepted it). p50 / p99 and the light-branch share.
  throughput  --burst transactions wait in the topic, then the worker starts; transactions/s
              from the worker's readiness to its last score (worker timestamps), and between
              its first and last score.

The worker's event-time alignment waits ``--align-idle-s`` (default 1 s) after start for sources
that never send (here: the empty labels partitions). Reporting: benchmarks/report.py (medians,
ratios to the peer measured in the same run, a VERDICT line per target, the JSON result
benchmarks/results/fraud_scoring.json with load averages and per-round figures).
``--baseline-tree DIR`` (e.g. ``git archive main | tar -x -C DIR``) adds ``batched@baseline``:
the same worker from that tree, in the same run.

Usage: python -m benchmarks.fraud_scoring [--broker HOST:PORT] [--model-dir DIR]
       [--baseline-tree DIR] [--rounds N]
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

from benchmarks.report import Report, add_arguments
from tocsin.connectors import kafka_admin
from tocsin.connectors.simulator.payswitch import PaymentSwitch
from tocsin.contracts import topics
from tocsin.contracts.payments import FraudScore, Transaction


def transactions(n: int) -> list[Transaction]:
    sim = PaymentSwitch(customers=3000, terminals=500, seed=21).generate(max(1, n // 7000 + 1))
    return sim.transactions[:n]


ALIGN_IDLE_S = "1"


def start_worker(broker, prefix, model_dir, data_dir, extra, log: Path, tree=None):
    env = dict(os.environ, TOCSIN_BROKER=broker, TOCSIN_TOPIC_PREFIX=prefix,
               TOCSIN_PARTITIONS="4", TOCSIN_DATA_DIR=str(data_dir),
               TOCSIN_FRAUD_MODEL_DIR=str(model_dir), PYTHONUNBUFFERED="1",
               TOCSIN_WORKER_NAME=f"bench-{prefix}", TOCSIN_LOG_LEVEL="warning",
               TOCSIN_FRAUD_ALIGN_IDLE_S=ALIGN_IDLE_S,
               TOCSIN_DEV="1")  # simulated data: the development PAN key is fine
    fh = open(log, "wb")
    # a baseline tree runs its own code: `python -m` puts its cwd first on sys.path
    p = subprocess.Popen([sys.executable, "-m", "tocsin.cli", "payments", "worker", *extra],
                         env=env, stdout=fh, stderr=subprocess.STDOUT,
                         cwd=str(tree) if tree else None)
    deadline = time.monotonic() + 180
    while b"payments worker: ready" not in log.read_bytes():
        if p.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"worker did not start; see {log}")
        time.sleep(0.05)
    p.ready_ns = time.time_ns()  # type: ignore[attr-defined]
    p.cpu_ready = cpu_seconds(p.pid)  # type: ignore[attr-defined]
    return p


def cpu_seconds(pid: int) -> float | None:
    """A process's CPU seconds so far (user + system, all threads)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            f = fh.read().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def stop(p) -> None:
    p.cpu_s = cpu_seconds(p.pid)  # before it exits
    p.terminate()
    try:
        p.wait(30)
    except subprocess.TimeoutExpired:
        p.kill()


class CommittedTail:
    """A read_committed consumer of one topic in a thread; `keep` records each message with
    the time it was consumed (subclasses choose what to keep)."""

    def __init__(self, broker, topic):
        self.c = Consumer({"bootstrap.servers": broker, "group.id": uuid.uuid4().hex,
                           "auto.offset.reset": "earliest", "fetch.wait.max.ms": 5,
                           "isolation.level": "read_committed"})
        self.c.subscribe([topic])
        self.items: list = []
        self.run = True
        self.t = threading.Thread(target=self._loop, daemon=True)
        self.t.start()

    def keep(self, now_ns: int, m) -> None:
        self.items.append((now_ns, m.value()))

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
                    self.keep(now, m)

    def close(self):
        self.run = False
        self.t.join()
        self.c.close()


class Scores(CommittedTail):
    """Consumes payments.scores, recording (consumed_ns, score)."""

    items: list[tuple[int, FraudScore]]

    def keep(self, now_ns: int, m) -> None:
        self.items.append((now_ns, FraudScore.decode(m.value())))

    def wait(self, n, timeout):
        deadline = time.monotonic() + timeout
        while len(self.items) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        return len(self.items) >= n


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


def latency(broker, model_dir, extra, rate, seconds, tmp, name, txns, tree=None):
    prefix = f"bf{uuid.uuid4().hex[:6]}."
    kafka_admin.ensure_topics(broker, [prefix + t for t in topics.PAYMENTS], 4)
    w = start_worker(broker, prefix, model_dir, tmp / f"{name}-{rate}", extra,
                     tmp / f"{name}-{rate}.log", tree)
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


def throughput(broker, model_dir, extra, burst, tmp, name, txns, tree=None):
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
    w = start_worker(broker, prefix, model_dir, tmp / f"{name}-tp", extra, tmp / f"{name}-tp.log",
                     tree)
    try:
        ok = sc.wait(burst, 600)
    finally:
        sc.close()
        stop(w)
    em = sorted(s.emitted_ts for _, s in sc.items)
    first_last = (len(em) - 1) / ((em[-1] - em[0]) / 1e9) if len(em) > 1 else 0.0
    rate = len(em) / ((em[-1] - w.ready_ns) / 1e9) if em else 0.0
    light = sum(s.branch == "light" for _, s in sc.items) / max(len(sc.items), 1)
    busy = (w.cpu_s - w.cpu_ready) if w.cpu_s is not None and w.cpu_ready is not None \
        else None  # CPU from ready to the last score: the stages' cost, not the start-up
    return {"n": len(em), "complete": ok, "rate": rate, "rate_first_to_last": first_last,
            "light": light, "cpu_s": w.cpu_s, "cpu_after_ready_s": busy}


def figures(one: dict, rates: list[float]) -> dict:
    """One round of one contender as flat figures for the report."""
    tp = one["throughput"]
    d = {"sustained_tx_s": tp["rate"], "first_to_last_tx_s": tp["rate_first_to_last"],
         "light_share_burst": tp["light"]}
    # CPU-normalised: on 2 shared cores the wall-clock rate is the machine's
    if tp["cpu_s"]:
        d["tx_per_cpu_s"] = tp["n"] / tp["cpu_s"]  # start-up included (the old figure)
    if tp.get("cpu_after_ready_s"):
        d["tx_per_busy_cpu_s"] = tp["n"] / tp["cpu_after_ready_s"]
    for rate in rates:
        r = one[str(rate)]
        for k in ("p50", "p99", "to_scored_p99", "light"):
            if r[k] is not None:
                d[f"{k}{'_ms' if k != 'light' else ''}_at_{rate:g}"] = r[k]
    return d


def declare_checks(rep: Report, rates: list[float], names: list[str]) -> None:
    b = "batched" if "batched" in names else "batched-full"
    rep.check("fraud sustained per worker (tx/s, from ready)", "sustained_tx_s", b,
              op=">=", target=5000)
    if 1000.0 in rates:
        rep.check("fraud p99 at 1,000 tx/s (ms)", "p99_ms_at_1000", b, op="<=", target=20)
    if "naive" in names:
        rep.check("fraud batched vs the per-transaction scorer, sustained", "sustained_tx_s",
                  b, peer="naive", op=">=", target=5)
        rep.check("fraud batched vs the per-transaction scorer, tx per CPU-second after ready",
                  "tx_per_busy_cpu_s", b, peer="naive")
    rep.check("fraud tx per worker CPU-second (start-up included)", "tx_per_cpu_s", b)
    rep.check("fraud tx per worker CPU-second after ready", "tx_per_busy_cpu_s", b)
    if f"{b}@baseline" in names:
        rep.check("this tree vs the baseline tree, sustained", "sustained_tx_s", b,
                  peer=f"{b}@baseline")
        rep.check("this tree vs the baseline tree, tx per CPU-second after ready",
                  "tx_per_busy_cpu_s", b, peer=f"{b}@baseline")
        if 1000.0 in rates:
            rep.check("this tree vs the baseline tree, p99 at 1,000 tx/s", "p99_ms_at_1000",
                      b, peer=f"{b}@baseline")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--broker", default=os.environ.get("TOCSIN_BROKER", "127.0.0.1:9092"))
    ap.add_argument("--model-dir", default=None, help="default: train a small one here")
    ap.add_argument("--rates", default="1000,5000")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--burst", type=int, default=20000)
    ap.add_argument("--batch-max", type=int, default=1024)
    ap.add_argument("--batch-wait-ms", type=float, default=2.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--align-idle-s", default="1")
    ap.add_argument("--only", default="batched,batched-full,naive",
                    help="contenders; with --baseline-tree, batched@baseline is added")
    args = add_arguments(ap).parse_args()
    global ALIGN_IDLE_S
    ALIGN_IDLE_S = args.align_idle_s
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
                  "naive": batching + ["--naive"]}
    names = args.only.split(",")
    if args.baseline_tree:
        names.append(f"{names[0]}@baseline")
    rep = Report("fraud_scoring", vars(args))
    declare_checks(rep, rates, names)
    for rnd in range(args.rounds):
        # contenders interleaved, round by round (the same load for each), and the order
        # rotated each round: the first contender of a round met a colder broker (commit
        # latency falls for minutes after a broker starts), 3 of 4 first rounds in one session
        for name in names[rnd % len(names):] + names[:rnd % len(names)]:
            base, _, at = name.partition("@")
            extra, tree = contenders[base], (args.baseline_tree if at else None)
            one: dict = {"throughput": throughput(
                args.broker, model_dir, extra, args.burst, tmp, f"{base}-{at}{rnd}",
                [Transaction(**{k: getattr(t, k) for k in Transaction.__slots__})
                 for t in txns], tree)}
            print(name, rnd, "throughput", one["throughput"], flush=True)
            for r in rates:
                one[str(r)] = latency(args.broker, model_dir, extra, r, args.seconds, tmp,
                                      f"{base}-{at}{rnd}", list(txns), tree)
                print(name, rnd, r, one[str(r)], flush=True)
            rep.add(name, **figures(one, rates))
    rep.note("exactly-once on: card and terminal stages each commit state, outputs and offsets "
             "in one Kafka transaction; scores read by a read_committed consumer; 4 partitions, "
             "one worker process per contender")
    rep.finish(args)


if __name__ == "__main__":
    main()
