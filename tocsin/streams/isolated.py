"""Run a recording through an isolated pipeline and compare what comes out.

An isolated run has its own topic prefix and consumer group: a worker is started on that
prefix, the recording's readings are replayed into it as fast as possible (source timestamps
kept), and the run is over when the worker has committed every input offset (the runtime
commits the offsets in the transaction that holds the alerts they produced). The alerts are then read to the end of the topic.

Used by `tocsin replay --expect` (golden checks) and `tocsin replay --shadow` (two configs
side by side).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient

from tocsin.config.kafka_security import client_conf
from tocsin.connectors import kafka_admin
from tocsin.connectors.recording import RecordingReader
from tocsin.connectors.replayer import ReplaySpec, replay
from tocsin.contracts import topics
from tocsin.contracts.alerts import Alert
from tocsin.errors import TocsinError

IGNORED = {"emitted_ts"}  # wall clock: differs on every run by design


def normalize(a: Alert) -> dict:
    d = orjson.loads(a.encode())
    for k in IGNORED:
        d.pop(k, None)
    return d


def input_topic(reader: RecordingReader) -> str:
    cands = [t for t in reader.topics if t.endswith(topics.READINGS)]
    if len(cands) != 1:
        raise TocsinError(f"{reader.path}: expected one *{topics.READINGS} topic in the "
                          f"recording, found {reader.topics}")
    return cands[0]


def alerts_in_recording(path: str | Path) -> list[dict]:
    """The alert events a recording holds (recorded from a live run), normalized."""
    with RecordingReader(path) as r:
        src = [t for t in r.topics if t.endswith(topics.ALERTS)]
        if not src:
            raise TocsinError(f"{path}: the recording has no *{topics.ALERTS} topic")
        out = [normalize(Alert.decode(m.value)) for m in r if m.topic in src and m.value]
    return sort_alerts(out)


def sort_alerts(items: list[dict]) -> list[dict]:
    return sorted(items, key=lambda d: (d["source_ts"], d["alert_id"], d["event"]))


@dataclass
class RunResult:
    alerts: list[dict]
    prefix: str
    replayed: int
    seconds: float
    worker_log: Path


def run_isolated(recording: str | Path, broker: str, *, plant_config: str | None = None,
                 timeout: float = 180.0, allow_truncated: bool = False,
                 log_dir: Path | None = None, speed: float = 0.0) -> RunResult:
    t0 = time.monotonic()
    with RecordingReader(recording, allow_truncated=allow_truncated) as r:
        src = input_topic(r)
    prefix = f"iso{uuid.uuid4().hex[:8]}."
    kafka_admin.ensure_topics(broker, [prefix + t for t in topics.ALL], 4)
    log_dir = Path(log_dir or tempfile.mkdtemp(prefix="tocsin-iso-"))
    log = log_dir / f"{prefix}worker.log"
    env = dict(os.environ, TOCSIN_BROKER=broker, TOCSIN_TOPIC_PREFIX=prefix,
               TOCSIN_DATA_DIR=str(log_dir / f"{prefix}data"), PYTHONUNBUFFERED="1")
    if plant_config:
        env["TOCSIN_PLANT_CONFIG"] = str(plant_config)
    with open(log, "wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "tocsin.cli", "worker"], env=env,
                                stdout=fh, stderr=subprocess.STDOUT)
    try:
        _wait_marker(proc, log, "runtime: ready", timeout)
        res = replay(recording, broker, ReplaySpec(speed=speed, prefix=prefix,
                                                   rename={src: topics.READINGS},
                                                   topics=[src],
                                                   allow_truncated=allow_truncated))
        group = f"tocsin-{prefix}thresholds"  # the thresholds operator (runtime naming)
        _wait_committed(broker, group, prefix + topics.READINGS, proc, log,
                        t0 + timeout - time.monotonic())
        alerts = [normalize(Alert.decode(v)) for v in read_all(broker, prefix + topics.ALERTS)]
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
    return RunResult(sort_alerts(alerts), prefix, res.messages, time.monotonic() - t0, log)


def _wait_marker(proc, log: Path, marker: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while marker not in log.read_text(errors="replace"):
        if proc.poll() is not None:
            raise TocsinError(f"worker exited ({proc.returncode}); log {log}:\n"
                              f"{log.read_text(errors='replace')[-2000:]}")
        if time.monotonic() > deadline:
            raise TocsinError(f"worker not ready in {timeout:.0f}s; log {log}")
        time.sleep(0.2)


def _wait_committed(broker: str, group: str, topic: str, proc, log: Path,
                    timeout: float) -> None:
    """Until the group's committed offsets reach the end of every partition of `topic`."""
    c = Consumer(client_conf(broker, {"group.id": f"{group}-probe"}))
    admin = AdminClient(client_conf(broker))
    try:
        parts = sorted(c.list_topics(topic, timeout=15).topics[topic].partitions)
        ends = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=15)[1]
                for p in parts}
        deadline = time.monotonic() + max(timeout, 1.0)
        while True:
            if proc.poll() is not None:
                raise TocsinError(f"worker exited ({proc.returncode}); log {log}")
            req = [ConsumerGroupTopicPartitions(
                group, [TopicPartition(topic, p) for p in parts])]
            fut = admin.list_consumer_group_offsets(req)[group]
            try:
                got = {tp.partition: tp.offset for tp in fut.result(15).topic_partitions}
            except Exception:
                got = {}
            if all(got.get(p, -1) >= ends[p] for p in parts if ends[p] > 0):
                return
            if time.monotonic() > deadline:
                raise TocsinError(f"worker did not finish the replayed input in time "
                                  f"(committed {got}, end {ends}); log {log}")
            time.sleep(0.5)
    finally:
        c.close()


def read_all(broker: str, topic: str) -> list[bytes]:
    """Every message value of `topic`, from the beginning to the current end."""
    # the alerts are written in transactions: read what is committed; a partition then ends
    # in a commit marker, never a message, so the partition EOF is what says it is read
    c = Consumer(client_conf(broker, {"group.id": f"read-{uuid.uuid4().hex}",
                  "enable.auto.commit": False, "enable.partition.eof": True,
                  "isolation.level": "read_committed"}))
    try:
        parts = sorted(c.list_topics(topic, timeout=15).topics[topic].partitions)
        ends = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=15) for p in parts}
        todo = {p for p in parts if ends[p][1] > ends[p][0]}
        c.assign([TopicPartition(topic, p, ends[p][0]) for p in todo])
        out = []
        deadline = time.monotonic() + 60
        while todo and time.monotonic() < deadline:
            for msg in c.consume(1000, 0.5):
                if msg.error():
                    if msg.error().code() == KafkaError._PARTITION_EOF:
                        todo.discard(msg.partition())
                    continue
                out.append(msg.value())
                if msg.offset() + 1 >= ends[msg.partition()][1]:
                    todo.discard(msg.partition())
        if todo:
            raise TocsinError(f"could not read {topic} to its end (partitions {sorted(todo)})")
        return out
    finally:
        c.close()


# --------------------------------------------------------------------------- comparing
@dataclass
class Diff:
    missing: list[dict] = field(default_factory=list)
    extra: list[dict] = field(default_factory=list)
    changed: list[tuple[dict, dict]] = field(default_factory=list)

    @property
    def same(self) -> bool:
        return not (self.missing or self.extra or self.changed)


def diff_alerts(expected: list[dict], actual: list[dict]) -> Diff:
    def key(d):
        return (d["alert_id"], d["event"])

    exp = defaultdict(list)
    for d in expected:
        exp[key(d)].append(d)
    act = defaultdict(list)
    for d in actual:
        act[key(d)].append(d)
    out = Diff()
    for k in exp.keys() | act.keys():
        e, a = exp.get(k, []), act.get(k, [])
        for x, y in zip(e, a):
            if x != y:
                out.changed.append((x, y))
        out.missing += e[len(a):]
        out.extra += a[len(e):]
    return out


def load_expected(path: str | Path) -> list[dict]:
    items = []
    for i, line in enumerate(Path(path).read_text().splitlines(), 1):
        if line.strip():
            try:
                items.append(orjson.loads(line))
            except orjson.JSONDecodeError as exc:
                raise TocsinError(f"{path}:{i}: not a JSON line ({exc})") from exc
    return sort_alerts(items)


def save_expected(path: str | Path, alerts: list[dict]) -> None:
    Path(path).write_bytes(b"".join(orjson.dumps(a, option=orjson.OPT_SORT_KEYS) + b"\n"
                                    for a in sort_alerts(alerts)))


def describe(d: dict) -> str:
    return (f"{d['event']:<8} {d['asset']} {d['tag']} {d['rule']} value={d['value']:.6g} "
            f"source_ts={d['source_ts']} id={d['alert_id']}")


def shadow_report(a: list[dict], b: list[dict]) -> list[tuple]:
    """Per (asset, tag, rule): raised counts and the first raise time in each run."""
    rows = []
    keys = sorted({(d["asset"], d["tag"], d["rule"]) for d in a + b})
    for k in keys:
        ra = [d for d in a if (d["asset"], d["tag"], d["rule"]) == k and d["event"] == "raised"]
        rb = [d for d in b if (d["asset"], d["tag"], d["rule"]) == k and d["event"] == "raised"]
        fa = min((d["source_ts"] for d in ra), default=None)
        fb = min((d["source_ts"] for d in rb), default=None)
        rows.append((*k, len(ra), len(rb), fa, fb))
    return rows


def event_counts(items: list[dict]) -> Counter:
    return Counter(d["event"] for d in items)
