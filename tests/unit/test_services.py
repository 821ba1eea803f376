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
