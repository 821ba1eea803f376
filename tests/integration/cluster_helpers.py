"""A 3-node KRaft cluster for the integration tests that kill brokers (opt-in).

Nothing here runs unless a test asks for it: tests/integration/conftest.py imports the
fixtures, so any integration test may take ``kafka_cluster`` (a
:class:`tocsin.services.kafka_cluster.KafkaCluster`, started on first use, once per session,
on free ports under pytest's tmp folder, stopped at the end of the session). Each test that
takes ``kafka_cluster`` finds all three nodes up: nodes an earlier test killed are restarted
first. The helpers below wait for what a chaos step needs (a partition's leader, its ISR).
"""

from __future__ import annotations

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from tests.waiting import wait_for
from tocsin.services.kafka_cluster import KafkaCluster

CLUSTER_SIZE = 3


@pytest.fixture(scope="session")
def kafka_cluster_session(tmp_path_factory):
    cluster = KafkaCluster(tmp_path_factory.mktemp("kafka-cluster"), size=CLUSTER_SIZE,
                           heap="384m")
    cluster.start(timeout=180)
    yield cluster
    cluster.stop()


@pytest.fixture
def kafka_cluster(kafka_cluster_session) -> KafkaCluster:
    """The session's cluster with every node up (dead ones restarted before the test)."""
    kafka_cluster_session.heal(timeout=120)
    return kafka_cluster_session


def admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap})


def create_topic(bootstrap: str, name: str, partitions: int = 3, replication: int = 3,
                 config: dict[str, str] | None = None, timeout: float = 30.0,
                 assignment: list[list[int]] | None = None) -> None:
    """Create `name` (`assignment`: the node ids of each partition's replicas, leader
    first) and wait until every partition has a leader and a full ISR."""
    a = admin(bootstrap)
    if assignment:  # confluent-kafka wants the partition count, and no replication factor
        new = NewTopic(name, len(assignment), -1, replica_assignment=assignment,
                       config=config or {})
        replication = len(assignment[0])
    else:
        new = NewTopic(name, partitions, replication, config=config or {})
    for fut in a.create_topics([new], operation_timeout=timeout).values():
        fut.result(timeout)
    wait_isr(bootstrap, name, replication, timeout)


def partitions(bootstrap: str, topic: str) -> dict[int, tuple[int, list[int]]]:
    """partition -> (leader node id, ISR node ids), from the cluster's metadata."""
    md = admin(bootstrap).list_topics(topic, timeout=10)
    t = md.topics.get(topic)
    if t is None or t.error is not None:
        return {}
    return {p.id: (p.leader, list(p.isrs)) for p in t.partitions.values()}


def leader_of(bootstrap: str, topic: str, partition: int = 0) -> int:
    return partitions(bootstrap, topic)[partition][0]


def wait_isr(bootstrap: str, topic: str, size: int, timeout: float = 60.0) -> None:
    """Until every partition of `topic` has a leader and `size` replicas in sync (after a
    restarted broker caught up)."""
    wait_for(lambda: _isr_is(bootstrap, topic, lambda n: n >= size), timeout,
             f"{topic}: a leader and {size} replicas in sync on every partition",
             seen=lambda: partitions(bootstrap, topic), interval=0.2)


def wait_isr_shrunk(bootstrap: str, topic: str, size: int, timeout: float = 30.0) -> None:
    """Until no partition of `topic` has more than `size` replicas in sync (the controller
    fenced a killed node: broker.session.timeout.ms)."""
    wait_for(lambda: _isr_is(bootstrap, topic, lambda n: n <= size), timeout,
             f"{topic}: at most {size} replicas in sync", seen=lambda: partitions(bootstrap, topic),
             interval=0.2)


def _isr_is(bootstrap: str, topic: str, ok) -> bool:
    try:
        parts = partitions(bootstrap, topic)
    except Exception:  # noqa: BLE001 - metadata unavailable for a moment: ask again
        return False
    return bool(parts) and all(ld >= 0 and ok(len(isr)) for ld, isr in parts.values())


def topic_config(bootstrap: str, topic: str) -> dict[str, str]:
    """The topic's effective configuration (broker defaults included)."""
    return _configs(bootstrap, ConfigResource(ConfigResource.Type.TOPIC, topic))


def broker_config(bootstrap: str, node_id: int) -> dict[str, str]:
    """One broker's configuration as it runs (describe configs)."""
    return _configs(bootstrap, ConfigResource(ConfigResource.Type.BROKER, str(node_id)))


def _configs(bootstrap: str, res: ConfigResource) -> dict[str, str]:
    a = admin(bootstrap)  # held until the answer is in: a collected client cancels it
    return {k: v.value for k, v in a.describe_configs([res])[res].result(30).items()}
