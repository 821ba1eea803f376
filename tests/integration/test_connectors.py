"""Connectors against real servers on free ports: pymodbus and asyncua servers from the
simulator, and a real Kafka broker stopped for 30 s under a running connector."""

from __future__ import annotations

import asyncio
import logging
import time

import numpy as np
import pytest
import yaml

from tests.integration.kafka_helpers import async_wait_for, collect, read_to_end
from tocsin.connectors import kafka_admin
from tocsin.connectors.modbus import ModbusConfig, ModbusSource
from tocsin.connectors.modbus_codec import ORDERS
from tocsin.connectors.opcua import OpcUaConfig, OpcUaSource
from tocsin.connectors.simulator.modbus_server import PlantModbusServer
from tocsin.connectors.simulator.opcua_server import PlantOpcUaServer
from tocsin.contracts import ReadingsFrame, topics
from tocsin.services.kafka import KafkaBroker, free_port

pytestmark = pytest.mark.integration

VALUES = {"int16": -1234, "uint16": 54321, "int32": -123456789, "uint32": 3_000_000_123,
          "int64": -9_007_199_254_740_991, "uint64": 9_007_199_254_740_991,
          "float32": 123.456, "float64": -98765.4321}


def _all_types_config(port: int) -> tuple[ModbusConfig, dict]:
    tags, static, addr = [], {}, 0
    for typ, v in VALUES.items():
        words = {"int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "float32": 2}.get(typ, 4)
        for order in ORDERS:
            name = f"{typ}_{order}"
            tags.append({"name": name, "address": addr, "type": typ, "order": order})
            static[name] = v
            addr += words
    tags += [{"name": "scaled", "table": "input", "address": 0, "type": "int16", "scale": 0.1,
              "offset": -50},
             {"name": "coil", "table": "coil", "address": 7, "type": "bit"},
             {"name": "di", "table": "discrete", "address": 9, "type": "bit"},
             {"name": "flag", "address": 500, "type": "bit", "bit": 11}]
    static.update({"scaled": 21.7, "coil": 1, "di": 1, "flag": 1})
    cfg = ModbusConfig.model_validate({"devices": [{
        "name": "plc", "host": "127.0.0.1", "port": port, "asset": "a", "timeout_s": 0.5,
        "retries": 0, "groups": [{"interval_ms": 50, "tags": tags}]}]})
    return cfg, static


async def _frames(src, n: int, timeout: float = 20.0) -> list[ReadingsFrame]:
    out = []

    async def take():
        async for f in src.frames():
            out.append(f)
            if len(out) >= n:
                return

    await asyncio.wait_for(take(), timeout)
    return out


async def test_modbus_every_type_and_byte_order_decodes_right():
    port = free_port()
    cfg, static = _all_types_config(port)
    srv = await PlantModbusServer(cfg.devices[0], port=port, static=static).start()
    src = ModbusSource(cfg)
    try:
        await src.start()
        f = (await _frames(src, 2))[-1]
    finally:
        await src.close()
        await srv.stop()
    got = dict(zip(f.tags, f.values.tolist()))
    assert f.quality.tolist() == [0] * len(f)
    for name, v in static.items():
        if name.startswith("float32"):
            assert got[name] == pytest.approx(v, rel=1e-6), name
        else:
            assert got[name] == pytest.approx(v, rel=1e-12, abs=1e-9), name
    # 32 tags of 1-4 words in one table were read in one coalesced request
    assert src.stats["plc"].reads / src.stats["plc"].polls <= 5


async def test_modbus_bad_register_is_reported_and_the_rest_flow(caplog):
    port = free_port()
    cfg = ModbusConfig.model_validate({"devices": [{
        "name": "plc", "host": "127.0.0.1", "port": port, "asset": "pump-1", "groups": [{
            "interval_ms": 50, "tags": [
                {"name": "bearing_temp", "address": 9996, "type": "float32"},
                {"name": "ghost", "address": 9999, "type": "float32"},  # runs past the map
                {"name": "flow", "table": "input", "address": 0, "type": "float32"}]}]}]})
    srv = await PlantModbusServer(cfg.devices[0], port=port).start()
    src = ModbusSource(cfg)
    caplog.set_level(logging.WARNING)
    try:
        await src.start()
        frames = await _frames(src, 4)
    finally:
        await src.close()
        await srv.stop()
    last = dict(zip(frames[-1].tags, frames[-1].quality.tolist()))
    assert last == {"bearing_temp": 0, "ghost": 2, "flow": 0}
    assert src.stats["plc"].by_tag.get("ghost", 0) >= 2
    assert "bearing_temp" not in src.stats["plc"].by_tag or frames[-1].quality[0] == 0
    assert "device plc" in caplog.text and "ghost" in caplog.text


async def test_modbus_server_restart_resumes_without_restarting_the_connector():
    port = free_port()
    cfg = ModbusConfig.model_validate({"devices": [{
        "name": "plc", "host": "127.0.0.1", "port": port, "asset": "pump-1", "timeout_s": 0.3,
        "retries": 0, "groups": [{"interval_ms": 50, "tags": [
            {"name": "flow", "address": 0, "type": "float32"}]}]}]})
    srv = await PlantModbusServer(cfg.devices[0], port=port).start()
    src = ModbusSource(cfg)
    await src.start()
    try:
        await _frames(src, 3)
        await srv.stop()
        await asyncio.sleep(2)  # the scenario: the server stays away for 2 s
        srv = await PlantModbusServer(cfg.devices[0], port=port).start()
        t = time.monotonic()
        while True:  # frames during the outage are bad quality; good ones come back
            f = (await _frames(src, 1))[0]
            if f.quality[0] == 0 and time.monotonic() - t > 0.2:
                break
            assert time.monotonic() - t < 30, "readings did not resume"
    finally:
        await src.close()
        await srv.stop()
    assert src.stats["plc"].reconnects >= 2


async def test_opcua_server_restart_resumes_without_restarting_the_connector():
    port = free_port()
    srv = await PlantOpcUaServer(port=port).start()
    cfg = OpcUaConfig(endpoint=srv.endpoint, check_interval_s=0.5,
                      assets={"pump-1": {"flow": "ns=2;s=pump-1.flow"}})
    src = OpcUaSource(cfg)
    await src.start()
    got: list[ReadingsFrame] = []

    async def pump():
        async for f in src.frames():
            got.append(f)

    task = asyncio.create_task(pump())
    try:
        await async_wait_for(lambda: len(got) >= 3, 30, "the first OPC UA frames",
                             seen=lambda: f"{len(got)} frames")
        await srv.stop()
        stopped_at = time.time_ns()
        await asyncio.sleep(3)  # the scenario: the server stays away for 3 s
        srv = await PlantOpcUaServer(port=port).start()
        await async_wait_for(lambda: any(f.ts[0] > stopped_at + 3 * 10**9 for f in got), 40,
                             "readings to resume (a frame stamped 3 s after the stop)",
                             seen=lambda: f"{len(got)} frames, last at "
                             f"{(got[-1].ts[0] - stopped_at) / 1e9 if got else None} s")
    finally:
        task.cancel()
        await src.close()
        await srv.stop()
    assert src.reconnects >= 1


@pytest.fixture
def own_broker(tmp_path):
    b = KafkaBroker(tmp_path / "kafka", port=free_port(), controller_port=free_port(),
                    heap="512m").start(timeout=120)
    yield b
    b.stop()


def test_broker_down_for_30s_every_reading_arrives_in_order(own_broker, spawn, tmp_path):
    broker = own_broker.bootstrap
    kafka_admin.ensure_topics(broker, [t for t in topics.ALL], 2)
    port = free_port()
    cfg = yaml.safe_load(open(__import__("tocsin.connectors.modbus", fromlist=["x"]).__file__
                              .replace("connectors/modbus.py", "data/modbus.yaml")))
    cfg["devices"][0]["port"] = port
    path = tmp_path / "modbus.yaml"
    path.write_text(yaml.safe_dump(cfg))
    sim = spawn("sim", "modbus", "--port", str(port), "--config", str(path), name="sim")
    sim.wait_for("simulator: serving", timeout=120)
    conn = spawn("connect", "modbus", "--config", str(path), "--broker", broker, "--prefix", "",
                 "--spool-dir", str(tmp_path / "spool"), name="connector")
    collect(broker, topics.READINGS, lambda it: len(it) >= 10, timeout=60)
    own_broker.stop()
    down_from = time.time_ns()
    time.sleep(30)  # the scenario: the broker stays down for 30 s under the connector
    down_to = time.time_ns()
    own_broker.start(timeout=120)
    # the spool drains in order: once a frame read after the outage is in Kafka, so is it
    collect(broker, topics.READINGS, lambda it: any(f.ts[0] > down_to for _, f in it),
            timeout=90, decode=ReadingsFrame.decode)
    conn.stop()  # SIGTERM: it flushes what it can; the rest would stay spooled
    frames = [f for _, f in read_to_end(broker, topics.READINGS, decode=ReadingsFrame.decode)]
    seqs = [f.seq for f in frames]
    assert seqs == list(range(1, len(seqs) + 1)), "frames lost, duplicated or out of order"
    during = [f for f in frames if down_from < f.ts[0] < down_to]
    assert len(during) >= 250, f"only {len(during)} frames from the 30 s outage"  # 10/s
    assert "Kafka is not acknowledging" in conn.text() or "spool" in conn.text()


async def _opcua_frames(cfg: OpcUaConfig, n: int = 3) -> tuple[OpcUaSource, list[ReadingsFrame]]:
    src = OpcUaSource(cfg)
    await src.start()
    try:
        return src, await _frames(src, n)
    finally:
        await src.close()


@pytest.mark.parametrize("mode", ["Sign", "SignAndEncrypt"])
async def test_opcua_security_modes_with_certificates_and_user(tmp_path, mode):
    from tocsin.connectors.simulator.opcua_server import make_certificate
    from tocsin.errors import ConnectorError

    port = free_port()
    srv = await PlantOpcUaServer(port=port, cert_dir=tmp_path / "server",
                                 users={"operator": "s3cret"}).start()
    key, cert = await make_certificate(tmp_path / "client", "client")
    base = {"endpoint": srv.endpoint, "assets": {"pump-1": {"flow": "ns=2;s=pump-1.flow"}},
            "security": {"policy": "Basic256Sha256", "mode": mode, "certificate": cert,
                         "private_key": key}}
    try:
        _, frames = await _opcua_frames(OpcUaConfig.model_validate(
            {**base, "username": "operator", "password": "s3cret"}))
        assert frames and frames[0].tags[0] == "flow" and frames[0].quality[0] == 0
        with pytest.raises(ConnectorError, match="cannot connect"):
            await _opcua_frames(OpcUaConfig.model_validate(
                {**base, "username": "operator", "password": "wrong"}))
        with pytest.raises(ConnectorError, match="cannot connect"):  # no security: refused
            await _opcua_frames(OpcUaConfig.model_validate(
                {"endpoint": srv.endpoint, "assets": base["assets"], "username": "operator",
                 "password": "s3cret"}))
    finally:
        await srv.stop()


async def test_opcua_polling_mode_and_per_tag_deadband():
    port = free_port()
    srv = await PlantOpcUaServer(port=port).start()
    assets = {"pump-1": {"flow": "ns=2;s=pump-1.flow", "ghost": "ns=2;s=pump-1.nope"}}
    try:
        src, frames = await _opcua_frames(OpcUaConfig(
            endpoint=srv.endpoint, mode="poll", poll_interval_ms=100, assets=assets), 5)
        assert all(f.tags == ["flow"] for f in frames)  # the bad node is skipped
        assert "pump-1.ghost" in src.bad_nodes
        gaps = np.diff([f.ts[0] for f in frames]) / 1e6
        assert np.all((gaps > 30) & (gaps < 400))  # source timestamps of successive polls
        # a deadband far wider than the noise: only the first value is reported
        src = OpcUaSource(OpcUaConfig(endpoint=srv.endpoint, assets={"pump-1": {
            "flow": {"node_id": "ns=2;s=pump-1.flow", "deadband": 1000.0, "queue_size": 5},
            "bearing_temp": {"node_id": "ns=2;s=pump-1.bearing_temp",
                             "sampling_interval_ms": 100}}}))
        await src.start()
        try:
            frames = await _frames(src, 15)
        finally:
            await src.close()
        counts = {t: sum(f.tags.count(t) for f in frames) for t in ("flow", "bearing_temp")}
        assert counts["flow"] == 1 and counts["bearing_temp"] >= 14
    finally:
        await srv.stop()
