"""Fresh demo runs in a row: any alert before the injected fault, and how soon after the
fault's end each anomaly score is back under its threshold.

A "fresh machine" run: an empty model folder, the demo's own training (`tocsin train plant`
and `tocsin train fusion` with their defaults, exactly what `tocsin demo` runs when it finds
no models), then `tocsin demo` on the broker given (its own topic prefix), with the fault on
pump-1 after 90 s for 40 s. Training is seeded, so on one machine every fresh training gives
the same models (``--plant-models DIR`` reuses the plant models of such a run and trains
only the fusion network); ``--trainings K`` trains K times (the 2nd and later with other seeds, i.e.
what another simulator seed or model seed would give) and spreads the runs over them.

Counted per run: alert events RAISED before the ``>>> injected fault`` line (false alerts),
raised after it, and from the scores topic (event time) the seconds from the fault's end to
the last tick at or above the threshold, per asset and model (pump-1: after the fault's end;
the other assets: any tick above the threshold after the 60 s warm-up is listed).

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


def demo(i: int, models: Path, broker: str, duration: float, port: int, log) -> dict:
    prefix = f"bench-demo-{int(time.time())}-{i}."
    # a cache of its own: the demo's logs, spool and worker state live under it, and other
    # demos on the same machine (tests, other users) must not remove this run's spool
    cache = models.parent / f"cache-run-{i}"
    env = dict(os.environ, TOCSIN_MODEL_DIR=str(models), PYTHONUNBUFFERED="1",
               TOCSIN_CACHE=str(cache))
    cmd = [sys.executable, "-m", "tocsin.cli", "demo", "--duration", str(duration),
           "--no-history", "--no-train", "--broker", broker, "--prefix", prefix,
           "--opcua-port", str(port)]
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True)
    before, after, inj, end, lines = 0, 0, None, None, []
    for line in p.stdout:
        lines.append(line)
        if ">>> injected fault" in line:
            inj = time.time_ns()
        elif ">>> fault" in line and "ended" in line:
            end = time.time_ns()
        elif RAISED.search(line):
            if inj is None:
                before += 1
            else:
                after += 1
    p.wait()
    log.write("".join(lines))
    return {"run": i, "false_alerts": before, "raised_after_fault": after,
            "injected": inj is not None, "clear_s": clear_times(broker, prefix, inj, end),
            "false_alert_lines": [ln.strip() for ln in lines if RAISED.search(ln)][:before]}


def clear_times(broker: str, prefix: str, inj: int | None, end: int | None) -> dict:
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
    out = {}
    for s in scores:
        for name, m in s.models.items():
            if m is None or m.ratio < 1.0 or (s.ts - t0) < 60 * NS:
                continue
            if s.asset == "pump-1" and inj is not None and s.ts >= inj - 2 * NS:
                if s.ts >= end:
                    key = f"pump-1 {name} s after end"
                    out[key] = max(out.get(key, 0.0), round((s.ts - end) / NS, 1))
            else:  # a tick above its threshold in normal operation
                key = f"{s.asset} {name} normal ticks >= thr"
                out[key] = out.get(key, 0) + 1
    return out


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
    a = ap.parse_args()
    from tocsin.models import fusion_store
    from tocsin.services.kafka import free_port

    rows, trained = [], {}
    with tempfile.TemporaryDirectory(prefix="tocsin-demo-bench-") as tmp, \
            a.log.open("w") as log:
        tmp = str(a.work or tmp)
        for i in range(1, a.runs + 1):
            k = (i - 1) * a.trainings // a.runs
            models = Path(tmp) / f"models-{k}"
            if k not in trained and a.work and fusion_store.newest(models) is not None:
                trained[k] = 0.0  # trained by an earlier call with the same --work
            if k not in trained:
                trained[k] = train(models, k, log, a.plant_models if k == 0 else None)
                print(f"training {k} (seed {k}): {trained[k]:.0f} s", flush=True)
            r = demo(i, models, a.broker, a.duration, a.opcua_port or free_port(), log)
            r["training"] = k
            print(r, flush=True)
            rows.append(r)
    total = sum(r["false_alerts"] for r in rows)
    clears = [v for r in rows for k, v in r["clear_s"].items() if "after end" in k]
    print(f"{len(rows)} fresh runs ({len(trained)} trainings): {total} false alerts (raised "
          f"before the fault) in {sum(r['false_alerts'] > 0 for r in rows)} runs; "
          f"{sum(r['raised_after_fault'] > 0 for r in rows)} runs raised after it; pump-1 "
          f"scores back under their thresholds at most {max(clears, default=0):.0f} s after "
          f"the fault's end (median of the per-model maxima "
          f"{np.median(clears) if clears else 0:.0f} s)")


if __name__ == "__main__":
    main()
