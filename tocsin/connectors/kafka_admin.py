"""Topic creation with the Kafka admin API (names in :mod:`tocsin.contracts.topics`)."""

from __future__ import annotations

import time

from confluent_kafka.admin import AdminClient, NewTopic

from tocsin.config.kafka_security import client_conf
from tocsin.errors import ServiceError


def ensure_topics(bootstrap: str, names: list[str], partitions: int,
                  timeout: float = 30.0) -> None:
    """Create missing topics (replication factor 1 on the local broker); idempotent."""
    admin = AdminClient(client_conf(bootstrap))
    try:
        existing = set(admin.list_topics(timeout=timeout).topics)
    except Exception as exc:
        raise ServiceError(f"cannot reach Kafka at {bootstrap}: {exc}") from exc
    missing = [n for n in names if n not in existing]
    if not missing:
        return
    futures = admin.create_topics([NewTopic(n, partitions, 1) for n in missing],
                                  operation_timeout=timeout)
    for name, fut in futures.items():
        try:
            fut.result(timeout)
        except Exception as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise ServiceError(f"cannot create topic {name}: {exc}") from exc
    wait_visible(admin, missing, timeout)


def wait_visible(admin: AdminClient, names: list[str], timeout: float) -> None:
    """Until the broker's metadata shows every topic with a leader for each partition.

    CreateTopics can return before the metadata cache has the topic; a Faust worker that
    subscribes in that gap is assigned nothing and, with aiokafka's 5-minute metadata
    refresh, stays idle. Waiting here closes the gap.
    """
    deadline = time.monotonic() + timeout
    while True:
        md = admin.list_topics(timeout=timeout)
        ready = [n for n in names if n in md.topics and md.topics[n].error is None
                 and md.topics[n].partitions
                 and all(p.leader >= 0 for p in md.topics[n].partitions.values())]
        if len(ready) == len(names):
            return
        if time.monotonic() > deadline:
            raise ServiceError(f"topics not visible in metadata after {timeout:.0f}s: "
                               f"{sorted(set(names) - set(ready))}")
        time.sleep(0.1)


def ensure_changelog(bootstrap: str, name: str, like: str, replication: int = 0,
                     timeout: float = 30.0) -> None:
    """Create the compacted changelog ``name`` with the partition count of topic ``like``
    (partition p holds the state of input partition p); replication 0 = min(3, brokers),
    with min.insync.replicas 2 when there are 3 replicas. Idempotent."""
    admin = AdminClient(client_conf(bootstrap))
    try:
        md = admin.list_topics(timeout=timeout)
    except Exception as exc:
        raise ServiceError(f"cannot reach Kafka at {bootstrap}: {exc}") from exc
    if name in md.topics and md.topics[name].error is None:
        return
    src = md.topics.get(like)
    if src is None or src.error is not None or not src.partitions:
        raise ServiceError(f"changelog {name}: input topic {like} does not exist")
    rf = replication or min(3, len(md.brokers))
    config = {"cleanup.policy": "compact", "min.compaction.lag.ms": "0"}
    if rf >= 3:
        config["min.insync.replicas"] = "2"
    fut = admin.create_topics([NewTopic(name, len(src.partitions), rf, config=config)],
                              operation_timeout=timeout)[name]
    try:
        fut.result(timeout)
    except Exception as exc:
        if "TOPIC_ALREADY_EXISTS" not in str(exc):
            raise ServiceError(f"cannot create changelog {name}: {exc}") from exc
    wait_visible(admin, [name], timeout)
