"""Feature extraction and the anomaly path, side by side with peers in one invocation.

A  in-process, one core: Tocsin's WindowEngine (vectorised over windows and assets) against a
   straightforward per-sample Python implementation (same definitions, same numpy math per
   window, Python control flow per sample and per window): samples/s.
B  on the local broker, one worker process each, the same pre-filled topic of simulated pump
   frames: `tocsin worker --agents features` (all 13 features x 3 scales) against a stock Faust
   agent updating hopping-window tables for mean/std (benchmarks/faust_table_peer.py):
   samples/s from the consumer group's committed offsets (start-up excluded).
C  on the local broker: `tocsin worker --agents features,anomaly` with trained models for the
   pumps: frames -> features -> Isolation Forest + LSTM-AE scores; samples/s until the scores of
   every asset's last tick arrived.

Usage: python -m benchmarks.features [--broker HOST:PORT] [--assets 100] [--seconds 300]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections import deque
from pathlib import Path

import numpy as np
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from benchmarks.report import Report, add_arguments
from tocsin.config.plant import load_plant
from tocsin.connectors.model_sources import simulated_frames
from tocsin.contracts import topics
from tocsin.contracts.readings import ReadingsFrame
from tocsin.contracts.scores import Scores
from tocsin.detectors import features as F
from tocsin.detectors.windows import FeatureSpec, WindowEngine

NS = 1_000_000_000
PARTS = 4


def make_frames(assets: int, seconds: int, rate: float = 10.0) -> list[ReadingsFrame]:
    base = list(simulated_frames(seconds, seed=3, assets=["pump-1"], rate=rate))
    out = []
    for f in base:  # the same pump signal under many asset ids, time-ordered
        for a in range(assets):
            out.append(ReadingsFrame(f"pump-{a + 1}", f.tags, f.ts, f.values, f.quality))
    return out


class Straightforward:
    """Per sample: append to the tag's buffer; when an asset's watermark passes a boundary,
    compute each due window of each tag on its own (numpy per window)."""

    def __init__(self, spec: FeatureSpec):
        self.spec = spec
        self.names = spec.names
        self.buf: dict[tuple[str, str], deque] = {}
        self.next_b: dict[str, int] = {}
        self.max_ts: dict[str, int] = {}
        self.h = spec.scales[0].hop_ns
        self.late = int(spec.allowed_lateness_s * NS)
        self.keep = max(s.size_ns for s in spec.scales)
        self.tags: dict[str, list[str]] = {}
        self.rows = 0

    def add(self, f: ReadingsFrame) -> None:
        a = f.asset
        for tag, ts, v in zip(f.tags, f.ts.tolist(), f.values.tolist()):
            key = (a, tag)
            if key not in self.buf:
                self.buf[key] = deque()
                self.tags.setdefault(a, []).append(tag)
            self.buf[key].append((ts, v))
            if a not in self.next_b:
                self.next_b[a] = (ts // self.h + 1) * self.h
            if ts > self.max_ts.get(a, 0):
                self.max_ts[a] = ts
            while self.max_ts[a] - self.late >= self.next_b[a]:
                self._close(a, self.next_b[a])
                self.next_b[a] += self.h

    def _close(self, a: str, b: int) -> None:
        for sc in self.spec.scales:
            if b % sc.hop_ns:
                continue
            for tag in self.tags[a]:
                win = [(t, v) for t, v in self.buf[(a, tag)] if b - sc.size_ns <= t < b]
                if win:
                    t = np.array([w[0] for w in win], dtype=np.float64)
                    x = np.array([w[1] for w in win])
                    F.compute(x[None], ((t - t[0]) / NS)[None], self.names)
                    self.rows += 1
        for tag in self.tags[a]:
            d = self.buf[(a, tag)]
            while d and d[0][0] < b - self.keep:
                d.popleft()


def part_a(frames: list[ReadingsFrame], spec: FeatureSpec, rounds: int, rep: Report) -> dict:
    n = sum(len(f) for f in frames)
    res: dict[str, list[float]] = {"tocsin": [], "straightforward": []}
    for _ in range(rounds):
        eng = WindowEngine(spec)
        t0 = time.process_time()
        for i in range(0, len(frames), 256):
            for f in frames[i:i + 256]:
                eng.add(f.asset, f.tags, f.ts, f.values, f.quality)
            eng.close_ready()
        res["tocsin"].append(n / (time.process_time() - t0))
        sf = Straightforward(spec)
        sub = frames[: max(1, len(frames) // 10)]  # it is slow: a tenth of the data
        t0 = time.process_time()
        for f in sub:
            sf.add(f)
        res["straightforward"].append(sum(len(f) for f in sub) / (time.process_time() - t0))
        rep.add("A tocsin WindowEngine", samples_per_cpu_s=res["tocsin"][-1])
        rep.add("A straightforward", samples_per_cpu_s=res["straightforward"][-1])
    return {k: float(np.median(v)) for k, v in res.items()}


def fill(broker: str, topic: str, frames: list[ReadingsFrame], event_ts: bool = True
         ) -> list[int]:
    """``event_ts``: Kafka timestamps from the frames' event time (the Faust peer of part B
    windows by them); else now (CreateTime). The simulator's event times (2026-01) are older
    than the broker's retention: a retention check between the fill and the read deletes the
    records, which left part C waiting out its 900 s deadline, so part C fills with now, and
    part B's topic is created with no time retention (``retention.ms`` -1)."""
    from tocsin.config.kafka_security import client_conf
    from tocsin.connectors.kafka_admin import ensure_topics

    if event_ts:
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient(client_conf(broker))  # kept alive until the future resolves
        admin.create_topics([NewTopic(topic, PARTS, 1, config={"retention.ms": "-1"})]
                            )[topic].result(30)
    ensure_topics(broker, [topic], PARTS)
    p = Producer({"bootstrap.servers": broker, "linger.ms": 20, "compression.type": "lz4",
                  "batch.size": 1_000_000, "queue.buffering.max.messages": 1_000_000})
    for f in frames:
        if event_ts:
            p.produce(topic, f.encode(), key=f.asset.encode(),
                      timestamp=int(f.ts[-1] // 1_000_000))
        else:
            p.produce(topic, f.encode(), key=f.asset.encode())
        p.poll(0)
    assert p.flush(120) == 0
    c = Consumer({"bootstrap.servers": broker, "group.id": "probe-" + uuid.uuid4().hex})
    ends = [c.get_watermark_offsets(TopicPartition(topic, i), timeout=10)[1] for i in range(PARTS)]
    c.close()
    return ends


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process used so far (its own; /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def commit_rate(broker: str, group: str, topic: str, ends: list[int], samples_per_msg: float,
                proc: subprocess.Popen, limit_s: float) -> tuple[float, float, float]:
    """samples/s between the first non-zero commit and the end (or limit_s later), by wall
    clock and per CPU second of the worker process (robust when other work shares the cores)."""
    c = Consumer({"bootstrap.servers": broker, "group.id": group, "enable.auto.commit": False})
    tps = [TopicPartition(topic, i) for i in range(PARTS)]
    total = sum(ends)
    first = None
    done, t_done = 0, 0.0
    deadline = time.monotonic() + 600
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"contender exited with {proc.returncode}")
            try:
                got = sum(max(0, tp.offset) for tp in c.committed(tps, timeout=10))
            except KafkaException:  # the group's coordinator is not known yet
                time.sleep(0.25)
                continue
            now = time.monotonic()
            if got and first is None:
                first = (now, got)
                cpu0 = cpu_s(proc.pid)
            if first:
                done, t_done = got, now
                cpu1 = cpu_s(proc.pid)
                if got >= total or now - first[0] >= limit_s:
                    break
            time.sleep(0.25)
    finally:
        c.close()
    if first is None or t_done == first[0]:
        raise RuntimeError("no progress measured (too little data for the commit interval?)")
    n = (done - first[1]) * samples_per_msg
    return n / (t_done - first[0]), done / total, n / max(1e-9, cpu1 - cpu0)


def peer_rate(log: Path, proc: subprocess.Popen, limit_s: float, total: int):
    """From the peer's own progress lines (its commits stall behind its changelog writes)."""
    first = None
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"peer exited {proc.returncode}; see {log}")
        marks = [line[line.index("PEER "):].split() for line in
                 log.read_text(errors="replace").splitlines() if "PEER " in line]
        if marks and first is None:
            first = time.monotonic()
            cpu0, n_cpu0 = cpu_s(proc.pid), int(marks[-1][1])
        if len(marks) > 1 and (int(marks[-1][1]) >= total - 5_000
                      or time.monotonic() - first >= limit_s):
            (n0, t0), (n1, t1) = (map(float, marks[0][1:3]), map(float, marks[-1][1:3]))
            if t1 == t0:
                time.sleep(1)
                continue
            per_cpu = (n1 - n_cpu0) / max(1e-9, cpu_s(proc.pid) - cpu0)
            return (n1 - n0) / (t1 - t0), n1 / total, per_cpu
        time.sleep(0.5)
    raise RuntimeError("peer made no measurable progress")


def spawn(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen(args, env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def stop(p: subprocess.Popen) -> None:
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()


def plant_yaml(n: int, path: Path) -> Path:
    import yaml

    base = yaml.safe_load(Path(load_plant.__globals__["DEFAULT_PLANT"]).read_text())
    pump = base["assets"]["pump-1"]
    path.write_text(yaml.safe_dump({"plant": "bench", "assets": {
        f"pump-{i + 1}": pump for i in range(n)}}, sort_keys=False))
    return path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--broker", default=os.environ.get("TOCSIN_TEST_BROKER", "127.0.0.1:9092"))
    ap.add_argument("--assets", type=int, default=100)
    ap.add_argument("--seconds", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rate", type=float, default=10.0,
                    help="samples per second per tag (frames hold one second of an asset)")
    ap.add_argument("--peer-limit", type=float, default=40.0,
                    help="seconds the (slow) Faust table peer is measured for")
    ap.add_argument("--skip", default="", help="comma list of parts to skip: a,b,c")
    args = add_arguments(ap).parse_args()
    rep = Report("features", vars(args))
    skip = set(args.skip.split(","))
    spec = load_plant(None).features
    frames = make_frames(args.assets, args.seconds, args.rate)
    spm = sum(len(f) for f in frames) / len(frames)
    print(f"data: {args.assets} simulated pumps x {args.seconds} s at {args.rate:g} Hz x 5 tags = "
          f"{sum(len(f) for f in frames):,} samples in {len(frames):,} frames")
    if "a" not in skip:
        a = part_a(frames, spec, args.rounds, rep)
        print(f"A in-process, one core (median of {args.rounds}): tocsin "
              f"{a['tocsin']:,.0f} samples/s, straightforward {a['straightforward']:,.0f} "
              f"samples/s -> {a['tocsin'] / a['straightforward']:.1f}x")
    work = Path(tempfile.mkdtemp(prefix="bench-features-"))
    cfg = plant_yaml(args.assets, work / "plant.yaml")
    env0 = dict(os.environ, TOCSIN_BROKER=args.broker, TOCSIN_PLANT_CONFIG=str(cfg),
                TOCSIN_PARTITIONS=str(PARTS), PYTHONUNBUFFERED="1")
    if "b" not in skip:
        for r in range(args.rounds if args.rounds < 3 else 2):
            prefix = f"bf{uuid.uuid4().hex[:6]}."
            topic = prefix + topics.READINGS
            ends = fill(args.broker, topic, frames)
            ensure = [prefix + t for t in topics.ALL]
            from tocsin.connectors.kafka_admin import ensure_topics

            ensure_topics(args.broker, ensure, PARTS)
            env = dict(env0, TOCSIN_TOPIC_PREFIX=prefix, TOCSIN_AGENTS="features",
                       TOCSIN_DATA_DIR=str(work / f"w{r}"))
            p = spawn([sys.executable, "-m", "tocsin.cli", "worker"], env, work / f"tocsin{r}.log")
            try:
                t_rate, t_frac, t_cpu = commit_rate(args.broker, f"tocsin-{prefix}features", topic,
                                                    ends, spm, p, 300)
            finally:
                stop(p)
            env = dict(env0, BENCH_BROKER=args.broker, BENCH_TOPIC=topic,
                       BENCH_PARTITIONS=str(PARTS), BENCH_DATADIR=str(work / f"p{r}"))
            p = spawn([sys.executable, "-m", "benchmarks.faust_table_peer", "worker", "-l",
                       "warn"], env, work / f"peer{r}.log")
            try:
                f_rate, f_frac, f_cpu = peer_rate(work / f"peer{r}.log", p, args.peer_limit,
                                           sum(len(f) for f in frames))
            finally:
                stop(p)
            rep.add("B tocsin features worker", samples_per_s=t_rate, per_cpu_s=t_cpu)
            rep.add("B faust hopping tables", samples_per_s=f_rate, per_cpu_s=f_cpu)
            print(f"B round {r + 1}: tocsin features worker {t_rate:,.0f} samples/s wall, "
                  f"{t_cpu:,.0f} per CPU-second ({t_frac:.0%} of the topic); "
                  f"Faust hopping tables (mean/std) "
                  f"{f_rate:,.0f} samples/s wall, {f_cpu:,.0f} per CPU-second ({f_frac:.0%}) "
                  f"-> {t_rate / f_rate:.1f}x wall, {t_cpu / f_cpu:.1f}x per CPU-second")
    if "c" not in skip:
        part_c(args, frames, spm, work, env0, rep)
    rep.check("A WindowEngine vs per-sample Python", "samples_per_cpu_s",
              "A tocsin WindowEngine", peer="A straightforward")
    rep.check("B features worker vs stock Faust tables", "samples_per_s",
              "B tocsin features worker", peer="B faust hopping tables")
    frame = f"{spm:.0f}-sample frames"
    rep.check(f"C features -> scores per worker, {frame}", "samples_per_s", "C worker",
              op=">=" if round(spm) == 50 else None, target=150_000 if round(spm) == 50 else None)
    rep.check(f"C features -> scores per CPU-s, {frame}", "per_cpu_s", "C worker")
    rep.check("C this tree vs baseline tree (samples/s)", "samples_per_s", "C worker",
              peer="C worker baseline tree")
    rep.check("C this tree vs baseline tree (per CPU-s)", "per_cpu_s", "C worker",
              peer="C worker baseline tree")
    rep.finish(args)


def part_c(args, frames, spm, work: Path, env0: dict, rep: Report) -> None:
    from tocsin.models.training import TrainConfig, collect_ticks, train_asset_type

    plant = load_plant(None)
    root = work / "models"
    ticks = collect_ticks(simulated_frames(600, seed=1, assets=["pump-1"], rate=args.rate),
                          plant.features,
                          {"pump-1": plant.asset_tags()["pump-1"]})
    train_asset_type("centrifugal-pump", ticks, plant.features, plant.asset_tags()["pump-1"],
                     TrainConfig(epochs=4, threads=1), root,
                     f"benchmark: 600 s simulated at {args.rate:g} Hz")
    contenders = [("C worker", None)]
    if args.baseline_tree:
        contenders.append(("C worker baseline tree", args.baseline_tree))
    for r in range(max(1, min(args.rounds, 2))):
        for name, tree in contenders:
            rate, per_cpu = _part_c_run(args, frames, spm, work, env0, root, tree, f"{r}{name[-4:]}")
            rep.add(name, samples_per_s=rate, per_cpu_s=per_cpu)


def _part_c_run(args, frames, spm, work: Path, env0: dict, root: Path, tree: Path | None,
                tag: str) -> tuple[float, float]:
    """One worker (features + anomaly) from ``tree`` (None: this one) over the frames."""
    prefix = f"bc{uuid.uuid4().hex[:6]}."
    topic = prefix + topics.READINGS
    from tocsin.connectors.kafka_admin import ensure_topics

    ensure_topics(args.broker, [prefix + t for t in topics.ALL], PARTS)
    ends = fill(args.broker, topic, frames, event_ts=False)
    last_tick = (int(max(f.ts[-1] for f in frames)) - 2 * NS) // NS * NS
    c = Consumer({"bootstrap.servers": args.broker, "group.id": "sc-" + uuid.uuid4().hex,
                  "auto.offset.reset": "earliest"})
    c.subscribe([prefix + topics.SCORES])
    env = dict(env0, TOCSIN_TOPIC_PREFIX=prefix, TOCSIN_AGENTS="features,anomaly",
               TOCSIN_MODEL_DIR=str(root), TOCSIN_DATA_DIR=str(work / f"wc{tag}"))
    cwd = None
    if tree is not None:
        cwd, env["PYTHONPATH"] = str(tree), str(tree)
    p = subprocess.Popen([sys.executable, "-m", "tocsin.cli", "worker"], env=env, cwd=cwd,
                         stdout=open(work / f"tocsin-c{tag}.log", "wb"),
                         stderr=subprocess.STDOUT, start_new_session=True)
    probe = Consumer({"bootstrap.servers": args.broker, "group.id": f"tocsin-{prefix}features",
                      "enable.auto.commit": False})
    tps = [TopicPartition(topic, i) for i in range(PARTS)]
    t_first = c_first = None
    done_assets: set[str] = set()
    n_scores, anomalous = 0, 0
    deadline = time.monotonic() + 900
    try:
        while len(done_assets) < args.assets and time.monotonic() < deadline:
            if p.poll() is not None:
                raise RuntimeError(f"worker exited {p.returncode}; see {work}/tocsin-c{tag}.log")
            if t_first is None:
                try:
                    got = sum(max(0, tp.offset) for tp in probe.committed(tps, timeout=10))
                except KafkaException:
                    got = 0
                if got:
                    t_first, c_first = time.monotonic(), got
                    cpu0 = cpu_s(p.pid)
            for m in c.consume(1000, 0.2):
                if m.error():
                    continue
                s = Scores.decode(m.value())
                n_scores += 1
                anomalous += s.anomalous
                if s.ts >= last_tick:
                    done_assets.add(s.asset)
        t_end = time.monotonic()
        cpu1 = cpu_s(p.pid)
    finally:
        stop(p)
        c.close()
        probe.close()
    if t_first is None:
        raise RuntimeError("no commit seen")
    n = (sum(ends) - c_first) * spm
    rate = n / (t_end - t_first)
    print(f"C frames -> features -> scores, one worker process ({tree or 'this tree'}): "
          f"{rate:,.0f} samples/s wall, "
          f"{n / max(1e-9, cpu1 - cpu0):,.0f} per CPU-second "
          f"({n_scores:,} scores, {len(done_assets)}/{args.assets} assets complete, "
          f"{anomalous / max(1, n_scores):.1%} of ticks above a threshold on normal data)",
          flush=True)
    return rate, n / max(1e-9, cpu1 - cpu0)


if __name__ == "__main__":
    main()
