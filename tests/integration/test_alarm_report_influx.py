"""`tocsin alarms report` over a real influxd's alert history (started by the project's
tooling): the same figures as from the JSONL file of the same events."""

from __future__ import annotations

import json
import time

import pytest
from influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import SYNCHRONOUS

from tocsin.connectors.influx_lines import alert_lines
from tocsin.contracts.alerts import Alert, AlertEvent, Severity
from tocsin.services.influx import InfluxServer
from tocsin.services.kafka import free_port

pytestmark = pytest.mark.integration
NS = 10**9


@pytest.fixture
def influx(tmp_path):
    srv = InfluxServer(tmp_path / "influx", port=free_port(), retention_hours=24).start()
    yield srv
    srv.stop()


def write(srv: InfluxServer, lines: list[str]) -> None:
    with InfluxDBClient(url=srv.url, token=srv.token, org=srv.org) as c:
        c.write_api(write_options=SYNCHRONOUS).write(srv.bucket, srv.org, lines,
                                                      write_precision="ns")


def history(start: int) -> list[Alert]:
    """12 raises of one point 45 s apart in the first 10 minutes (a flood), 3 of another
    within 20 s in the second (chattering), each cleared a second later; one info raise."""
    out = []

    def ep(aid, tag, ts, sev):
        out.append(Alert(aid, AlertEvent.RAISED, "pump-1", "threshold", "high", tag, sev,
                         1.0, 0.5, ts, ts, ts, f"{tag} high"))
        out.append(Alert(aid, AlertEvent.CLEARED, "pump-1", "threshold", "high", tag, sev,
                         0.1, 0.5, ts + NS, ts, ts, f"{tag} ok"))
    for k in range(12):
        ep(f"pump-1:f{k}", "flow", start + k * 45 * NS, Severity.WARNING)
    for k in range(3):
        ep(f"pump-1:c{k}", "bearing_temp", start + 600 * NS + k * 10 * NS, Severity.CRITICAL)
    ep("pump-1:i0", "vibration_rms", start + 1500 * NS, Severity.INFO)
    return out


def report(*args: str) -> dict:
    from click.testing import CliRunner

    from tocsin.cli import main

    r = CliRunner().invoke(main, ["alarms", "report", "--json", *args])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def test_report_from_influx_matches_the_jsonl_report(influx, tmp_path):
    start = (int(time.time()) // 600 - 6) * 600 * NS  # an hour ago, on a 10-minute mark
    alerts = history(start)
    write(influx, [ln for a in alerts for ln in alert_lines(a)])
    (tmp_path / "a.jsonl").write_bytes(b"\n".join(a.encode() for a in alerts))
    frm = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start / NS))
    to = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start / NS + 1800))
    from_influx = report("--from", frm, "--to", to, "--influx-url", influx.url,
                         "--influx-token", influx.token, "--plots", str(tmp_path / "plots"))
    from_file = report("--from", frm, "--to", to, "--jsonl", str(tmp_path / "a.jsonl"))
    assert from_influx["annunciated"] == 16 and from_influx["per_period"] == [12, 3, 1]
    assert from_influx["flood_periods"] == 1
    assert [c["point"] for c in from_influx["chattering"]] == ["pump-1 bearing_temp high"]
    assert from_influx["priority_counts"] == {"low": 1, "medium": 12, "high": 3}
    for k in ("annunciated", "per_period", "top", "chattering", "stale", "priority_counts"):
        assert from_influx[k] == from_file[k], k
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == [
        "bad_actors.png", "lists.png", "rate.png"]
