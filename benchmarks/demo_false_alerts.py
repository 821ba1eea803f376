"""Fresh demo runs in a row: any alert before the injected fault, and how soon after the
fault's end each anomaly score is back under its threshold.

A "fresh machine" run: an empty model folder, the demo's own training (`tocsin train plant`
and `tocsin train fusion` with their defaults, exactly what `tocsin demo` runs when it finds
no models), then `tocsin demo` on the broker given (its own topic prefix), with the fault on
pump-1 after 90 s for 40 s. Training is seeded, so on one machine every fresh training gives
the same models (``--plant-models DIR`` reuses the plant models of such a run and trains
only the fusion network); ``--trainings K`` trains K times (the 2nd and later with other seeds, i.e.
what another simulator seed or model seed would give) and spreads the runs over them.

Counted per run, from the run's alerts topic after it ended, in event time (the sample that
raised an alert, not when the demo printed it): false alerts = alerts RAISED from samples
before the fault was injected (any asset), plus alerts raised after it on another asset than
pump-1; and from the scores topic (event time) the seconds from the fault's end to the last
pump-1 tick at or above its threshold, per model (Isolation Forest, LSTM-AE, PCA), and the
normal ticks at or above a threshold (after the 60 s warm-up: pump-1 before the fault, the
other assets throughout). A run counts (``valid``) only if the fault was injected, ended and
raised at least one alert on pump-1. VERDICT lines (benchmarks/report.py): zero false alerts
over all valid runs, at least ten valid runs, every model back under its threshold within
60 s of the fault's end.

The demo runs on the broker given with topics of its own (``bench-demo-<time>-<run>.``), a
free OPC UA port, no InfluxDB: a shared broker (the test broker at 127.0.0.1:9092) is safe.

Usage (a broker must run, e.g. `tocsin services up` or the shared test broker):

    python -m benchmarks.demo_false_alerts --broker 127.0.0.1:9092 [--runs 3] [--trainings 1]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.report import Report, add_arguments

RAISED = re.compile(r"\bRAISED\b")  # tocsin.streams.tail.format_alert
NS = 1_000_000_000


def train(models: Path, seed: int, log, plant_models: Path | None = None) -> float:
    env = dict(os.environ, TOCSIN_MODEL_DIR=str(models))
    extra = [] if seed == 0 else ["--seed", str(seed), "--sim-seed", str(seed + 1)]
    t0 = time.monotonic()
    cmds = [["train", "plant", *extra], ["train", "fusion"]]
    if plant_models is not None:  # the plant models of a `tocsin train plant` already run
        shutil.copytree(plant_models, models)
        from tocsin.models import fusion_store

        cmds = cmds[1:] if fusion_store.newest(models) is None else []
    for cmd in cmds:
        r = subprocess.run([sys.executable, "-m", "tocsin.cli", *cmd], env=env,
                           capture_output=True, text=True)
        log.write(r.stdout + r.stderr)
        if r.returncode:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{r.stderr[-2000:]}")
    return time.monotonic() - t0


def demo(i: int, models: Path, broker: str, duration: float, port: int, log,
         asset: str = "pump-1") -> dict:
    prefix = f"bench-demo-{int(time.time())}-{i}."
    # a cache of its own: the demo's logs, spool and worker state live under it, and other
    # demos on the same machine (tests, other users) must not remove this run's spool
    cache = models.parent / f"cache-run-{i}"
    env = dict(os.environ, TOCSIN_MODEL_DIR=str(models), PYTHONUNBUFFERED="1",
               TOCSIN_CACHE=str(cache))
    cmd = [sys.executable, "-m", "tocsin.cli", "demo", "--duration", str(duration),
           "--no-history", "--no-train", "--broker", broker, "--prefix", prefix,
           "--opcua-port", str(port), "--asset", asset]
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True)
    printed_before, inj, end, lines = 0, None, None, []
    for line in p.stdout:
        lines.append(line)
        if ">>> injected fault" in line:
            inj = time.time_ns()
        elif ">>> fault" in line and "ended" in line:
            end = time.time_ns()
        elif RAISED.search(line) and inj is None:
            printed_before += 1
    p.wait()
    log.write("".join(lines))
    return judge(i, prefix, broker, cache, inj, end, printed_before, asset)


def judge(i: int, prefix: str, broker: str, cache: Path, inj: int | None, end: int | None,
          printed_before: int, asset: str = "pump-1") -> dict:
    """One run's figures from its topics. The fault's start and end are the simulator's own
    (its log line as it injects / clears, wall clock like the samples' source timestamps);
    the demo prints its ``>>>`` line only after the OPC UA method call returned, and an
    alert of the fault raised in between is no false alert."""
    sim_inj, sim_end = sim_times(cache / "run" / "demo" / "sim.log")
    inj, end = sim_inj or inj, sim_end or end
    alerts = read_alerts(broker, prefix)
    r = {"run": i, "prefix": prefix, "injected": inj is not None, "ended": end is not None,
         "fault_times": "simulator log" if sim_inj else "demo output",
         "printed_before_fault": printed_before, **count_alerts(alerts, inj, asset),
         "clear_s": clear_times(broker, prefix, inj, end, asset)}
    r["valid"] = r["injected"] and r["ended"] and r["raised_on_fault_asset"] > 0
    return r


SIM_LINE = re.compile(r"^(\S+ \S+) INFO \S+: fault \S+ (injected|cleared) on ")


def sim_times(log: Path) -> tuple[int | None, int | None]:
    """(injected, cleared) in ns from the simulator's log (local time, as logging writes it)."""
    from datetime import datetime

    out: dict[str, int] = {}
    if log.exists():
        for line in log.read_text(errors="replace").splitlines():
            m = SIM_LINE.match(line)
            if m and m.group(2) not in out:
                t = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
                out[m.group(2)] = int(round(t * 1e3)) * 1_000_000
    return out.get("injected"), out.get("cleared")


def read_alerts(broker: str, prefix: str) -> list:
    """Every alert event of the run, from the alerts topic (committed), after it ended."""
    from tocsin.contracts.alerts import Alert
    from tocsin.streams.follow import follow, tail_consumer

    c = tail_consumer(broker, [prefix + "plant.alerts"], from_beginning=True)
    try:
        return list(follow(c, Alert.decode, timeout=10.0))
    finally:
        c.close()


# The simulator stamps a sample with its place on the 10 Hz sample clock (t0 + k / 10) and
# computes it when its loop gets there, a little later; a fault injected in between is in a
# sample stamped up to one sample period before the injection's log line (seen: 8-11 ms,
# bearing_temp rising at 11 degC/s). Such alerts of the faulty asset are the fault's own,
# counted apart (``at_injection``); a normal pump never rises faster than ~0.1 degC/s.
GRACE_NS = NS // 10


def count_alerts(alerts: list, inj: int | None, asset: str) -> dict:
    """False alerts, judged in event time (the sample that raised them), not by when the demo
    printed them: raised before the fault was injected (any asset; on the faulty asset more
    than one sample period before), or raised after it on another asset than ``asset``."""
    raised = [a for a in alerts if a.event.value == "raised"]

    def before_fault(a) -> bool:
        return inj is None or a.source_ts < inj - (GRACE_NS if a.asset == asset else 0)

    before = [a for a in raised if before_fault(a)]
    after = [a for a in raised if not before_fault(a)]
    other = [a for a in after if a.asset != asset]
    fmt = (lambda a: f"{a.asset} {a.kind}/{a.rule} {a.tag} at "
           f"{'?' if inj is None else round((a.source_ts - inj) / NS, 3)} s")
    return {"false_before_fault": len(before), "false_other_asset": len(other),
            "raised_on_fault_asset": len(after) - len(other),
            "at_injection": [fmt(a) for a in after
                             if a.asset == asset and a.source_ts < (inj or 0)],
            "false_alerts": [fmt(a) for a in before + other]}


def clear_times(broker: str, prefix: str, inj: int | None, end: int | None,
                asset: str = "pump-1") -> dict:
    """From the scores topic (event time): per model of ``asset``, the seconds from the
    fault's end to its last tick at or above the threshold; per asset and model, the normal
    ticks (after the 60 s warm-up, before the fault, and any time on the other assets) at
    or above it."""
    from tocsin.contracts.scores import Scores
    from tocsin.streams.follow import follow, tail_consumer

    c = tail_consumer(broker, [prefix + "plant.scores"], from_beginning=True)
    try:
        scores = list(follow(c, Scores.decode, timeout=20.0))
    finally:
        c.close()
    if not scores or end is None:
        return {}
    t0 = min(s.ts for s in scores)
    out: dict = {f"{asset} {m} s after end": 0.0 for m in ("iforest", "lstm_ae", "pca")}
    for s in scores:
        for name, m in s.models.items():
            if m is None or m.ratio < 1.0 or (s.ts - t0) < 60 * NS:
                continue
            if s.asset == asset and inj is not None and s.ts >= inj - 2 * NS:
                if s.ts >= end:
                    key = f"{asset} {name} s after end"
                    out[key] = max(out.get(key, 0.0), round((s.ts - end) / NS, 1))
            else:  # a tick above its threshold in normal operation
                key = f"{s.asset} {name} normal ticks >= thr"
                out[key] = out.get(key, 0) + 1
    return out


def recounted(a, work: Path) -> list[dict]:
    import ast

    rows = []
    for line in a.recount.read_text().splitlines():
        if line.startswith("{'run'"):
            old = ast.literal_eval(line)
            r = judge(old["run"], old["prefix"], a.broker, work / f"cache-run-{old['run']}",
                      None, None, old["printed_before_fault"])
            r["training"], r["load1"] = old.get("training", 0), old.get("load1")
            rows.append(r)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--trainings", type=int, default=1)
    ap.add_argument("--duration", type=float, default=200.0, help="seconds per demo run "
                    "(the fault: 90-130 s)")
    ap.add_argument("--broker", default=os.environ.get("TOCSIN_TEST_BROKER", "127.0.0.1:9092"))
    ap.add_argument("--opcua-port", type=int, default=0, help="0: a free port")
    ap.add_argument("--log", type=Path, default=Path("demo_false_alerts.log"))
    ap.add_argument("--work", type=Path, default=None, help="keep the trained models here "
                    "(default: a temporary folder)")
    ap.add_argument("--plant-models", type=Path, default=None, help="copy these plant models "
                    "(a fresh `tocsin train plant` with its defaults) instead of training "
                    "them; the fusion network is still trained afresh")
    ap.add_argument("--recount", type=Path, default=None, help="no demo runs: judge again "
                    "the runs an earlier call printed to this file (their topics and, under "
                    "--work, their logs must still be there)")
    add_arguments(ap)
    a = ap.parse_args()
    from tocsin.models import fusion_store
    from tocsin.services.kafka import free_port

    rep = Report("demo_false_alerts", {k: str(v) for k, v in vars(a).items()})
    rows, trained = [], {}
    with tempfile.TemporaryDirectory(prefix="tocsin-demo-bench-") as tmp, \
            a.log.open("w") as log:
        tmp = str(a.work or tmp)
        for r in recounted(a, Path(tmp)) if a.recount else []:
            print(r, flush=True)
            rows.append(r)
        for i in range(1, 0 if a.recount else a.runs + 1):
            k = (i - 1) * a.trainings // a.runs
            models = Path(tmp) / f"models-{k}"
            if k not in trained and a.work and fusion_store.newest(models) is not None:
                trained[k] = 0.0  # trained by an earlier call with the same --work
            if k not in trained:
                trained[k] = train(models, k, log, a.plant_models if k == 0 else None)
                print(f"training {k} (seed {k}): {trained[k]:.0f} s", flush=True)
            r = demo(i, models, a.broker, a.duration, a.opcua_port or free_port(), log)
            r["training"], r["load1"] = k, round(os.getloadavg()[0], 1)
            print(r, flush=True)
            rows.append(r)
    for r in rows:
        if r["valid"]:
            rec = [v for key, v in r["clear_s"].items() if "after end" in key]
            rep.add("run", false_alerts=r["false_before_fault"] + r["false_other_asset"],
                    worst_recovery_s=max(rec, default=float("nan")))
    valid = [r for r in rows if r["valid"]]
    bad = [r for r in rows if not r["valid"]]
    total = sum(r["false_before_fault"] + r["false_other_asset"] for r in valid)
    per_model: dict = {}
    for r in valid:
        for key, v in r["clear_s"].items():
            if "after end" in key:
                per_model.setdefault(key.split()[1], []).append(v)
    worst = max((v for vs in per_model.values() for v in vs), default=float("nan"))
    rep.add("all runs", false_alerts=total, runs=len(valid),
            runs_with_false_alerts=sum(r["false_before_fault"] + r["false_other_asset"] > 0
                                       for r in valid),
            worst_recovery_s=worst)
    for m, vs in sorted(per_model.items()):
        rep.add(f"recovery {m}", worst_s=max(vs), median_s=float(np.median(vs)))
    fused = [v for m in ("iforest", "lstm_ae") for v in per_model.get(m, [])]
    rep.add("recovery fusion inputs", worst_s=max(fused, default=float("nan")))
    print(f"{len(valid)} valid fresh runs of {len(rows)} ({len(trained)} trainings; invalid: "
          f"{[r['run'] for r in bad]}, the demo did not inject, end or see the fault): "
          f"{total} false alerts ({sum(r['false_before_fault'] for r in valid)} raised before "
          f"the fault, {sum(r['false_other_asset'] for r in valid)} on other assets after it)",
          flush=True)
    rep.note(f"{len(valid)} valid runs of {len(rows)}; trainings {len(trained)}")
    rep.check("false alerts in all valid runs", "false_alerts", "all runs", op="<=", target=0)
    rep.check("valid fresh runs", "runs", "all runs", op=">=", target=10)
    rep.check("worst seconds from the fault's end to the last tick above threshold (every "
              "model)", "worst_recovery_s", "all runs", op="<=", target=60)
    rep.check("the same, the fusion's inputs (Isolation Forest, LSTM-AE)", "worst_s",
              "recovery fusion inputs", op="<=", target=60)
    rep.finish(a)


if __name__ == "__main__":
    main()
