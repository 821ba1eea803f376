"""Fault-type accuracy and detection delay of the fusion on SIMULATED scenarios the network
was not trained on, side by side with a threshold-only rule (the peer: the first threshold
alert's tag group -> the fault type whose signature lists that group first).

Training: `tocsin train fusion` defaults (seeds 1, 2, 3; faults at 100-190 s of 240 s).
Evaluation: seeds 101-103 (other noise), faults at 110-180 s of 240 s, every fault of the
library on its asset; plus 300 s of fault-free plant per seed for false alerts (warm-up
included). Score ticks come from the trained anomaly models (Isolation Forest + LSTM-AE, the
newest under $TOCSIN_MODEL_DIR, `tocsin train` first) run on the simulated readings through
the stream's own window engine and scorer; `--stand-in` uses the SIMULATED stand-in scorer.

Usage: python -m benchmarks.fusion_quality [--stand-in]
"""

from __future__ import annotations

import argparse
import statistics
import time

from tocsin.config.fusion import load_fusion_config
from tocsin.config.plant import load_plant
from tocsin.connectors.simulator.fusion_stream import (
    ModelScores,
    fault_scenarios,
    fit_scorers,
    simulate,
)
from tocsin.connectors.simulator.scenario import Scenario
from tocsin.contracts.alerts import AlertEvent
from tocsin.detectors.fusion import FusionEngine
from tocsin.detectors.fusion_train import assets_from_plant
from tocsin.streams.fusion_feed import train_simulated

NS = 1_000_000_000
EVAL_SEEDS = (101, 102, 103)


def run_engine(cfg, model, assets, items):
    eng = FusionEngine(cfg, model, assets)
    out = []
    for kind, x in items:
        if kind == "alert":
            eng.on_threshold(x)
        else:
            out += eng.on_scores(x, 0)
    return out


def rule_peer(cfg, items):
    """First raised threshold alert -> fault type by signature (first-listed group)."""
    for kind, x in items:
        if kind == "alert" and x.event is AlertEvent.RAISED:
            g = cfg.group_of(x.tag)
            for ft, groups in cfg.signatures.items():
                if groups and groups[0] == g:
                    return ft, x.source_ts
            return None, x.source_ts
    return None, None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--stand-in", action="store_true",
                    help="SIMULATED stand-in scorer instead of the trained anomaly models")
    stand_in = ap.parse_args().stand_in
    t0 = time.time()
    cfg, plant = load_fusion_config(), load_plant()
    scorers = fit_scorers(plant) if stand_in else ModelScores(plant_cfg=plant)
    assets = assets_from_plant(plant)
    print(f"scores: {scorers.label}")
    model, took = train_simulated(scorers, None, (1, 2, 3))
    print(f"trained {model.version} on seeds 1-3 in {took:.0f}s")
    # the configured lifecycle next to the same one raising on the first tick (no persistence)
    lc = cfg.lifecycle
    variants = {f"fusion ({lc.raise_min_ticks} ticks in {lc.raise_window_s:g}s)": cfg}
    if lc.raise_min_ticks > 1:
        first = cfg.model_copy(update={"lifecycle": lc.model_copy(
            update={"raise_min_ticks": 1})})
        variants["fusion (first tick)"] = first
    rows: dict[str, list] = {v: [] for v in variants}
    for seed in EVAL_SEEDS:
        for sc in fault_scenarios(seed, start=110.0, duration=70.0):
            st = simulate(sc, scorers, plant)
            ep = st.truth[0]
            end = ep["end_ns"] + int(cfg.lifecycle.hold_s * NS)
            peer_type, peer_ts = rule_peer(cfg, st.items)
            for name, vcfg in variants.items():
                events = run_engine(vcfg, model, assets, st.items)
                raised = [a for a in events
                          if a.event is AlertEvent.RAISED and ep["start_ns"] <= a.opened_ts < end]
                ids = {a.alert_id for a in raised}
                # the fault type on top in every event of the episode's alert, through its clear
                stable = bool(raised) and all(a.rule == ep["fault_type"] for a in events
                                              if a.alert_id in ids)
                rows[name].append({
                    "fault": ep["fault"], "asset": ep["asset"], "type": ep["fault_type"],
                    "stable": stable, "alerts": len(raised),
                    "fused": raised[0].rule if raised else None,
                    "delay": (raised[0].details["tick_ts"] - ep["start_ns"]) / NS
                    if raised else None,
                    "peer": peer_type,
                    "peer_delay": (peer_ts - ep["start_ns"]) / NS if peer_ts else None})
    false_alerts = {name: [] for name in variants}
    hours = 0.0
    for seed in EVAL_SEEDS:
        st = simulate(Scenario(seed=seed, seconds=300), scorers, plant)
        for name, vcfg in variants.items():
            false_alerts[name] += [a.asset for a in run_engine(vcfg, model, assets, st.items)
                                   if a.event is AlertEvent.RAISED]
        hours += 300 * 3 / 3600
    main_rows = rows[next(iter(variants))]
    print(f"\n{'fault':18} {'asset':8} {'type':11} | fused: top type (alerts) delay s | "
          f"threshold rule: type delay s")
    for r in main_rows:
        d = f"{r['delay']:.1f}" if r["delay"] is not None else "-"
        pd = f"{r['peer_delay']:.1f}" if r["peer_delay"] is not None else "-"
        print(f"{r['fault']:18} {r['asset']:8} {r['type']:11} | {str(r['fused']):10} "
              f"({r['alerts']}) {d:>6} | {str(r['peer']):10} {pd:>6}")
    n = len(main_rows)
    print(f"\nepisodes {n} (seeds {EVAL_SEEDS}, simulated)")
    for name, vrows in rows.items():
        acc = sum(r["fused"] == r["type"] for r in vrows) / n
        det = sum(r["fused"] is not None for r in vrows) / n
        one = sum(r["alerts"] == 1 for r in vrows) / n
        stable = sum(r["stable"] for r in vrows) / n
        delays = [r["delay"] for r in vrows if r["delay"] is not None]
        fa = false_alerts[name]
        by_asset = ", ".join(f"{a} {fa.count(a)}" for a in sorted(set(fa)))
        print(f"{name}: detected {det:.0%}, right type on top {acc:.0%}, exactly one alert "
              f"{one:.0%}, right type in every event until cleared {stable:.0%}, median delay "
              f"{statistics.median(delays):.1f}s, false alerts {len(fa)} in {hours:.2f} "
              f"asset-hours of normal operation ({by_asset or 'none'})")
    pacc = sum(r["peer"] == r["type"] for r in main_rows) / n
    pdet = sum(r["peer"] is not None or r["peer_delay"] is not None for r in main_rows) / n
    pdelays = [r["peer_delay"] for r in main_rows if r["peer_delay"] is not None]
    print(f"threshold rule: detected {pdet:.0%}, right type {pacc:.0%}, median delay "
          f"{statistics.median(pdelays):.1f}s")
    print(f"({time.time() - t0:.0f}s)")


if __name__ == "__main__":
    main()
