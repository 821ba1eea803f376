"""Topic creation with the Kafka admin API (names in :mod:`tocsin.contracts.topics`)."""

from __future__ import annotations

import logging
import socket
import time

from confluent_kafka.admin import AdminClient, NewTopic

from tocsin.config.kafka_security import client_conf
from tocsin.errors import ServiceError

log = logging.getLogger(__name__)
MAX_AUTO_REPLICATION = 3
_brokers_seen: dict[str, int] = {}  # bootstrap -> brokers in its metadata (last look)


def ensure_topics(bootstrap: str, names: list[str], partitions: int,
                  timeout: float = 30.0, replication: int | str = "auto") -> None:
    """Create missing topics with `replication` replicas ("auto": as many as the cluster
    holds, at most 3; see :func:`replication_factor`); idempotent."""
    admin = AdminClient(client_conf(bootstrap))
    try:
        md = admin.list_topics(timeout=timeout)
    except Exception as exc:
        raise ServiceError(f"cannot reach Kafka at {bootstrap}: {exc}") from exc
    _brokers_seen[bootstrap] = len(md.brokers)
    missing = [n for n in names if n not in md.topics]
    if not missing:
        return
    rf = replication_factor(bootstrap, replication)
    futures = admin.create_topics([NewTopic(n, partitions, rf) for n in missing],
                                  operation_timeout=timeout)
    for name, fut in futures.items():
        try:
            fut.result(timeout)
        except Exception as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise ServiceError(f"cannot create topic {name}: {exc}") from exc
    wait_visible(admin, missing, timeout)


def replication_factor(bootstrap: str, wanted: int | str = "auto",
                       timeout: float = 10.0) -> int:
    """The replication factor for topics Tocsin creates (its own and the Faust changelogs):
    `wanted`, or for "auto" min(3, brokers in the cluster's metadata), so one broker gives 1
    and a cluster of three gives 3 (with the cluster's min.insync.replicas 2).

    The broker count comes from the last :func:`ensure_topics` on `bootstrap` in this
    process, else from the broker itself; when no broker answers at all (an app built for a
    unit test), "auto" is 1.
    """
    if wanted != "auto":
        rf = int(wanted)
        if rf < 1:
            raise ServiceError(f"replication factor must be at least 1, not {rf}")
        return rf
    if bootstrap not in _brokers_seen:
        if not any(_reachable(h) for h in bootstrap.split(",") if h.strip()):
            log.warning("no Kafka broker answers at %s: replication factor 1 for its topics",
                        bootstrap)
            return 1
        try:
            md = AdminClient(client_conf(bootstrap)).list_topics(timeout=timeout)
        except Exception as exc:
            raise ServiceError(f"cannot reach Kafka at {bootstrap}: {exc}") from exc
        _brokers_seen[bootstrap] = len(md.brokers)
    return max(1, min(MAX_AUTO_REPLICATION, _brokers_seen[bootstrap]))


def _reachable(hostport: str, timeout: float = 0.5) -> bool:
    host, _, port = hostport.strip().rpartition(":")
    try:
        with socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout):
            return True
    except (OSError, ValueError):
        return False


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
