"""Fraud model quality on the simulated switch, several seeds, side by side with random forests.

Per seed: ``tocsin train fraud``'s training function (the deployed default: boosted trees on
the features + the card-sequence summary; with ``--tab-only`` also the trees on the 38
features alone), then
``tocsin eval fraud``'s evaluation (one replay of the stream's features, both protocols) with
the deployed model's full and light branches, the tabular-only trees, and two random forests
trained on the same training period: one on the same 38 features (the issue's peer), one also
given the sequence summary (to separate "a better model" from "more input"). Periods are
fixed by date; nothing is chosen on the test period. **Simulated data.**

    python -m benchmarks.fraud_quality --seeds 7,8,9,10,11 --json out.json --markdown out.md
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from tocsin.connectors.payments_data import parse_time
from tocsin.connectors.simulator.payswitch import PaymentSwitch
from tocsin.detectors import fraud_metrics as fm
from tocsin.models.fraud_serving import FraudModel
from tocsin.models.fraud_train import Periods, build_dataset, train_fraud
from tocsin.offline.fraud_eval import evaluate_protocols

PERIODS = ("2026-01-01", "2026-01-15", "2026-02-05", "2026-02-12")  # history/train/valid/test
TARGET = 0.04
_STACK = {"auto": "auto", "always": True, "never": False}


class _Light:
    """A model's light branch under its own name (the load-aware switch's fallback)."""

    def __init__(self, model: FraudModel):
        self.model, self.meta = model, model.meta

    def score(self, tab, seq, pad, branch="full"):
        return self.model.score(tab, seq, pad, "light")


def run_seed(seed: int, args, work: Path) -> dict:
    sim = PaymentSwitch(customers=args.customers, terminals=args.terminals,
                        seed=seed).generate(args.days)
    h, a, b, c = (parse_time(x) for x in PERIODS)
    pr = Periods(h, a, b, c)
    # one replay of the stream's features, shared by training and evaluation (the same
    # build_dataset call each would make)
    ds = build_dataset(sim.transactions, sim.labels, sim.fraud, history_from=h)
    arts = {}
    kinds = (("deployed", True), ("gbdt_tab", False)) if args.tab_only else (("deployed", True),)
    for name, seq in kinds:
        out = work / f"s{seed}-{name}"
        train_fraud(sim.transactions, sim.labels, sim.fraud, out, periods=pr, seed=7,
                    threads=args.threads, log=lambda m: None, sequence=seq, rf_trees=0,
                    dataset=ds, data_note=f"simulated, seed {seed}",
                    stack=_STACK[args.stack] if name == "deployed" else False)
        arts[name] = FraudModel(out)
    models = {"deployed (trees, features + sequence)": arts["deployed"],
              "deployed, light branch": _Light(arts["deployed"])}
    if args.tab_only:
        models["trees, 38 features only"] = arts["gbdt_tab"]
    res = evaluate_protocols(sim.transactions, sim.labels, sim.fraud, models,
                             protocols=("plain", "known_compromised"), history_from=h,
                             test_from=c, k=100, fpr=args.fpr,
                             peer_sequence=args.peer_sequence,
                             threads=args.threads, log=lambda m: None, dataset=ds)
    meta = arts["deployed"].meta
    out = {"seed": seed, "iterations": meta["iterations"], "full_branch":
           "stack" if "stack" in meta else "trees", "selection": meta.get("selection"),
           "valid_ap": meta["quality"]["validation"]["full"]["avg_precision"]}
    for proto, r in res.items():
        rows = {}
        for name, row in r.rows.items():
            cp20, _ = fm.card_precision_at_k(r.y, r.scores[name], _ts(sim, r), _cards(sim, r),
                                             20)
            rows[name] = {**row, "card_precision_at_20": cp20}
        out[proto] = rows
    return out


def _ts(sim, r):
    import numpy as np

    by = {t.txn_id: t.ts for t in sim.transactions}
    return np.array([by[i] for i in r.txn_ids], np.int64)


def _cards(sim, r):
    import numpy as np

    by = {t.txn_id: t.card_id for t in sim.transactions}
    return np.array([by[i] for i in r.txn_ids], dtype=object)


def markdown(results: list[dict], fpr: float) -> str:
    lines = []
    dep, rf = "deployed (trees, features + sequence)", "random_forest"
    for proto in ("plain", "known_compromised"):
        lines += [f"### {proto}", "", "| seed | model | ROC AUC | AP | card P@100 | card P@20 | "
                  f"recall at {fpr:g} FPR |", "|---|---|---|---|---|---|---|"]
        for r in results:
            for name, q in r[proto].items():
                lines.append(f"| {r['seed']} | {name} | {q['roc_auc']:.3f} | "
                             f"{q['avg_precision']:.3f} | {q['card_precision_at_100']:.3f} | "
                             f"{q['card_precision_at_20']:.3f} | "
                             f"{q[f'recall_at_{fpr:g}_fpr']:.3f} |")
        gaps = [r[proto][dep]["avg_precision"] - r[proto][rf]["avg_precision"] for r in results]
        lines += ["", "full branch chosen on validation: " + ", ".join(
            f"{r['seed']}: {r['full_branch']}" for r in results)]
        lines += ["", "AP gap deployed - random forest per seed: "
                  + ", ".join(f"{r['seed']}: {g:+.3f} ({'met' if g >= TARGET else 'NOT met'})"
                              for r, g in zip(results, gaps))
                  + f"; median {statistics.median(gaps):+.3f}", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="7,8,9,10,11")
    ap.add_argument("--days", type=int, default=56)
    ap.add_argument("--customers", type=int, default=600)
    ap.add_argument("--terminals", type=int, default=150)
    ap.add_argument("--fpr", type=float, default=0.01)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tab-only", action="store_true",
                    help="also train and show the trees on the 38 features alone")
    ap.add_argument("--stack", choices=tuple(_STACK), default="auto",
                    help="the deployed full branch (as `tocsin train fraud --stack`)")
    ap.add_argument("--no-peer-sequence", dest="peer_sequence", action="store_false",
                    help="leave out the forest given the sequence summary (a diagnostic)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--markdown", default=None)
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in (int(s) for s in args.seeds.split(",")):
            t0 = time.perf_counter()
            results.append(run_seed(seed, args, Path(tmp)))
            print(f"seed {seed}: {time.perf_counter() - t0:.0f} s", flush=True)
            if args.json:  # partial results survive an interrupted run
                Path(args.json).write_text(json.dumps(results, indent=1))
    text = markdown(results, args.fpr)
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")


if __name__ == "__main__":
    main()
