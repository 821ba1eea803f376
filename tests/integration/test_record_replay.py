"""Record and replay against the real broker: a recorded live run replays with identical
alerts, 1x and full speed give identical alerts, golden cases per fault, shadow runs, and
damaged recordings are refused with the position."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.integration.kafka_helpers import collect
from tocsin.connectors.simulator.opcua_server import call_fault, endpoint_url
from tocsin.connectors.simulator.scenario import single_fault, write_scenario
from tocsin.contracts import Alert, ReadingsFrame, topics
from tocsin.services.kafka import free_port
from tocsin.streams.isolated import _wait_committed, run_isolated

pytestmark = pytest.mark.integration
GOLDEN = Path(__file__).resolve().parents[1] / "golden"
CASES = [tuple(line.split()) for line in (GOLDEN / "cases.txt").read_text().splitlines()]
# the alarm each golden case must hold (a sanity check on the expected files). None: the
# fault stays inside every limit (cavitation oscillates flow, imbalance and valve stiction
# show in spectra and deviations): thresholds see nothing, spectral features will
SIGNATURE = {("pump-1", "over_temperature"): ("bearing_temp", "high"),
             ("pump-1", "bearing_wear"): ("vibration_rms", "high"),
             ("pump-1", "leak"): ("flow", "low"),
             ("pump-1", "cavitation"): None,
             ("motor-1", "phase_imbalance"): ("current_a", "high"),
             ("motor-1", "voltage_sag"): ("voltage", "low"),
             ("motor-1", "imbalance"): None,
             ("press-1", "valve_sticking"): None}


def tocsin(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tocsin.cli", *args], capture_output=True,
                          text=True, timeout=timeout)


def test_recorded_live_run_replays_with_identical_alerts(kafka, prefix, spawn, worker,
                                                         tmp_path):
    port = free_port()
    sim = spawn("sim", "opcua", "--port", str(port), name="sim")
    sim.wait_for("simulator: serving", timeout=120)
    tags = ["vibration_rms", "bearing_temp", "motor_current", "discharge_pressure", "flow"]
    cfg = tmp_path / "opcua.yaml"
    cfg.write_text(yaml.safe_dump({"endpoint": endpoint_url(port), "assets": {
        "pump-1": {t: f"ns=2;s=pump-1.{t}" for t in tags}}}))
    conn = spawn("connect", "opcua", "--config", str(cfg), name="connector")
    collect(kafka, prefix + topics.READINGS, lambda it: len(it) >= 10, timeout=60)
    asyncio.run(call_fault(endpoint_url(port), "pump-1", "over_temperature"))
    alerts = collect(kafka, prefix + topics.ALERTS, lambda it: any(
        a.rule == "high" and a.event.value == "raised" for _, a in it), timeout=60,
        decode=Alert.decode)
    raised_ts = next(a.source_ts for _, a in alerts if a.event.value == "raised")
    # the live run goes on past the alarm: 2 s of readings after it (10 frames/s)
    collect(kafka, prefix + topics.READINGS, lambda it: sum(
        f.ts[0] > raised_ts for _, f in it) >= 20, timeout=60, decode=ReadingsFrame.decode)
    conn.stop()  # the input ends; let the worker finish it, then record both topics
    _wait_committed(kafka, f"tocsin-{prefix}thresholds", prefix + topics.READINGS, worker.p,
                    worker.log, 60)
    rec = tmp_path / "live.rec"
    r = tocsin("record", prefix + topics.READINGS, prefix + topics.ALERTS, "-o", str(rec),
               "--broker", kafka)
    assert r.returncode == 0, r.stderr
    exp = tmp_path / "expected.jsonl"
    r = tocsin("recording", "expected", str(rec), "-o", str(exp))
    assert r.returncode == 0, r.stderr
    assert '"raised"' in exp.read_text()
    r = tocsin("replay", str(rec), "--broker", kafka, "--expect", str(exp))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "OK" in r.stdout and "match" in r.stdout


def test_original_timing_and_full_speed_give_identical_alerts(kafka, tmp_path):
    rec = tmp_path / "s.rec"
    write_scenario(rec, single_fault("over_temperature", at=2.0, seconds=12.0))
    t0 = time.monotonic()
    slow = run_isolated(rec, kafka, speed=1.0, log_dir=tmp_path)
    slow_s = time.monotonic() - t0
    fast = run_isolated(rec, kafka, speed=0.0, log_dir=tmp_path)
    assert slow.replayed == fast.replayed == 120
    assert slow.alerts, "the scenario should raise alerts"
    assert any(a["rule"] == "high" and a["tag"] == "bearing_temp" for a in slow.alerts)
    assert slow.alerts == fast.alerts
    assert slow_s >= 11.0  # it really ran at original timing


@pytest.mark.parametrize("asset, fault", CASES)
def test_golden_case(kafka, asset, fault):
    rec = GOLDEN / f"{asset}.{fault}.rec"
    exp = GOLDEN / f"{asset}.{fault}.expected.jsonl"
    assert rec.exists() and exp.exists(), "run tests/golden/make_golden.sh"
    if SIGNATURE[(asset, fault)] is None:
        assert exp.read_text() == ""
    else:
        tag, rule = SIGNATURE[(asset, fault)]
        assert f'"rule":"{rule}"' in exp.read_text() and f'"tag":"{tag}"' in exp.read_text()
    r = tocsin("replay", str(rec), "--broker", kafka, "--expect", str(exp))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "OK" in r.stdout


def test_golden_check_reports_differences(kafka, tmp_path):
    rec = GOLDEN / "pump-1.leak.rec"
    exp = tmp_path / "exp.jsonl"
    lines = (GOLDEN / "pump-1.leak.expected.jsonl").read_text().splitlines()
    # drop one expected event and add a made-up one: the report must show both, exit 1
    fake = lines[0].replace('"event":"raised"', '"event":"cleared"').replace(
        '"alert_id":"', '"alert_id":"x')
    exp.write_text("\n".join(lines[1:] + [fake]) + "\n")
    r = tocsin("replay", str(rec), "--broker", kafka, "--expect", str(exp))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "DIFFERENT" in r.stdout and "1 missing" in r.stdout and "1 extra" in r.stdout


def test_shadow_run_reports_how_two_configs_differ(kafka, tmp_path):
    from tocsin.config.plant import DEFAULT_PLANT

    strict = tmp_path / "strict.yaml"
    cfg = yaml.safe_load(DEFAULT_PLANT.read_text())
    cfg["assets"]["pump-1"]["tags"]["bearing_temp"]["high"] = 75.0
    strict.write_text(yaml.safe_dump(cfg))
    r = tocsin("replay", str(GOLDEN / "pump-1.over_temperature.rec"), "--broker", kafka,
               "--shadow",
               str(DEFAULT_PLANT), str(strict))
    assert r.returncode == 0, r.stdout + r.stderr
    row = next(line for line in r.stdout.splitlines() if "bearing_temp" in line and "high" in line)
    # the stricter limit raises earlier: a negative B-A delta
    assert "-" in row.split("│")[-2]


def test_damaged_recordings_are_refused_with_position(kafka, tmp_path):
    rec = tmp_path / "s.rec"
    write_scenario(rec, single_fault(None, seconds=600.0))  # 6000 frames: 3 blocks of 2000
    data = rec.read_bytes()
    (tmp_path / "cut.rec").write_bytes(data[:-100])  # inside the last block
    r = tocsin("replay", str(tmp_path / "cut.rec"), "--broker", kafka, "--prefix", "dmg.")
    assert r.returncode == 2
    assert "truncated at byte" in r.stderr and "--allow-truncated" in r.stderr
    r = tocsin("replay", str(tmp_path / "cut.rec"), "--broker", kafka, "--prefix", "dmg.",
               "--allow-truncated")
    assert r.returncode == 0, r.stderr
    assert "replayed 4,000 messages" in r.stdout


def test_live_recording_stops_cleanly_on_ctrl_c(kafka, prefix, tmp_path):
    import signal

    from tests.integration.kafka_helpers import produce, wait_for
    from tocsin.connectors.recording import RecordingReader

    rec = tmp_path / "live.rec"
    log = tmp_path / "record.log"
    with open(log, "w") as fh:
        p = subprocess.Popen([sys.executable, "-m", "tocsin.cli", "record",
                              prefix + topics.READINGS, "-o", str(rec), "--broker", kafka,
                              "--start", "end", "--until", "live"], stdout=fh,
                             stderr=subprocess.STDOUT, text=True)
    try:
        # its start offsets are fixed (the partitions' current end) once it reports progress
        wait_for(lambda: "recording: 0 messages" in log.read_text() or p.poll() is not None,
                 60, "the recorder to start", seen=log.read_text)
        produce(kafka, prefix + topics.READINGS, [(b"k", b"m%d" % i) for i in range(50)])
        wait_for(lambda: "recording: 50 messages" in log.read_text() or p.poll() is not None,
                 60, "the recorder to take the 50 messages", seen=log.read_text)
    finally:
        p.send_signal(signal.SIGINT)
    p.wait(timeout=30)
    out = log.read_text()
    assert p.returncode == 0, out
    assert "recorded 50 messages" in out
    with RecordingReader(rec) as r:  # complete: trailer written, every block whole
        assert sorted(m.value for m in r) == sorted(b"m%d" % i for i in range(50))
        assert r.total == 50
