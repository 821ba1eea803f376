"""Failover of a consumer group after kill -9 of one member: old broker settings vs new.

Two private single-node brokers run side by side in one invocation: ``old`` with the settings
Tocsin used before (Kafka's defaults, no initial rebalance delay; its floor for a session
timeout is 6 s) and ``new`` with FAILOVER_SETTINGS (tocsin/services/kafka.py; floor 1 s).
A round: a 4-partition topic gets one record per partition every 20 ms; a plain
confluent-kafka group of two members (separate processes) shares it; one member is SIGKILLed
and we time how long until the survivor consumes from a partition the dead one owned.

Contenders (each with the shortest session timeout its broker allows, heartbeat 1 s):
  old-6s        old broker, session.timeout.ms 6000
  new-3s        new broker, session.timeout.ms 3000 (what a Tocsin worker may now ask for)
  old-default   old broker, librdkafka's default session (45 s, heartbeat 3 s): what a
                client that sets nothing gets (``--default-rounds``, 0 to skip)

Usage: python -m benchmarks.broker_failover [--rounds 3] [--default-rounds 1]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, Producer

from tocsin.connectors.kafka_admin import ensure_topics
from tocsin.services.kafka import KafkaBroker, free_port

PARTS = 4
CONTENDERS = {  # name -> (broker, session.timeout.ms, heartbeat.interval.ms)
    "old-6s": ("old", 6000, 1000),
    "new-3s": ("new", 3000, 1000),
    "old-default": ("old", None, None),
}


# --------------------------------------------------------------------------- a member
def member(bootstrap: str, topic: str, group: str, session: int | None, hb: int | None) -> None:
    """Consume and report on stdout: ``assign T p,p`` and ``first T p`` (first record of a
    partition since its assignment), T on the system-wide monotonic clock."""
    conf = {"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "latest",
            "enable.auto.commit": True, "auto.commit.interval.ms": 500}
    if session is not None:
        conf.update({"session.timeout.ms": session, "heartbeat.interval.ms": hb})
    seen: set[int] = set()

    def on_assign(c, parts):
        seen.clear()
        print(f"assign {time.monotonic():.4f} {','.join(str(p.partition) for p in parts)}",
              flush=True)

    c = Consumer(conf)
    c.subscribe([topic], on_assign=on_assign)
    while True:
        m = c.poll(0.05)
        if m is not None and not m.error() and m.partition() not in seen:
            seen.add(m.partition())
            print(f"first {time.monotonic():.4f} {m.partition()}", flush=True)


class Member:
    def __init__(self, bootstrap: str, topic: str, group: str, session, hb):
        args = [sys.executable, "-m", "benchmarks.broker_failover", "--member", bootstrap,
                topic, group, str(session or 0), str(hb or 0)]
        self.p = subprocess.Popen(args, stdout=subprocess.PIPE, text=True,
                                  stderr=subprocess.DEVNULL)
        self.assigned: set[int] = set()
        self.events: list[tuple[str, float, list[int]]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.p.stdout is not None
        for line in self.p.stdout:
            kind, t, parts = (line.split() + [""])[:3]
            ps = [int(x) for x in parts.split(",") if x]
            self.events.append((kind, float(t), ps))
            if kind == "assign":
                self.assigned = set(ps)

    def kill(self) -> None:
        os.kill(self.p.pid, signal.SIGKILL)
        self.p.wait()


def _wait(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.02)


def one_round(bootstrap: str, session, hb, timeout: float) -> dict[str, float]:
    """Seconds from SIGKILL of one member to the survivor's assignment of, and first record
    from, the dead member's partitions."""
    topic, group = f"fo{uuid.uuid4().hex[:8]}", f"g{uuid.uuid4().hex[:8]}"
    ensure_topics(bootstrap, [topic], PARTS, replication=1)
    stop = threading.Event()

    def produce():
        p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
        while not stop.is_set():
            for part in range(PARTS):
                p.produce(topic, b"x", partition=part)
            p.poll(0)
            time.sleep(0.02)
        p.flush(5)

    threading.Thread(target=produce, daemon=True).start()
    a, b = (Member(bootstrap, topic, group, session, hb) for _ in range(2))
    try:
        _wait(lambda: len(a.assigned) == 2 and len(b.assigned) == 2
              and {e[2][0] for e in b.events if e[0] == "first"} >= b.assigned,
              timeout, "both members consuming two partitions")
        time.sleep(1.0)
        dead = set(a.assigned)
        t_kill = time.monotonic()
        a.kill()

        def survivor_has(kind: str) -> float | None:
            ts = [t for k, t, ps in b.events if k == kind and t > t_kill and dead & set(ps)]
            return min(ts) if ts else None

        _wait(lambda: survivor_has("first") is not None, timeout,
              "survivor consuming the dead member's partitions")
        return {"assigned_s": survivor_has("assign") - t_kill,
                "failover_s": survivor_has("first") - t_kill}
    finally:
        stop.set()
        for m in (a, b):
            if m.p.poll() is None:
                m.kill()


# --------------------------------------------------------------------------- report
def _report(name: str, params: dict):
    """benchmarks.report.Report where that module exists (issue #20), else a small stand-in
    that prints the same verdict line and writes the JSON with orjson."""
    try:
        from benchmarks.report import Report

        return Report(name, params)
    except ImportError:
        return _MiniReport(name, params)


class _MiniReport:
    def __init__(self, name: str, params: dict):
        self.name, self.params, self.rounds, self.checks = name, params, {}, []

    def add(self, contender: str, **figures: float) -> None:
        self.rounds.setdefault(contender, []).append(
            {**figures, "load1": os.getloadavg()[0]})

    def note(self, text: str) -> None:
        self.params.setdefault("notes", []).append(text)

    def median(self, contender: str, metric: str) -> float:
        import statistics

        return float(statistics.median(r[metric] for r in self.rounds[contender]))

    def check(self, label, metric, contender, peer=None, op=None, target=None) -> None:
        self.checks.append((label, metric, contender, peer, op, target))

    def finish(self, args=None) -> dict:
        import orjson

        out = {"name": self.name, "params": self.params, "rounds": self.rounds,
               "loadavg": os.getloadavg(), "checks": []}
        for label, metric, c, peer, op, target in self.checks:
            if c not in self.rounds or (peer and peer not in self.rounds):
                continue
            v = self.median(c, metric) / (self.median(peer, metric) if peer else 1)
            ok = None if op is None else (v <= target if op == "<=" else v >= target)
            word = "INFO" if ok is None else ("PASS" if ok else "FAIL")
            fig = f"{c}/{peer} {metric} {v:.2f}x" if peer else f"{c} {metric} {v:.3g}"
            print(f"VERDICT {word} {self.name}: {label}: {fig}"
                  + (f" {op} {target:g}" if op else ""))
            out["checks"].append({"label": label, "value": v, "passed": ok})
        path = Path(__file__).resolve().parent / "results" / f"{self.name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(orjson.dumps(out, option=orjson.OPT_INDENT_2))
        print(f"result written to {path}")
        return out


# --------------------------------------------------------------------------- main
def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--member":
        bs, topic, group, session, hb = sys.argv[2:7]
        member(bs, topic, group, int(session) or None, int(hb) or None)
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3, help="rounds of old-6s and new-3s")
    ap.add_argument("--default-rounds", type=int, default=1, help="rounds of old-default "
                    "(45 s each; 0 to skip)")
    ap.add_argument("--timeout", type=float, default=90.0)
    try:
        from benchmarks.report import add_arguments

        add_arguments(ap)
    except ImportError:
        pass
    args = ap.parse_args()
    rep = _report("broker_failover", {k: v for k, v in vars(args).items()})
    with tempfile.TemporaryDirectory(prefix="tocsin-failover-") as tmp:
        brokers = {name: KafkaBroker(Path(tmp) / name, port=free_port(),
                                     controller_port=free_port(), heap="384m",
                                     failover=(name == "new"))
                   for name in ("old", "new")}
        try:
            for br in brokers.values():
                br.start(timeout=180)
            plan = [c for _ in range(args.rounds) for c in ("old-6s", "new-3s")]
            plan += ["old-default"] * args.default_rounds
            for c in plan:  # alternating, so both see the same load
                which, session, hb = CONTENDERS[c]
                fig = one_round(brokers[which].bootstrap, session, hb, args.timeout)
                print(f"  {c:<12} survivor assigned after {fig['assigned_s']:.2f} s, "
                      f"consuming after {fig['failover_s']:.2f} s", flush=True)
                rep.add(c, **fig)
        finally:
            for br in brokers.values():
                br.stop()
    rep.note("plain confluent-kafka group of 2 (classic protocol, eager range assignor), "
             "4 partitions, one private single-node broker per setting, run side by side")
    rep.check("failover new vs old settings (kill -9 to survivor consuming)", "failover_s",
              "new-3s", peer="old-6s")
    rep.check("failover new vs a client with default settings", "failover_s", "new-3s",
              peer="old-default")
    rep.check("failover with the new settings within 5 s", "failover_s", "new-3s",
              op="<=", target=5.0)
    rep.finish(args)


if __name__ == "__main__":
    main()
