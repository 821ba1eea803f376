"""History in a real influxd started by the project's tooling: write/query round trips,
an influxd outage under a running sink (no point lost, none doubled), rejected points to
the dead-letter topic, rollups."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest

from tests.integration.kafka_helpers import (
    collect,
    produce,
    read_to_end,
    wait_committed,
    wait_for,
)
from tocsin.connectors.history import History
from tocsin.connectors.influx_admin import run_rollup_now
from tocsin.contracts import (
    Alert,
    AlertEvent,
    DeadLetter,
    ReadingsFrame,
    Severity,
    topics,
)
from tocsin.services.influx import InfluxServer
from tocsin.services.kafka import free_port

pytestmark = pytest.mark.integration


def recent() -> int:
    """A minute ago: inside retention and inside the rollup task's two-minute window."""
    return (int(time.time()) - 60) * 10**9


@pytest.fixture
def influx(tmp_path):
    srv = InfluxServer(tmp_path / "influx", port=free_port(), retention_hours=24).start()
    yield srv
    srv.stop()


def frames(asset: str, n: int, start: int | None = None, per: int = 10) -> list[ReadingsFrame]:
    start = recent() if start is None else start
    out = []
    for k in range(n):
        ts = np.array([start + (k * per + i) * 10**8 for i in range(per)] * 2)
        tags = ["temp"] * per + ["flow"] * per
        vals = np.concatenate([60 + np.arange(per) * 0.1 + k, 100 + np.arange(per) + k])
        q = np.zeros(2 * per, np.uint8)
        out.append(ReadingsFrame(asset, tags, ts, vals, q, seq=k))
    return out


def run_sink(spawn, influx, *extra: str, name: str = "sink"):
    return spawn("sink", "influx", "--influx-url", influx.url, "--influx-token", influx.token,
                 "--flush", "0.2", *extra, name=name)


def wait_count(h: History, asset: str, expected: int, timeout: float = 60.0) -> int:
    """Until InfluxDB holds at least `expected` points of `asset`; -> how many it holds."""
    seen: list[int] = [-1]

    def enough() -> bool:
        seen[0] = len(h.readings(asset, start="-2h"))
        return seen[0] >= expected

    wait_for(enough, timeout, f"{expected} points of {asset} in InfluxDB",
             seen=lambda: f"{seen[0]} points", interval=0.5)
    return seen[0]


def sink_group(prefix: str) -> str:
    return f"tocsin-history-{prefix}"  # the sink's consumer group (connectors/influx_sink)


def test_round_trip_readings_and_alerts(kafka, prefix, spawn, influx):
    T0 = recent()
    fs = frames("pump-7", 5, start=T0)
    alert = Alert("pump-7:abc", AlertEvent.RAISED, "pump-7", "threshold", "high", "temp",
                  Severity.CRITICAL, 95.5, 90.0, T0 + 3 * 10**8, T0 + 3 * 10**8, T0, "hot")
    produce(kafka, prefix + topics.READINGS, [(b"pump-7", f.encode()) for f in fs])
    produce(kafka, prefix + topics.ALERTS, [(b"pump-7:abc", alert.encode())])
    run_sink(spawn, influx)
    h = History(influx.url, influx.token, influx.org, influx.bucket)
    assert wait_count(h, "pump-7", 100) == 100
    rows = h.readings("pump-7", ["temp"], start="-2h")
    assert len(rows) == 50 and rows[0]["value"] == pytest.approx(60.0)
    agg = h.readings("pump-7", ["flow"], start="-2h", every="1s", fn="max")
    assert max(r["value"] for r in agg) == pytest.approx(113.0)
    al = h.alerts("pump-7", start="-2h")
    assert [(a["alert_id"], a["event"], a["severity"], a["value"]) for a in al] == [
        ("pump-7:abc", "raised", "critical", 95.5)]
    w = h.around_alert("pump-7:abc", before="1s", after="1s", start="-2h")
    assert w["asset"] == "pump-7" and 0 < len(w["readings"]) < 100
    # the CLI answers from the same code, as CSV
    r = subprocess.run([sys.executable, "-m", "tocsin.cli", "history", "readings", "--asset",
                        "pump-7", "--tag", "flow", "--start", "-2h", "--format", "csv",
                        "--influx-url", influx.url, "--influx-token", influx.token],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == "time,asset,tag,value" and len(r.stdout.splitlines()) == 51
    # rollups: the task writes 1-minute means into the long-lived bucket
    run_rollup_now(influx.url, influx.token, influx.org)
    assert h.readings("pump-7", ["temp"], start="-2h", rollup=True)


def test_influxd_outage_loses_nothing_and_doubles_nothing(kafka, prefix, spawn, influx):
    h = History(influx.url, influx.token, influx.org, influx.bucket)
    sink = run_sink(spawn, influx)
    T0 = recent()
    first = frames("press-9", 20, start=T0)
    produce(kafka, prefix + topics.READINGS, [(b"press-9", f.encode()) for f in first])
    assert wait_count(h, "press-9", 400) == 400
    influx.stop()
    more = frames("press-9", 30, start=T0 + 20 * 10 * 10**8)  # produced while influxd is down
    produce(kafka, prefix + topics.READINGS, [(b"press-9", f.encode()) for f in more])
    sink.wait_for("InfluxDB unavailable", timeout=60)
    assert "InfluxDB unavailable" in sink.text()
    influx.start()
    assert wait_count(h, "press-9", 1000, timeout=90) == 1000
    # redelivery of everything (a sink restarted from scratch) must not double any point
    sink.stop()
    sink2 = run_sink(spawn, influx, "--prefix", prefix, name="sink2")
    sink2.wait_for("history sink:", timeout=60)
    wait_committed(kafka, sink_group(prefix), prefix + topics.READINGS)  # it read them all
    assert len(h.readings("press-9", start="-2h")) == 1000


def test_rejected_point_goes_to_deadletter_with_influx_reason(kafka, prefix, spawn, influx):
    # three days ago: a plausible event time (the event-time guard lets it through) but
    # outside the bucket's 24 h retention, so InfluxDB itself refuses it
    old = frames("motor-9", 1, start=(int(time.time()) - 3 * 86400) * 10**9)
    good = frames("motor-9", 2)
    produce(kafka, prefix + topics.READINGS,
            [(b"motor-9", good[0].encode()), (b"motor-9", old[0].encode()),
             (b"motor-9", good[1].encode()), (b"motor-9", b"not a frame")])
    run_sink(spawn, influx)
    dls = collect(kafka, prefix + topics.DEADLETTER, lambda it: len(it) >= 2, timeout=60,
                  decode=DeadLetter.decode)
    # every input handled: then the dead letters are all there is, not the first two seen
    wait_committed(kafka, sink_group(prefix), prefix + topics.READINGS)
    dls = read_to_end(kafka, prefix + topics.DEADLETTER, decode=DeadLetter.decode)
    reasons = sorted(d.error for _, d in dls)
    assert len(reasons) == 2, reasons
    assert "not valid JSON" in reasons[1]
    assert reasons[0].startswith("InfluxDB rejected 20 of 20 points") and "retention" in reasons[0]
    assert [d.raw_payload() for _, d in dls if "rejected" in d.error] == [old[0].encode()]
    h = History(influx.url, influx.token, influx.org, influx.bucket)
    assert wait_count(h, "motor-9", 40) == 40
