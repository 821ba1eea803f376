"""Helpers for the security tests: a secure broker, clients with explicit security settings,
a spawner for `tocsin ...` processes against any broker, and the secret scan."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient

from tests.integration.conftest import Proc
from tocsin.config.kafka_security import load_kafka_security
from tocsin.contracts.deadletter import DeadLetter


def conf(bootstrap: str, client_file: Path | None, **extra) -> dict:
    """confluent-kafka config with the security of ``client_file`` (None: plaintext)."""
    sec = {} if client_file is None else load_kafka_security(
        config_file=str(client_file)).confluent()
    return {"bootstrap.servers": bootstrap, **sec, **extra}


def env_for(bootstrap: str, client_file: Path | None, prefix: str, **extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TOCSIN_KAFKA_", "TOCSIN_INGEST_", "TOCSIN_PAN_"))
           and k != "TOCSIN_DEV"}
    env.update(TOCSIN_BROKER=bootstrap, TOCSIN_TOPIC_PREFIX=prefix, TOCSIN_PARTITIONS="2",
               PYTHONUNBUFFERED="1", **extra)
    if client_file is not None:
        env["TOCSIN_KAFKA_CONFIG_FILE"] = str(client_file)
    return env


class Spawner:
    def __init__(self, tmp: Path, env: dict):
        self.tmp, self.env, self.procs = tmp, env, []

    def __call__(self, *args: str, name: str, **extra: str) -> Proc:
        e = dict(self.env, TOCSIN_DATA_DIR=str(self.tmp / f"{name}-data"), **extra)
        p = Proc(list(args), self.tmp / f"{name}.log", e)
        self.procs.append(p)
        return p

    def logs(self) -> dict[str, bytes]:
        return {p.log.name: p.log.read_bytes() for p in self.procs}

    def stop(self) -> None:
        for p in self.procs:
            p.stop()


def dump_topics(c: dict, prefix: str, timeout: float = 20.0) -> dict[str, list[bytes]]:
    """Every message (key and value, and a dead letter's decoded payload) of every topic
    whose name starts with ``prefix``, read from the beginning to the high watermark."""
    admin = AdminClient(c)
    names = [t for t in admin.list_topics(timeout=15).topics if t.startswith(prefix)]
    # read_uncommitted: aborted transactions are scanned too; a transactional topic ends in a
    # commit marker, never a message, so the partition EOF says a partition is read
    cons = Consumer({**c, "group.id": f"scan-{uuid.uuid4().hex}",
                     "enable.auto.commit": False, "auto.offset.reset": "earliest",
                     "isolation.level": "read_uncommitted", "enable.partition.eof": True})
    out: dict[str, list[bytes]] = {}
    try:
        for name in names:
            md = admin.list_topics(name, timeout=10).topics[name]
            want = {}
            for p in md.partitions:
                lo, hi = cons.get_watermark_offsets(TopicPartition(name, p), timeout=10)
                if hi > lo:
                    want[p] = hi
            msgs: list[bytes] = []
            if want:
                cons.assign([TopicPartition(name, p, 0) for p in want])
                pos = {p: 0 for p in want}
                deadline = time.monotonic() + timeout
                while any(pos[p] < want[p] for p in want) and time.monotonic() < deadline:
                    m = cons.poll(0.5)
                    if m is not None and m.error() is not None and \
                            m.error().code() == KafkaError._PARTITION_EOF:
                        pos[m.partition()] = max(pos[m.partition()], want[m.partition()])
                        continue
                    if m is None or m.error():
                        continue
                    pos[m.partition()] = m.offset() + 1
                    msgs.append((m.key() or b"") + b"\x00" + (m.value() or b""))
                    if "deadletter" in name:
                        try:
                            msgs.append(DeadLetter.decode(m.value()).raw_payload())
                        except Exception:
                            pass
                assert all(pos[p] >= want[p] for p in want), f"could not read all of {name}"
                cons.unassign()
            out[name] = msgs
    finally:
        cons.close()
    return out


def find_secrets(blobs: dict[str, list[bytes] | bytes], secrets: dict[str, str]) -> list[str]:
    """Where (topic or log) each secret occurs: an empty list is a pass."""
    hits = []
    for where, data in blobs.items():
        items = data if isinstance(data, list) else [data]
        for what, s in secrets.items():
            needle = s.encode()
            if any(needle in b for b in items):
                hits.append(f"{what} in {where}")
    return hits
