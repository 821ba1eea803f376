"""Fusion inference time per asset per tick, side by side in one run:

  pgmpy VE     pgmpy VariableElimination, one exact query per tick (the peer: the library as is)
  cached       the same exact posterior memoised per discrete evidence combination (Tocsin)
  engine tick  FusionEngine.on_scores: event-time join + evidence + cached posterior + lifecycle

Network: the centrifugal pump's (the largest: 5 fault states, 7 evidence nodes), expert
priors from tocsin/data/fusion.yaml. Evidence: random combinations (seeded). Medians of
per-call times. Usage: python -m benchmarks.fusion_inference [--n 2000]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from tocsin.config.fusion import load_fusion_config
from tocsin.config.plant import load_plant
from tocsin.contracts.scores import ModelScore, Scores
from tocsin.detectors.fusion import FusionEngine
from tocsin.detectors.fusion_bn import FusionModel, all_evidence, expert_network
from tocsin.detectors.fusion_train import assets_from_plant, specs_for


def timed(fn, args) -> list[float]:
    out = []
    for a in args:
        t = time.perf_counter_ns()
        fn(a)
        out.append((time.perf_counter_ns() - t) / 1e3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    n = ap.parse_args().n
    cfg = load_fusion_config()
    assets = assets_from_plant(load_plant())
    model = FusionModel({at: expert_network(cfg, s) for at, s in specs_for(cfg, assets).items()})
    net = model.networks["centrifugal-pump"]
    rng = random.Random(1)
    combos = list(all_evidence(net.spec))
    queries = [rng.choice(combos) for _ in range(n)]
    net.posterior_ve(queries[0])  # import and build once
    ve = timed(net.posterior_ve, queries[: min(n, 500)])
    t = time.perf_counter()
    size = net.warm()
    warm_s = time.perf_counter() - t
    cached = timed(net.posterior, queries)
    eng = FusionEngine(cfg, model, assets)
    for other in model.networks.values():
        other.warm()
    tags = assets["pump-1"][1]
    ticks = []
    for i in range(n):
        r = rng.choice([0.3, 1.5, 4.0])
        share = {t_: rng.random() for t_ in tags}
        tot = sum(share.values())
        ticks.append(Scores("pump-1", "centrifugal-pump", (i + 1) * 10**9,
                            {"iforest": ModelScore(r, 1.0),
                             "lstm_ae": ModelScore(r, 1.0, {k: v / tot for k, v in share.items()})},
                            "bench", "x"))
    tick = timed(lambda s: eng.on_scores(s, 0), ticks)
    m_ve, m_c, m_t = (statistics.median(x) for x in (ve, cached, tick))
    print(f"pump network: {len(combos)} fully observed evidence combinations, "
          f"{size} cached incl. unobserved scores (warm-up {warm_s:.1f}s)")
    print(f"{'':14}{'median us':>10}{'p99 us':>10}")
    for name, xs in (("pgmpy VE", ve), ("cached", cached), ("engine tick", tick)):
        print(f"{name:14}{statistics.median(xs):10.1f}{sorted(xs)[int(len(xs) * .99)]:10.1f}")
    print(f"ratio VE / cached = {m_ve / m_c:.0f}x; VE / engine tick = {m_ve / m_t:.1f}x; "
          f"ticks per second per core (engine): {1e6 / m_t:.0f}")


if __name__ == "__main__":
    main()
