"""The OPC UA connector's warning: loud for a remote server without SignAndEncrypt, silent
for a local simulator or a secured connection."""

from __future__ import annotations

import logging

import pytest

from tocsin.connectors.opcua_security import insecure_warning, is_local, warn_if_insecure


@pytest.mark.parametrize("url, local", [
    ("opc.tcp://127.0.0.1:4840/tocsin/", True), ("opc.tcp://localhost:4840", True),
    ("opc.tcp://[::1]:4840/", True), ("opc.tcp://127.8.0.2:4840", True),
    ("opc.tcp://10.0.0.7:4840/", False), ("opc.tcp://plc-3.plant.example:4840", False),
])
def test_local_endpoints(url, local):
    assert is_local(url) is local


def test_warning_for_remote_servers_only():
    assert insecure_warning("opc.tcp://127.0.0.1:4840", None, True) is None
    assert insecure_warning("opc.tcp://10.0.0.7:4840", "SignAndEncrypt", True) is None
    msg = insecure_warning("opc.tcp://10.0.0.7:4840", None, True)
    assert "without security" in msg and "IN CLEAR" in msg and "SignAndEncrypt" in msg
    assert "signing only" in insecure_warning("opc.tcp://10.0.0.7:4840", "Sign", False)


def test_warning_is_logged(caplog):
    with caplog.at_level(logging.WARNING, logger="tocsin.connectors.opcua"):
        assert warn_if_insecure("plc", "opc.tcp://192.168.1.20:4840", None, False)
        assert not warn_if_insecure("sim", "opc.tcp://127.0.0.1:4840", None, False)
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert "INSECURE" in caplog.records[0].getMessage()
