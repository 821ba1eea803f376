"""CPU per transaction of the fraud stages' own code, without Kafka: the card stage ->
through records -> the terminal stage -> the model, each stage's ``process`` called on
batches as the runner would (the partitions' batches in turn, watermarks as sent), state in
plain ``KeyedState``s whose changes are drained after each batch like the runner's changelog.

What it isolates: the operators' cost (decode, features, model, encode), not the runtime's
(consume, produce, commits) -- `benchmarks/fraud_scoring.py` measures the whole worker.
``--baseline-tree DIR`` runs the same measurement from another source tree in the same run
(alternating rounds), so a change in the stages is measured before/after side by side.

Usage: python -m benchmarks.fraud_stages [--n 20000] [--batch 256] [--rounds 3]
       [--model-dir DIR] [--baseline-tree DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.report import Report, add_arguments

P = 4


class _Out:
    def __init__(self):
        self.sent: list = []

    def send(self, topic, key, value):
        self.sent.append((topic, key, value))

    def dead_letter(self, record, why, stage):
        raise RuntimeError(f"dead letter in the benchmark ({stage}): {why}")


def measure(n: int, batch: int, model_dir: str, gc_setup: tuple[str, int] | None = None) -> dict:
    """CPU microseconds per transaction of each stage over ``n`` simulated transactions;
    ``gc_setup`` (mode, gen0; benchmarks/gc_clock.py): Python's GC set up so once the stages
    are built, and the CPU spent in collections counted."""
    from tocsin.config.payments import FraudSettings
    from tocsin.config.worker import Settings
    from tocsin.connectors.simulator.payswitch import PaymentSwitch
    from tocsin.detectors.partitioner import partition_of
    from tocsin.streams.fraud_card_stage import CardStage
    from tocsin.streams.fraud_term_stage import TerminalStage
    from tocsin.streams.runtime.operator import Record
    from tocsin.streams.runtime.state import KeyedState

    s = Settings(partitions=P)
    sim = PaymentSwitch(customers=3000, terminals=500, seed=21).generate(n // 7000 + 1)
    txns = sim.transactions[:n]
    now = time.time_ns()
    byp: dict[int, list] = {p: [] for p in range(P)}
    for i, t in enumerate(txns):
        t.ingest_ts = now
        k = t.card_id.encode()
        p = partition_of(k, P)
        byp[p].append(Record("tx", p, i, k, t.encode()))
    card = CardStage(s, b"k" * 32)
    term = TerminalStage(s, FraudSettings(model_dir=model_dir), idle_s=1e9,
                         sources=[f"t{p}" for p in range(P)])
    for p in range(P):
        card.open(p, KeyedState(p))
        term.open(p, KeyedState(p))
    clock = None
    if gc_setup is not None:
        from benchmarks import gc_clock

        gc_clock.apply(*gc_setup)
        clock = gc_clock.GcClock()
    cpu_card = cpu_term = 0.0
    scores = 0
    at = dict.fromkeys(range(P), 0)
    batches = 0
    while any(at[p] < len(byp[p]) for p in range(P)):
        for p in range(P):
            chunk = byp[p][at[p]:at[p] + batch]
            at[p] += batch
            if not chunk:
                continue
            o = _Out()
            batches += 1
            c0 = time.process_time()
            card.process(chunk, o)
            cpu_card += time.process_time() - c0
            parts: dict[int, list] = {q: [] for q in range(P)}
            for _, k, v in o.sent:
                q = partition_of(k, P)
                parts[q].append(Record("th", q, 0, k, v))
            for recs in parts.values():
                for i in range(0, len(recs), batch):
                    o2 = _Out()
                    c0 = time.process_time()
                    term.process(recs[i:i + batch], o2)
                    cpu_term += time.process_time() - c0
                    scores += sum(1 for t, _, _ in o2.sent if t.endswith("scores"))
            for q in range(P):
                card.states[q].take_changes()
                term.parts[q].state.take_changes()
    o2 = _Out()
    term.clock = lambda: time.monotonic_ns() + 10**18  # the end: every source goes idle
    c0 = time.process_time()
    term.tick(0, o2)
    cpu_term += time.process_time() - c0
    scores += sum(1 for t, _, _ in o2.sent if t.endswith("scores"))
    res = {"n": len(txns), "scores": scores, "card_us": cpu_card / len(txns) * 1e6,
           "term_us": cpu_term / len(txns) * 1e6,
           "total_us": (cpu_card + cpu_term) / len(txns) * 1e6}
    if clock is not None:
        import gc

        longest, freed = clock.longest_s, clock.collected
        _, gc_cpu, counts = clock.take()
        gc.callbacks.remove(clock._cb)
        res.update(gc_us=gc_cpu / len(txns) * 1e6, gc_share=gc_cpu / (cpu_card + cpu_term),
                   gc_collections=counts, gc_ms_per_batch=gc_cpu * 1e3 / batches,
                   gc_longest_ms=longest * 1e3, gc_freed=freed)
    return res


def in_tree(tree: Path, *args) -> dict:
    """:func:`measure` (this file's) run against another tree's ``tocsin`` (its cwd comes
    first on sys.path), so the baseline needs no copy of this benchmark."""
    code = ("import importlib.util, json, sys\n"
            f"spec = importlib.util.spec_from_file_location('fraud_stages', {__file__!r})\n"
            "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
            "print('RESULT ' + json.dumps(m.measure(*json.loads(sys.argv[1]))))\n")
    p = subprocess.run([sys.executable, "-c", code, json.dumps(list(args))], cwd=tree,
                       capture_output=True, text=True, timeout=900)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
    if p.returncode or not lines:
        raise RuntimeError(f"baseline in {tree} failed ({p.returncode}): {p.stderr[-2000:]}")
    return json.loads(lines[-1][7:])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--model-dir", default=None, help="default: train a small one here")
    ap.add_argument("--gc", default=None, help="instead of a baseline: Python's GC set-ups "
                    "of this tree in turn, e.g. python,runtime (benchmarks/gc_clock.py)")
    ap.add_argument("--gc-gen0", default="10000", help="--gc runtime: gen0 threshold(s)")
    args = add_arguments(ap).parse_args()
    model_dir = args.model_dir
    if model_dir is None:
        from tests.fraud_helpers import train_tiny

        model_dir = str(train_tiny(Path(tempfile.mkdtemp(prefix="fraud-stages-")) / "model"))
    rep = Report("fraud_stages", vars(args))
    if args.baseline_tree:
        for m in ("total_us", "term_us", "card_us"):
            rep.check(f"fraud stages CPU per transaction ({m}), this tree vs the baseline", m,
                      "stages", peer="stages@baseline")
    rep.check("fraud stages' transactions per CPU-second", "tx_per_cpu_s", "stages")
    if args.gc:
        _gc_rounds(args, model_dir, rep)
        return
    for rnd in range(args.rounds):  # alternating: the same load for both
        for name in ["stages"] + (["stages@baseline"] if args.baseline_tree else []):
            if name == "stages":
                r = measure(args.n, args.batch, model_dir)
            else:
                r = in_tree(args.baseline_tree, args.n, args.batch, model_dir)
            if r["scores"] != r["n"]:
                raise RuntimeError(f"{name}: {r['scores']} scores for {r['n']} transactions")
            print(name, rnd, r, flush=True)
            rep.add(name, card_us=r["card_us"], term_us=r["term_us"], total_us=r["total_us"],
                    tx_per_cpu_s=1e6 / r["total_us"])
    rep.note("CPU time (process_time) of the stages' process/tick calls; no Kafka")
    rep.finish(args)


def _gc_rounds(args, model_dir: str, rep: Report) -> None:
    from benchmarks import gc_clock

    names = gc_clock.setups(args.gc, args.gc_gen0)
    first = gc_clock.label(*names[0])
    for mode, gen0 in names[1:]:
        rep.check(f"fraud stages CPU per transaction, GC {gc_clock.label(mode, gen0)} vs "
                  f"{first}", "total_us", gc_clock.label(mode, gen0), peer=first)
    for rnd in range(args.rounds):  # in turn: the same load for each set-up
        for mode, gen0 in names:
            r = measure(args.n, args.batch, model_dir, (mode, gen0))
            print(gc_clock.label(mode, gen0), rnd, r, flush=True)
            rep.add(gc_clock.label(mode, gen0), total_us=r["total_us"], gc_us=r["gc_us"],
                    gc_share=r["gc_share"], gc_ms_per_batch=r["gc_ms_per_batch"],
                    gc_longest_ms=r["gc_longest_ms"], gc_freed=r["gc_freed"],
                    tx_per_cpu_s=1e6 / r["total_us"])
    rep.note("CPU time (process_time) of the stages' process/tick calls; no Kafka; GC CPU "
             "from gc.callbacks (thread_time)")
    rep.finish(args)


if __name__ == "__main__":
    main()
