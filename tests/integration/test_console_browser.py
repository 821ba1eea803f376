"""The console in a real browser: Debian's Chromium driven by Selenium (chromium-driver).

An injected fault (a readings frame with the bearing temperature jumping past its limit) goes
through the real plant worker to threshold alerts, the console (a real subprocess on its own
port) shows them live; an operator logs in, acknowledges one, shelves another, and sees the
audit records, which are also on the audit topic. Screenshots go to build/screenshots/ (and
to docs/img/ with TOCSIN_DOCS_SCREENSHOTS=1). Skipped, saying why, only without Chromium.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import SYNCHRONOUS

from tests.integration.kafka_helpers import collect, produce
from tocsin.connectors.influx_lines import readings_lines
from tocsin.console.auth import add_user
from tocsin.contracts import ReadingsFrame, topics
from tocsin.contracts.alarm_actions import AUDIT_TOPIC, AuditRecord
from tocsin.contracts.alerts import Alert, AlertEvent, Severity
from tocsin.contracts.payments import FraudLabel, FraudScore
from tocsin.contracts.scores import ModelScore, Scores
from tocsin.services.influx import InfluxServer
from tocsin.services.kafka import free_port

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "build" / "screenshots"
CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture
def browser():
    if not (CHROMIUM and DRIVER):
        pytest.skip("Chromium not installed: run scripts/install-chromium "
                    "(apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
              "--window-size=1400,900", "--lang=en-US"):
        opts.add_argument(a)
    drv = webdriver.Chrome(service=Service(DRIVER), options=opts)
    drv.implicitly_wait(0)
    yield drv
    drv.quit()


@pytest.fixture
def influx(tmp_path):
    srv = InfluxServer(tmp_path / "influx", port=free_port(), retention_hours=24).start()
    yield srv
    srv.stop()


@pytest.fixture
def console(kafka, prefix, tmp_path, influx):
    users = tmp_path / "users.yaml"
    add_user(users, "olga", "operator", "olga-pw")
    add_user(users, "vic", "viewer", "vic-pw")
    port = free_port()
    env = dict(os.environ, TOCSIN_BROKER=kafka, TOCSIN_TOPIC_PREFIX=prefix,
               PYTHONUNBUFFERED="1", TOCSIN_INFLUX_URL=influx.url,
               TOCSIN_INFLUX_TOKEN=influx.token)
    log = open(tmp_path / "console.log", "wb")
    p = subprocess.Popen([sys.executable, "-m", "tocsin.cli", "console", "--port", str(port),
                          "--users", str(users)], env=env, stdout=log,
                         stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "/healthz", timeout=1)
            break
        except OSError:
            assert p.poll() is None, (tmp_path / "console.log").read_text()
            time.sleep(0.3)
    else:
        pytest.fail("console not up in 60 s: " + (tmp_path / "console.log").read_text())
    yield url
    p.terminate()
    p.wait(20)
    log.close()


def _wait(drv, cond, timeout=30.0, what=""):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    # the console re-renders parts of the page while we poll: an element found a moment ago
    # may be replaced before it is read; the next poll looks it up again
    return WebDriverWait(drv, timeout, poll_frequency=0.2,
                         ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda d: cond(d), message=f"not seen within {timeout}s: {what}")


def _shot(drv, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    drv.save_screenshot(str(path))
    assert path.stat().st_size > 5000
    if os.environ.get("TOCSIN_DOCS_SCREENSHOTS") == "1":
        (ROOT / "docs" / "img").mkdir(parents=True, exist_ok=True)
        shutil.copy(path, ROOT / "docs" / "img" / path.name)


def _rows(drv) -> dict[str, dict]:
    """The alarm table as the operator sees it (read in one script: the table re-renders
    live, so element handles go stale)."""
    return drv.execute_script("""
        const out = {};
        for (const tr of document.querySelectorAll("#alarms tbody tr[data-id]"))
          out[tr.dataset.id] = {point: tr.children[3].innerText,
                                state: tr.querySelector("td.state").innerText};
        return out;""")


def _act(drv, alert_id: str, act: str, reason: str, minutes: str | None = None) -> None:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    sel = f'#alarms tr[data-id="{alert_id}"] button.act-{act}'
    for _ in range(20):
        try:
            drv.find_element(By.CSS_SELECTOR, sel).click()
            break
        except StaleElementReferenceException:
            time.sleep(0.1)
    _wait(drv, lambda d: d.find_element(By.ID, "dlg").get_attribute("open") is not None,
          what="action dialog")
    drv.find_element(By.ID, "dlg-reason").send_keys(reason)
    if minutes:
        Select(drv.find_element(By.ID, "dlg-minutes")).select_by_value(minutes)
    drv.find_element(By.ID, "dlg-ok").click()


def test_operator_sees_acks_and_shelves_an_alarm_from_an_injected_fault(
        kafka, prefix, worker, influx, console, browser):
    from selenium.webdriver.common.by import By

    drv = browser
    drv.get(console + "/")
    assert drv.current_url.endswith("/login")
    drv.find_element(By.ID, "user").send_keys("olga")
    drv.find_element(By.ID, "password").send_keys("wrong")
    drv.find_element(By.ID, "login-btn").click()
    _wait(drv, lambda d: d.find_element(By.ID, "failed").is_displayed(), what="login refused")
    drv.find_element(By.ID, "user").send_keys("olga")
    drv.find_element(By.ID, "password").send_keys("olga-pw")
    _shot(drv, "console-login")
    drv.find_element(By.ID, "login-btn").click()
    _wait(drv, lambda d: "olga (operator)" in d.find_element(By.ID, "me").text, what="login")
    _wait(drv, lambda d: "ok" in d.find_element(By.ID, "live").get_attribute("class"),
          what="live stream connected")

    # the injected fault: bearing temperature 60 -> 99.5 degC in 0.1 s, through the worker
    t0 = time.time_ns()
    frames = [ReadingsFrame("pump-1", ["bearing_temp"], np.array([t0]), np.array([60.0]),
                            np.zeros(1, np.uint8)),
              ReadingsFrame("pump-1", ["bearing_temp"], np.array([t0 + 10**8]),
                            np.array([99.5]), np.zeros(1, np.uint8))]
    produce(kafka, prefix + topics.READINGS, [(b"pump-1", f.encode()) for f in frames])
    # the same readings, and a minute of normal ones before, in the history (for the trend)
    before = ReadingsFrame("pump-1", ["bearing_temp"] * 60,
                           np.array([t0 - (60 - i) * 10**9 for i in range(60)]),
                           60 + np.sin(np.arange(60) / 5.0), np.zeros(60, np.uint8))
    with InfluxDBClient(url=influx.url, token=influx.token, org=influx.org) as c:
        c.write_api(write_options=SYNCHRONOUS).write(
            influx.bucket, influx.org, [ln for f in (before, *frames)
                                        for ln in readings_lines(f)], write_precision="ns")
    rows = _wait(drv, lambda d: (r := _rows(d)) and len(r) >= 2 and r, timeout=60,
                 what="two alarms in the list")
    by_point = {r["point"]: (aid, r) for aid, r in rows.items()}
    assert set(by_point) == {"pump-1 bearing_temp high", "pump-1 bearing_temp rate"}
    assert all(r["state"] == "unacknowledged" for r in rows.values())
    _shot(drv, "console-alarms")

    high_id, _ = by_point["pump-1 bearing_temp high"]
    _act(drv, high_id, "ack", "field operator sent to pump-1")
    _wait(drv, lambda d: _rows(d)[high_id]["state"] == "acknowledged", what="acknowledged")

    # the trend around the alarm, from InfluxDB: click the row
    drv.execute_script("document.querySelector(`#alarms tr[data-id='${arguments[0]}'] td`)"
                       ".click()", high_id)
    _wait(drv, lambda d: d.find_elements(By.CSS_SELECTOR, "#trend-svg polyline"), timeout=20,
          what="trend plot")
    assert "62 readings of 1 tags" in drv.find_element(By.ID, "trend-title").text
    _shot(drv, "console-trend")

    rate_id, _ = by_point["pump-1 bearing_temp rate"]
    _act(drv, rate_id, "shelve", "rate alarm known noisy on restart", "60")
    _wait(drv, lambda d: rate_id not in _rows(d), what="shelved alarm hidden")
    drv.find_element(By.ID, "f-hidden").click()
    _wait(drv, lambda d: _rows(d).get(rate_id, {}).get("state") == "shelved",
          what="shelved state shown")

    def audit_lines(d):
        return [li.text for li in d.find_elements(By.CSS_SELECTOR, "#audit li")]
    lines = _wait(drv, lambda d: (x := audit_lines(d)) and len(x) >= 2 and x,
                  what="two audit records")
    assert any("olga (operator): ack" in x and "field operator sent" in x for x in lines)
    assert any("olga (operator): shelve" in x and "known noisy" in x for x in lines)
    _shot(drv, "console-audit")

    # the same records on the audit topic, with who / when / why
    recs = collect(kafka, prefix + AUDIT_TOPIC, lambda it: len(it) >= 2, timeout=20,
                   decode=AuditRecord.decode)
    got = {(r.action, r.alert_id, r.user, r.from_state, r.to_state) for _, r in recs}
    assert got == {("ack", high_id, "olga", "unacknowledged", "acknowledged"),
                   ("shelve", rate_id, "olga", "unacknowledged", "shelved")}
    assert all(r.ts >= t0 and r.reason for _, r in recs)

    # the asset view: newest scores and the fused alert's fault-type posterior
    produce(kafka, prefix + topics.SCORES, [(b"pump-1", Scores(
        "pump-1", "centrifugal-pump", t0, {"iforest": ModelScore(0.71, 0.5, {"bearing_temp": 0.8,
                                                                            "flow": 0.1})},
        "test-1", "h").encode())])
    fused = Alert("pump-1:fz", AlertEvent.RAISED, "pump-1", "fusion", "thermal", "bearing_temp",
                  Severity.WARNING, 0.82, 0.8, t0, t0, t0, "pump-1: thermal fault likely",
                  {"fault_type": "thermal", "posterior": {"normal": 0.1, "thermal": 0.82,
                                                          "mechanical": 0.08},
                   "evidence": {"top_tags": ["bearing_temp"]}})
    produce(kafka, prefix + topics.ALERTS, [(fused.alert_id.encode(), fused.encode())])
    drv.find_element(By.CSS_SELECTOR, 'a[data-tab="assets"]').click()
    card = _wait(drv, lambda d: (c := d.find_elements(By.CSS_SELECTOR, '[data-asset="pump-1"]'))
                 and "thermal" in c[0].text and "iforest: 0.710" in c[0].text and c[0],
                 timeout=20, what="asset card with scores and posterior")
    assert "bearing_temp" in card.text
    _shot(drv, "console-assets")

    # the fraud review queue: a flagged transaction, marked fraud -> payments.labels
    produce(kafka, prefix + topics.PAY_SCORES, [(b"card-9", FraudScore(
        "txn-42", "card-9", "term-3", 0.93, "review", "full", "fraud-1", t0, t0, t0, 1.0
    ).encode())])
    drv.find_element(By.CSS_SELECTOR, 'a[data-tab="review"]').click()
    _wait(drv, lambda d: d.find_elements(By.CSS_SELECTOR, 'tr[data-txn="txn-42"]'),
          timeout=20, what="flagged transaction")
    _shot(drv, "console-review")
    drv.find_element(By.CSS_SELECTOR, 'tr[data-txn="txn-42"] button[data-v="fraud"]').click()
    labels = collect(kafka, prefix + topics.PAY_LABELS, lambda it: len(it) >= 1, timeout=20,
                     decode=FraudLabel.decode)
    (_, lab), = labels
    assert (lab.txn_id, lab.fraud, lab.scenario) == ("txn-42", True, "review by olga")
    _wait(drv, lambda d: not d.find_elements(By.CSS_SELECTOR, 'tr[data-txn="txn-42"]'),
          what="reviewed transaction leaves the queue")

    drv.get(console + "/#performance")
    _wait(drv, lambda d: d.find_elements(By.ID, "report-table"), what="report")
    assert "alarms / operator / 10 min" in drv.find_element(By.ID, "report-table").text
    _shot(drv, "console-performance")

    # a viewer sees the list but may not act
    drv.find_element(By.ID, "logout").click()
    _wait(drv, lambda d: d.find_elements(By.ID, "user"), what="the login page after logout")
    drv.find_element(By.ID, "user").send_keys("vic")
    drv.find_element(By.ID, "password").send_keys("vic-pw")
    drv.find_element(By.ID, "login-btn").click()
    _wait(drv, lambda d: "vic (viewer)" in d.find_element(By.ID, "me").text, what="viewer")
    _wait(drv, lambda d: high_id in _rows(d), what="list for the viewer")
    assert not drv.find_elements(By.CSS_SELECTOR, "#alarms button")
    status = drv.execute_async_script(
        "const done = arguments[arguments.length - 1]; fetch(arguments[0], {method: 'POST', headers: "
        "{'X-Tocsin': '1', 'Content-Type': 'application/json'}, body: '{}'})"
        ".then(r => done(r.status));", f"/api/alarms/{high_id}/comment")
    assert status == 403
