"""End to end on real parts: simulated plant over OPC UA -> connector -> Kafka -> Faust
worker -> plant.alerts, and bad input -> tocsin.deadletter while the stream goes on."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import numpy as np
import orjson
import pytest
import yaml

from tests.integration.kafka_helpers import collect, produce, read_to_end, wait_committed
from tocsin.connectors.simulator.opcua_server import call_fault, endpoint_url
from tocsin.contracts import Alert, DeadLetter, ReadingsFrame, topics
from tocsin.services.kafka import free_port

pytestmark = pytest.mark.integration


def _opcua_config(tmp_path, port: int, extra_nodes: dict | None = None) -> str:
    tags = ["vibration_rms", "bearing_temp", "motor_current", "discharge_pressure", "flow"]
    nodes = {t: f"ns=2;s=pump-1.{t}" for t in tags}
    nodes.update(extra_nodes or {})
    cfg = {"endpoint": endpoint_url(port), "publishing_interval_ms": 100,
           "assets": {"pump-1": nodes}}
    path = tmp_path / "opcua.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def test_over_temperature_fault_raises_alert(kafka, prefix, spawn, worker, tmp_path):
    port = free_port()
    sim = spawn("sim", "opcua", "--port", str(port), name="sim")
    sim.wait_for("simulator: serving", timeout=120)
    conn = spawn("connect", "opcua", "--config",
                 _opcua_config(tmp_path, port, {"ghost": "ns=2;s=pump-1.no_such_tag"}),
                 name="connector")
    # readings flow first, with the bad node reported and skipped
    frames = collect(kafka, prefix + topics.READINGS, lambda it: len(it) >= 20, timeout=60,
                     decode=ReadingsFrame.decode)
    assert len(frames) >= 20
    assert {k for k, _ in frames} == {b"pump-1"}
    assert {"bearing_temp", "flow"} <= set().union(*(f.tags for _, f in frames))
    assert "ghost" in conn.text() and "BadNodeIdUnknown" in conn.text()
    # every reading so far processed (and its alerts flushed): then the alerts topic is read
    wait_committed(kafka, f"tocsin-{prefix}thresholds", prefix + topics.READINGS)
    before = read_to_end(kafka, prefix + topics.ALERTS, decode=Alert.decode)
    assert not before, f"alerts before any fault: {[a.message for _, a in before]}"

    injected_at = time.time_ns()
    assert asyncio.run(call_fault(endpoint_url(port), "pump-1", "over_temperature"))

    def has_high(items):
        return any(a.rule == "high" and a.tag == "bearing_temp" and a.event.value == "raised"
                   for _, a in items)

    alerts = collect(kafka, prefix + topics.ALERTS, has_high, timeout=60, decode=Alert.decode)
    high = [a for _, a in alerts if a.rule == "high" and a.event.value == "raised"]
    assert high, f"no high alert; got {[(a.event, a.rule, a.tag) for _, a in alerts]}"
    a = high[0]
    assert a.asset == "pump-1" and a.tag == "bearing_temp" and a.severity.value == "critical"
    assert a.value > a.limit == 90.0
    assert a.source_ts > injected_at - 1_000_000_000
    assert a.emitted_ts >= a.source_ts


def test_garbage_goes_to_deadletter_and_stream_goes_on(kafka, prefix, worker):
    t0 = time.time_ns()
    good_ok = ReadingsFrame("pump-1", ["bearing_temp"], np.array([t0]), np.array([60.0]),
                            np.zeros(1, np.uint8))
    hot = ReadingsFrame("pump-1", ["bearing_temp", "flow"], np.array([t0 + 10**8] * 2),
                        np.array([99.5, 120.0]), np.zeros(2, np.uint8))
    bad_schema = orjson.dumps({"schema": "tocsin.readings/1", "asset": "pump-1",
                               "tag": ["flow"], "ts": [t0], "value": ["lots"]})
    items = [(b"pump-1", good_ok.encode()), (b"pump-1", b"\x00\xffnot json at all"),
             (b"pump-1", bad_schema), (b"pump-1", hot.encode())]
    produce(kafka, prefix + topics.READINGS, items)

    dls = collect(kafka, prefix + topics.DEADLETTER, lambda it: len(it) >= 2, timeout=60,
                  decode=DeadLetter.decode)
    assert len(dls) == 2
    by_payload = {d.raw_payload(): d for _, d in dls}
    assert "not valid JSON" in by_payload[b"\x00\xffnot json at all"].error
    err = by_payload[bad_schema].error
    assert "value[0]" in err and "flow" in err  # names the field and the tag
    for key, d in dls:
        assert key == (prefix + topics.READINGS).encode()
        assert d.source_topic == prefix + topics.READINGS and d.stage == "decode"

    # 60 -> 99.5 in 0.1 s crosses the high limit and the rate limit (395/s > 5/s); the two
    # alerts have different ids, so they may sit on different partitions: compare as a set
    alerts = collect(kafka, prefix + topics.ALERTS, lambda it: len(it) >= 2, timeout=60,
                     decode=Alert.decode)
    assert {(a.event.value, a.rule, a.tag, a.value) for _, a in alerts} == {
        ("raised", "high", "bearing_temp", 99.5), ("raised", "rate", "bearing_temp", 395.0)}
    assert all(a.source_ts == t0 + 10**8 for _, a in alerts)


def test_demo_command_shows_alerts_and_rising_scores(kafka, prefix, tiny_models):
    """The README's main command, pointed at the test broker and at trained models, ends with
    raised alerts, and the anomaly score of the faulty pump rose after the injection."""
    import os
    import re

    root, _, _ = tiny_models
    proc = subprocess.run(
        [sys.executable, "-m", "tocsin.cli", "demo", "--broker", kafka, "--prefix", prefix,
         "--opcua-port", str(free_port()), "--duration", "70", "--fault-after", "35",
         "--no-history", "--no-train"],
        capture_output=True, text=True, timeout=180,
        env=dict(os.environ, TOCSIN_MODEL_DIR=str(root)))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "injected fault 'over_temperature'" in out
    assert "RAISED" in out and "bearing_temp" in out
    assert "scores" in out and "pump-1" in out
    m = re.search(r"anomaly score of pump-1 .*: ([\d.]+)x before the fault, ([\d.]+)x after", out)
    assert m, out[-3000:]
    assert float(m.group(2)) > 1.0 and float(m.group(2)) > 2 * float(m.group(1))
