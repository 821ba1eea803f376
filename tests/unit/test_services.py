"""Service tooling that needs no running service: tool discovery and broker properties."""

from __future__ import annotations

import pytest

from tocsin.errors import ServiceError
from tocsin.services import toolchain
from tocsin.services.kafka import KafkaBroker


def test_missing_tool_says_exactly_what_to_install(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ServiceError) as exc:
        toolchain.require("java", install=False)
    assert "apt-get install -y openjdk-17-jre-headless" in str(exc.value)
    with pytest.raises(ServiceError, match="apt-get install -y maven"):
        toolchain.require("mvn", install=False)


def test_broker_properties_are_single_node_kraft_on_loopback(tmp_path):
    props = dict(line.split("=", 1) for line in
                 KafkaBroker(tmp_path, port=19092, controller_port=19093)._properties()
                 .splitlines())
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["process.roles"] == "broker,controller"
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["transaction.state.log.replication.factor"] == "1"
    assert props["group.initial.rebalance.delay.ms"] == "0"


def test_failover_settings_on_a_single_broker(tmp_path):
    props = dict(line.split("=", 1) for line in
                 KafkaBroker(tmp_path, port=19092, controller_port=19093)._properties()
                 .splitlines())
    assert props["group.min.session.timeout.ms"] == "1000"  # workers may ask for 3 s
    assert props["transaction.abort.timed.out.transaction.cleanup.interval.ms"] == "1000"
    assert props["min.insync.replicas"] == "1"
    old = dict(line.split("=", 1) for line in
               KafkaBroker(tmp_path, failover=False)._properties().splitlines())
    assert "group.min.session.timeout.ms" not in old  # Kafka's default (6 s) for the peer


def test_cluster_nodes_share_one_quorum_and_replicate_three_ways(tmp_path):
    from tocsin.services.kafka_cluster import KafkaCluster

    c = KafkaCluster(tmp_path, size=3, ports=[19092, 19094, 19096],
                     controller_ports=[19093, 19095, 19097])
    assert c.bootstrap == "127.0.0.1:19092,127.0.0.1:19094,127.0.0.1:19096"
    props = [dict(line.split("=", 1) for line in n._properties().splitlines())
             for n in c.nodes]
    voters = "1@127.0.0.1:19093,2@127.0.0.1:19095,3@127.0.0.1:19097"
    assert [p["node.id"] for p in props] == ["1", "2", "3"]
    assert {p["controller.quorum.voters"] for p in props} == {voters}
    for p in props:
        assert (p["default.replication.factor"], p["min.insync.replicas"]) == ("3", "2")
        assert (p["transaction.state.log.replication.factor"],
                p["transaction.state.log.min.isr"]) == ("3", "2")
        assert p["broker.session.timeout.ms"] == "3000"
    assert len({n.cluster_id for n in c.nodes}) == 1
    again = KafkaCluster.from_state(c.to_state())
    assert again.bootstrap == c.bootstrap and again.cluster_id == c.cluster_id
    with pytest.raises(ServiceError, match="nodes are 1..3"):
        c.node(4)
    with pytest.raises(ServiceError, match="1 to 7 nodes"):
        KafkaCluster(tmp_path, size=0)


def test_replication_follows_the_cluster_size():
    from tocsin.connectors.kafka_admin import replication_factor
    from tocsin.services.kafka import replication_for

    assert [replication_for(n) for n in (1, 2, 3, 5)] == [(1, 1), (2, 1), (3, 2), (3, 2)]
    assert replication_factor("127.0.0.1:1", 2) == 2  # explicit: no broker asked
    assert replication_factor("127.0.0.1:1") == 1  # auto, and nobody answers
    with pytest.raises(ServiceError):
        replication_factor("127.0.0.1:1", 0)


def test_replication_setting_is_auto_or_a_small_number():
    from tocsin.config.worker import load_settings
    from tocsin.errors import ConfigError

    assert load_settings().replication == "auto"
    assert load_settings(replication="3").replication == 3
    with pytest.raises(ConfigError, match="TOCSIN_REPLICATION"):
        load_settings(replication="three")
    with pytest.raises(ConfigError, match="choose 1 to 7"):
        load_settings(replication=9)
