"""End-to-end latency of the fusion worker on a real broker: score tick produced (its source
time = wall clock at produce) -> Faust fusion worker -> fused alert consumed here.

Setup: a fresh topic prefix; `tocsin fusion worker` with the expert network and a config whose
hold time is 0, so ticks that alternate between anomalous and normal make every tick an alert
event (raised or cleared); 3 assets at 10 ticks/s each for --duration seconds (SIMULATED
score values). Reports medians: worker = emitted_ts - source_ts, end to end = consumed here -
source_ts. No peer runs here (see README): the threshold path's figures are in
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

from tocsin.contracts.alerts import Alert
from tocsin.contracts.scores import ModelScore, Scores
from tocsin.detectors.fusion_config import DEFAULT_PATH
from tocsin.streams import topics

ASSETS = {"pump-1": ("centrifugal-pump", {"vibration_rms": 0.8, "bearing_temp": 0.2}),
          "motor-1": ("induction-motor", {"current_a": 0.7, "voltage": 0.3}),
          "press-1": ("hydraulic-press", {"pressure": 0.7, "flow": 0.3})}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--broker", default="127.0.0.1:9092")
    ap.add_argument("--duration", type=float, default=20.0)
    args = ap.parse_args()
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    tmp = Path(tempfile.mkdtemp())
    cfg = yaml.safe_load(DEFAULT_PATH.read_text())
    cfg["lifecycle"]["hold_s"] = 0
    (tmp / "fusion.yaml").write_text(yaml.safe_dump(cfg))
    env = dict(os.environ, TOCSIN_BROKER=args.broker, TOCSIN_TOPIC_PREFIX=prefix,
               TOCSIN_PARTITIONS="2", TOCSIN_DATA_DIR=str(tmp / "data"),
               TOCSIN_MODELS=str(tmp / "models"))
    log = open(tmp / "worker.log", "wb")
    w = subprocess.Popen([sys.executable, "-m", "tocsin.cli", "fusion", "worker", "--config",
                          str(tmp / "fusion.yaml")], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while b"[^Worker]: Ready" not in (tmp / "worker.log").read_bytes():
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
                for a, (atype, contrib) in ASSETS.items():
                    now = time.time_ns()
                    r = 6.0 if hot else 0.2
                    s = Scores(a, atype, now, {"iforest": ModelScore(r, 1.0),
                                               "lstm_ae": ModelScore(r, 1.0, contrib)},
                               "bench", "x", source_ts=now)
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
