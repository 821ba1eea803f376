"""A real Prometheus (built from the Go module proxy by scripts/build-gotool) scrapes a running
worker; its query API returns the worker's series. The shipped alerting rules pass
`promtool check rules` and their unit tests (`promtool test rules`), and load into the server."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import orjson
import pytest
import yaml

from tests.integration.kafka_helpers import collect, produce
from tocsin.contracts import Alert, ReadingsFrame, topics
from tocsin.services.kafka import free_port
from tocsin.services.prometheus import PrometheusServer, promtool

pytestmark = pytest.mark.integration

RULES_DIR = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"


def test_promtool_checks_and_unit_tests_the_rules():
    p = promtool("check", "rules", str(RULES_DIR / "rules.yml"))
    assert p.returncode == 0, p.stdout + p.stderr
    assert "SUCCESS: 6 rules found" in p.stdout + p.stderr
    p = promtool("test", "rules", "rules.test.yml", cwd=RULES_DIR)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "SUCCESS" in p.stdout + p.stderr
    p = promtool("check", "config", str(RULES_DIR / "prometheus.yml"))
    assert p.returncode == 0, p.stdout + p.stderr


def _get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, orjson.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, orjson.loads(exc.read())


def _wait(pred, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(0.5)
    raise AssertionError(f"{what} not seen in {timeout:.0f} s (last: {last!r})")


def test_prometheus_scrapes_a_running_worker(kafka, prefix, spawn, tmp_path):
    mport = free_port()
    w = spawn("worker", TOCSIN_METRICS_PORT=str(mport))
    w.wait_for("runtime: ready", timeout=90)
    base = f"http://127.0.0.1:{mport}"
    # readiness: the app's timer has run (agents started, group joined)
    _wait(lambda: _get(f"{base}/readyz")[0] == 200, 30, "worker /readyz 200")
    code, live = _get(f"{base}/healthz")
    assert code == 200 and live["status"] == "ok" and live["heartbeat_age_s"] < 10

    # input: good frames, one over the high limit (an alert), one undecodable (a dead letter)
    t0 = time.time_ns()
    ok = ReadingsFrame("pump-1", ["bearing_temp"], np.array([t0]), np.array([60.0]),
                       np.zeros(1, np.uint8))
    hot = ReadingsFrame("pump-1", ["bearing_temp"], np.array([t0 + 10**8]), np.array([99.5]),
                        np.zeros(1, np.uint8))
    produce(kafka, prefix + topics.READINGS,
            [(b"pump-1", ok.encode()), (b"pump-1", b"\x00 not json"), (b"pump-1", hot.encode())])
    assert collect(kafka, prefix + topics.ALERTS, lambda it: len(it) >= 1, timeout=60,
                   decode=Alert.decode)

    cfg = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
           "rule_files": [str(RULES_DIR / "rules.yml")],
           "scrape_configs": [{"job_name": "tocsin-worker",
                               "static_configs": [{"targets": [f"127.0.0.1:{mport}"]}]}]}
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(cfg))
    prom = PrometheusServer(tmp_path / "prom", tmp_path / "prometheus.yml", free_port()).start()
    try:
        up = _wait(lambda: prom.query('up{job="tocsin-worker"} == 1'), 30, "up == 1")
        assert up[0]["metric"]["instance"] == f"127.0.0.1:{mport}"
        frames = _wait(lambda: prom.query('tocsin_frames_total{agent="thresholds"} >= 2'),
                       30, "tocsin_frames_total >= 2")
        assert float(frames[0]["value"][1]) >= 2
        dl = prom.query('sum(tocsin_deadletters_total{stage="decode"})')
        assert float(dl[0]["value"][1]) >= 1
        # end-to-end latency per stage, from the source timestamp
        stages = {r["metric"]["stage"] for r in
                  prom.query("tocsin_stage_latency_seconds_count > 0")}
        assert {"worker", "alert"} <= stages
        alerts = prom.query('tocsin_alert_events_total{kind="threshold",event="raised"}')
        assert float(alerts[0]["value"][1]) >= 1
        lag = _wait(lambda: prom.query('tocsin_consumer_lag_messages{topic="plant.readings"}'),
                    30, "consumer lag series")
        assert float(lag[0]["value"][1]) >= 0
        # no unbounded labels: every label value set of every tocsin_ series is small
        names = prom.api("label/__name__/values")
        tocsin_names = [n for n in names if n.startswith("tocsin_")]
        assert tocsin_names
        series = prom.api("series", **{"match[]": '{__name__=~"tocsin_.+"}'})
        allowed = {"__name__", "job", "instance", "agent", "kind", "event", "stage", "le",
                   "source_topic", "topic", "asset_type", "version", "component", "branch",
                   "decision", "to", "asset",
                   "operator"}  # the runtime's operators: a fixed set of names
        assert {k for s in series for k in s} <= allowed
        groups = prom.api("rules")["groups"]
        rules = {r["name"]: r for g in groups for r in g["rules"]}
        assert {"TocsinConsumerLagHigh", "TocsinInputStale", "TocsinDeadLetterBurst"} <= set(rules)
        assert all(r["health"] == "ok" for r in rules.values()), rules
    finally:
        prom.stop()
