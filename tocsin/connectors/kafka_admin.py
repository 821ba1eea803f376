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
