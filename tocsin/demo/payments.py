"""`tocsin payments demo`: the fraud slice on embedded defaults, next to the plant demo.

Kafka (started through `tocsin services` unless --broker points at one) -> simulated payment
switch over ISO 8583 -> ingest -> payments.transactions -> scoring worker ->
payments.scores, shown here as review/decline decisions arrive, with a summary at the end.
All data is simulated. Runs on its own topic prefix, so the plant demo can run beside it.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from tocsin.contracts import topics
from tocsin.contracts.payments import FraudScore
from tocsin.demo.procs import spawn, stop_all, wait_log
from tocsin.services.kafka import free_port
from tocsin.services.registry import kafka_up, run_dir
from tocsin.streams.follow import follow, tail_consumer


def demo_env(base: dict, *, broker: str, prefix: str, model_dir: Path, logs: Path,
             app_id: str | None = None) -> dict:
    """The environment of the demo's processes: its broker, prefix and model, the worker's
    state under ``logs`` and, when given, the app id (consumer groups, changelogs)."""
    env = dict(base, TOCSIN_BROKER=broker, TOCSIN_TOPIC_PREFIX=prefix,
               TOCSIN_FRAUD_MODEL_DIR=str(model_dir), TOCSIN_DATA_DIR=str(logs / "worker"),
               PYTHONUNBUFFERED="1")
    if app_id:
        env["TOCSIN_APP_ID"] = app_id
    return env


def run_payments_demo(*, broker: str | None, prefix: str | None, model_dir: Path,
                      days: int = 2, speed: float = 3600.0, duration: float = 0.0,
                      data_dir: Path | None = None, app_id: str | None = None) -> int:
    con = Console(soft_wrap=True)
    prefix = prefix or f"paydemo-{int(time.time())}."
    broker = broker or kafka_up(9092, 9093)["bootstrap"]
    logs = data_dir or run_dir() / "payments-demo"
    logs.mkdir(parents=True, exist_ok=True)
    env = demo_env(os.environ, broker=broker, prefix=prefix, model_dir=model_dir, logs=logs,
                   app_id=app_id)
    # a PAN key of this run (the ingest refuses to start without one; the simulator labels
    # with it), unless the user configured theirs
    if not (env.get("TOCSIN_PAN_TOKEN_KEY") or env.get("TOCSIN_PAN_TOKEN_KEY_FILE")):
        env["TOCSIN_PAN_TOKEN_KEY"] = secrets.token_urlsafe(32)
    if not (model_dir / "meta.json").exists():
        con.print(f"[bold]model[/]: none at {model_dir}; training a small one on simulated "
                  "data (about a minute) ...")
        subprocess.run([sys.executable, "-m", "tocsin.cli", "train", "fraud", "--simulate",
                        "--days", "20", "--customers", "400", "--terminals", "100",
                        "--epochs", "2", "-o", str(model_dir)], env=env, check=True,
                       stdout=open(logs / "train.log", "ab"), stderr=subprocess.STDOUT)
    iso_port = free_port()
    procs = []
    try:
        ing = spawn(["payments", "ingest", "--iso-port", str(iso_port), "--http-port", "-1"],
                     logs / "ingest.log", env)
        procs.append(ing)
        wrk = spawn(["payments", "worker"], logs / "worker.log", env)
        procs.append(wrk)
        wait_log(logs / "ingest.log", "ingest: ready", ing, 60)
        wait_log(logs / "worker.log", "[^Worker]: Ready", wrk, 120)
        con.print(f"[bold]kafka[/]: {broker}, topics {prefix}payments.* (simulated data)")
        con.print(f"[bold]switch -> ISO 8583 :{iso_port} -> ingest -> worker[/] "
                  f"(logs in {logs}); {days} simulated days at {speed:g}x")
        sim = spawn(["payments", "sim", "--via", "iso", "--target", f"127.0.0.1:{iso_port}",
                      "--days", str(days), "--speed", str(speed)], logs / "sim.log", env)
        procs.append(sim)
        c = tail_consumer(broker, [prefix + topics.PAY_SCORES], from_beginning=True,
                          group=f"{env.get('TOCSIN_APP_ID') or 'tocsin'}-payments-demo")
        seen: Counter = Counter()
        lat = []
        end = time.monotonic() + duration if duration else None
        last = [time.monotonic()]  # when the last score arrived

        def until() -> bool:
            now = time.monotonic()
            # the switch has sent everything and nothing arrived for 5 s, or time is up
            return bool(sim.poll() is not None and now - last[0] > 5 or end and now > end)

        for s in follow(c, FraudScore.decode, until=until, poll_s=0.5,
                        on_error=lambda line: con.print(f"[red]{escape(line)}[/]")):
            last[0] = time.monotonic()
            seen[(s.decision, s.branch)] += 1
            lat.append(s.latency_ms)
            if s.decision != "approve":
                con.print(f"{s.decision.upper():>8} {s.score:.3f} {s.card_id} "
                          f"{s.terminal_id} ({s.branch} branch, batch {s.batch_size}, "
                          f"{s.latency_ms:.1f} ms)")
        c.close()
        total = sum(seen.values())
        lat.sort()
        con.print(f"demo finished: {total} transactions scored; " + ", ".join(
            f"{d}/{b}: {n}" for (d, b), n in sorted(seen.items())))
        if lat:
            con.print(f"ingest -> score latency p50 {lat[len(lat) // 2]:.1f} ms, "
                      f"p99 {lat[int(len(lat) * 0.99)]:.1f} ms")
        return 0 if total else 1
    finally:
        stop_all(reversed(procs))
