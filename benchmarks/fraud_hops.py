"""Where a fraud transaction's latency goes, hop by hop, at a fixed rate (issue #20).

One `tocsin payments worker` (exactly-once, 4 partitions, as in benchmarks/fraud_scoring.py);
transactions produced at ``--rate`` for ``--seconds``; two read_committed consumers here, one
on ``payments.by-terminal`` (the card stage's output: transactions and watermark records),
one on ``payments.scores``. Per transaction, joined by txn_id:

  ingest -> card out      ingest_ts (stamped before produce) -> the through record's Kafka
                          timestamp (the card stage produced it: pickup + card features)
  card out -> card vis.   -> the through record seen here (the card stage's commit + fetch)
  card vis. -> aligned    -> the moment every source the terminal stage waits for (the other
                          transactions partitions' watermarks) had passed the transaction's
                          event time, as seen here: the alignment wait
  aligned -> scored       -> emitted_ts of the score (terminal pickup + features + model)
  scored -> consumed      -> the score seen here (the terminal stage's commit + fetch)

The aligned moment is computed from the through records as this consumer sees them, so it
is an estimate of what the terminal stage's own consumer sees (same broker, same fetch).
The label sources (never sending in this benchmark) are idle after ``--align-idle-s``.

Usage: python -m benchmarks.fraud_hops [--broker HOST:PORT] [--rate 1000] [--seconds 10]
       [--model-dir DIR] [--tree DIR] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

from benchmarks import fraud_scoring as fsb
from tocsin.connectors import kafka_admin
from tocsin.contracts import topics
from tocsin.contracts.payments import FraudScore
from tocsin.detectors import fraud_through as thr


class Tail(fsb.CommittedTail):
    """read_committed consumer of one topic in a thread: (seen_ns, kafka_ts_ms, value)."""

    def keep(self, now_ns: int, m) -> None:
        self.items.append((now_ns, m.timestamp()[1], m.value()))


def measure(broker, model_dir, rate, seconds, tmp: Path, tree=None, extra=()):
    prefix = f"bh{uuid.uuid4().hex[:6]}."
    kafka_admin.ensure_topics(broker, [prefix + t for t in topics.PAYMENTS], 4)
    txns = fsb.transactions(int(rate * seconds) + 200)
    w = fsb.start_worker(broker, prefix, model_dir, tmp / f"hops-{prefix}", list(extra),
                         tmp / f"hops-{prefix}.log", tree)
    through = Tail(broker, prefix + topics.PAY_BY_TERMINAL)
    scores = Tail(broker, prefix + topics.PAY_SCORES)
    try:
        fsb.produce_at(broker, prefix + topics.TRANSACTIONS, txns[:200], 200)
        time.sleep(2.0)
        n0 = len(scores.items)
        fsb.produce_at(broker, prefix + topics.TRANSACTIONS, txns[200:], rate)
        deadline = time.monotonic() + 30 + 3 * seconds
        while len(scores.items) < n0 + len(txns) - 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
    finally:
        through.close()
        scores.close()
        fsb.stop(w)
    # card-stage output, in the order seen here
    card_out, marks = {}, []  # txn_id -> (out_ns, seen_ns, source, ts); (seen_ns, source, ts)
    for seen, kts, raw in through.items:
        rec = thr.decode(raw)
        if rec.kind == thr.MARK or rec.kind == thr.TXN:
            marks.append((seen, rec.source, rec.ts))
        if rec.kind == thr.TXN:
            card_out[rec.txn.txn_id] = (kts * 1_000_000, seen, rec.source, rec.ts)
    sources = sorted({s for _, s, _ in marks if s.startswith("t")})
    # per source: seen times and running max watermark, for "first seen with wm >= ts"
    per = {}
    for s in sources:
        rows = [(seen, ts) for seen, src, ts in marks if src == s]
        seen_a = np.array([r[0] for r in rows], np.int64)
        wm_a = np.maximum.accumulate(np.array([r[1] for r in rows], np.int64))
        per[s] = (seen_a, wm_a)

    def aligned_at(ts):
        t = 0
        for s in sources:
            seen_a, wm_a = per[s]
            i = int(np.searchsorted(wm_a, ts, side="left"))
            if i >= len(wm_a):
                return None
            t = max(t, int(seen_a[i]))
        return t

    hops = {k: [] for k in ("ingest_to_card_out", "card_out_to_card_visible",
                            "card_visible_to_aligned", "aligned_to_scored",
                            "scored_to_consumed", "total")}
    for seen, _kts, raw in scores.items[n0:]:
        s = FraudScore.decode(raw)
        c = card_out.get(s.txn_id)
        if c is None:
            continue
        out_ns, vis_ns, _src, ts = c
        al = aligned_at(ts)
        if al is None:
            continue
        al = max(al, vis_ns)
        for k, v in (("ingest_to_card_out", out_ns - s.ingest_ts),
                     ("card_out_to_card_visible", vis_ns - out_ns),
                     ("card_visible_to_aligned", al - vis_ns),
                     ("aligned_to_scored", s.emitted_ts - al),
                     ("scored_to_consumed", seen - s.emitted_ts),
                     ("total", seen - s.ingest_ts)):
            hops[k].append(v / 1e6)
    return {k: {"n": len(v), "p50": float(np.percentile(v, 50)),
                "p90": float(np.percentile(v, 90)), "p99": float(np.percentile(v, 99))}
            for k, v in hops.items() if v}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--broker", default=os.environ.get("TOCSIN_BROKER", "127.0.0.1:9092"))
    ap.add_argument("--model-dir", default=None, help="default: train a small one here")
    ap.add_argument("--rate", type=float, default=1000.0)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--tree", action="append", default=[],
                    help="NAME=DIR: also measure the worker of that tree (interleaved)")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="fraud-hops-"))
    model_dir = args.model_dir
    if model_dir is None:
        from tests.fraud_helpers import train_tiny

        model_dir = train_tiny(tmp / "model")
    trees = [("this", None)] + [tuple(t.split("=", 1)) for t in args.tree]
    res: dict = {"load_start": os.getloadavg(), "rounds": []}
    for rnd in range(args.rounds):
        one = {}
        for name, tree in trees:
            one[name] = measure(args.broker, model_dir, args.rate, args.seconds, tmp, tree)
            print(rnd, name, "load", os.getloadavg()[0], flush=True)
            for k, v in one[name].items():
                print(f"  {k:26s} p50 {v['p50']:7.1f}  p90 {v['p90']:7.1f}  "
                      f"p99 {v['p99']:7.1f} ms  (n {v['n']})", flush=True)
        res["rounds"].append(one)
    res["load_end"] = os.getloadavg()
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
