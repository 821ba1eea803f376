"""End-to-end latency of the fusion worker on a real broker: score tick produced (its source
time = wall clock at produce) -> Faust fusion worker -> fused alert consumed here.

Setup: a fresh topic prefix; `tocsin fusion worker` with the newest trained network under
$TOCSIN_MODEL_DIR (else the expert priors) and a config whose hold time is 0 and that raises
on the first anomalous tick, so ticks that alternate between anomalous and normal make every
tick an alert event (raised or cleared);
3 assets at 10 ticks/s each for --duration seconds. The ticks are real anomaly-model score
ticks (Isolation Forest + LSTM-AE of `tocsin train`) of SIMULATED readings, taken from each
asset's normal operation and from a fault, restamped with the wall clock at produce.
Reports medians: worker = emitted_ts - source_ts, end to end = consumed here - source_ts.
No peer runs here (see README): the threshold path's figures are in
benchmarks/threshold_path.py. Usage: python -m benchmarks.fusion_latency [--broker H:P]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import yaml
from confluent_kafka import Consumer, Producer

from tocsin.config.fusion import DEFAULT_PATH
from tocsin.connectors.simulator.fusion_stream import ModelScores, simulate
from tocsin.connectors.simulator.scenario import FaultEvent, Scenario
from tocsin.contracts import topics
from tocsin.contracts.alerts import Alert
from tocsin.contracts.scores import Scores
from tocsin.models import fusion_store

FAULTS = {"pump-1": "leak", "motor-1": "phase_imbalance", "press-1": "leak"}


def real_ticks(scores: ModelScores) -> dict[str, tuple[Scores, Scores]]:
    """Per asset: a normal and a faulty score tick of the trained models (fully warmed up)."""
    out = {}
    for asset, fault in FAULTS.items():
        st = simulate(Scenario(seed=5, seconds=130, assets=[asset], faults=[
            FaultEvent(asset=asset, fault=fault, start=100)]), scores)
        ticks = [x for k, x in st.items if k == "scores"]
        start = st.truth[0]["start_ns"]
        cold = [s for s in ticks if s.ts < start and s.models["lstm_ae"] is not None][-1]
        out[asset] = (cold, ticks[-1])
    return out


def restamp(s: Scores, now: int) -> Scores:
    return Scores(s.asset, s.asset_type, now, s.models, s.model_version, s.feature_hash,
                  source_ts=now)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--broker", default="127.0.0.1:9092")
    ap.add_argument("--duration", type=float, default=20.0)
    args = ap.parse_args()
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    tmp = Path(tempfile.mkdtemp())
    ticks = real_ticks(ModelScores(assets=list(FAULTS)))
    network = fusion_store.newest()
    print(f"network: {network or 'expert priors (no trained network)'}")
    cfg = yaml.safe_load(DEFAULT_PATH.read_text())
    cfg["lifecycle"]["hold_s"] = 0
    cfg["lifecycle"]["raise_min_ticks"] = 1  # every anomalous tick raises: one event per tick
    (tmp / "fusion.yaml").write_text(yaml.safe_dump(cfg))
    env = dict(os.environ, TOCSIN_BROKER=args.broker, TOCSIN_TOPIC_PREFIX=prefix,
               TOCSIN_PARTITIONS="2", TOCSIN_DATA_DIR=str(tmp / "data"))
    log = open(tmp / "worker.log", "wb")
    pin = ["--model", str(network)] if network else ["--model-dir", str(tmp / "none")]
    w = subprocess.Popen([sys.executable, "-m", "tocsin.cli", "fusion", "worker", "--config",
                          str(tmp / "fusion.yaml"), *pin], env=env, stdout=log,
                         stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while b"fusion: ready" not in (tmp / "worker.log").read_bytes():
            if time.monotonic() > deadline or w.poll() is not None:
                sys.exit("worker did not start:\n" + (tmp / "worker.log").read_text()[-2000:])
            time.sleep(0.3)
        c = Consumer({"bootstrap.servers": args.broker, "group.id": f"b-{uuid.uuid4().hex}",
                      "auto.offset.reset": "latest", "enable.auto.commit": False})
        c.subscribe([prefix + topics.ALERTS])
        while not c.assignment():
            c.poll(0.2)
        p = Producer({"bootstrap.servers": args.broker, "linger.ms": 0})
        e2e, worker, i = [], [], 0
        end = time.monotonic() + args.duration
        next_t = time.monotonic()
        while time.monotonic() < end:
            if time.monotonic() >= next_t:
                hot = i % 2 == 0
                for a, (cold, faulty) in ticks.items():
                    s = restamp(faulty if hot else cold, time.time_ns())
                    p.produce(prefix + topics.SCORES, s.encode(), key=a.encode())
                p.poll(0)
                i += 1
                next_t += 0.1
            msg = c.poll(0.01)
            if msg is not None and not msg.error():
                got = time.time_ns()
                al = Alert.decode(msg.value())
                if al.kind == "fusion" and al.event.value in ("raised", "cleared"):
                    e2e.append((got - al.source_ts) / 1e6)
                    worker.append((al.emitted_ts - al.source_ts) / 1e6)
        c.close()
        n = len(e2e)
        e2e, worker = e2e[n // 10:], worker[n // 10:]  # skip the warm-up tenth
        print(f"fusion worker, {len(e2e)} alert events (3 assets x 10 ticks/s, {args.duration:.0f}s)")
        print(f"  worker (emitted - source):   median {statistics.median(worker):.1f} ms, "
              f"p95 {sorted(worker)[int(len(worker) * .95)]:.1f} ms")
        print(f"  end to end (consumed - src): median {statistics.median(e2e):.1f} ms, "
              f"p95 {sorted(e2e)[int(len(e2e) * .95)]:.1f} ms")
    finally:
        w.terminate()
        w.wait(20)


if __name__ == "__main__":
    main()
