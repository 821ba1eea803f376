"""The alarm-state service on a real broker: requests in, audit records out, the CLI's acks
honoured, fused acks forwarded to the fusion worker's topic, and shelving restored after a
restart from the compacted states topic."""

from __future__ import annotations

import time

import pytest

from tests.integration.kafka_helpers import collect, produce
from tocsin.contracts import topics
from tocsin.contracts.acks import Ack
from tocsin.contracts.alarm_actions import AUDIT_TOPIC, AlarmAction, AuditRecord
from tocsin.contracts.alerts import Alert, AlertEvent, Severity
from tocsin.detectors.alarm_states import AlarmActionError
from tocsin.streams.alarm_service import AlarmService

pytestmark = pytest.mark.integration
NS = 10**9


def until(cond, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def alert(aid, kind="threshold", event=AlertEvent.RAISED, tag="flow", ts=None):
    ts = ts or time.time_ns()
    return Alert(aid, event, "pump-1", kind, "low" if kind == "threshold" else "hydraulic",
                 tag, Severity.WARNING, 40.0, 60.0, ts, ts, ts, f"{aid} {event.value}")


def test_requests_audit_cli_acks_forwarding_and_restart(kafka, prefix):
    svc = AlarmService(kafka, prefix, wall_clock=False)
    svc.start()
    try:
        assert svc.ready.wait(30)
        produce(kafka, prefix + topics.ALERTS, [
            (b"pump-1:t1", alert("pump-1:t1").encode()),
            (b"pump-1:f1", alert("pump-1:f1", kind="fusion").encode())])
        until(lambda: len(svc.view()) == 2)
        now = time.time_ns()
        with pytest.raises(AlarmActionError, match="needs a reason"):
            svc.submit(AlarmAction("shelve", "pump-1:t1", "olga", now, "", now + 60 * NS))
        svc.submit(AlarmAction("shelve", "pump-1:t1", "olga", now, "cleaning", now + 3600 * NS,
                               "operator", "test"))
        svc.submit(AlarmAction("ack", "pump-1:f1", "olga", now, "on it", None, "operator"))
        # the CLI's ack path (plant.alerts.acks) acks a threshold alarm too
        produce(kafka, prefix + topics.ALERT_ACKS, [
            (b"pump-1:t1", Ack("pump-1:t1", "cli-user", now + 1, "from the cli").encode())])
        recs = collect(kafka, prefix + AUDIT_TOPIC, lambda it: len(it) >= 3, timeout=20,
                       decode=AuditRecord.decode)
        got = sorted((r.action, r.alert_id, r.user, r.to_state) for _, r in recs)
        assert got == [("ack", "pump-1:f1", "olga", "acknowledged"),
                       ("ack", "pump-1:t1", "cli-user", "shelved"),
                       ("shelve", "pump-1:t1", "olga", "shelved")]
        # the fused alert's ack is forwarded, so the fusion worker stops escalating it
        acks = collect(kafka, prefix + topics.ALERT_ACKS, lambda it: len(it) >= 2,
                       timeout=20, decode=Ack.decode)
        assert ("pump-1:f1", "olga") in {(a.alert_id, a.user) for _, a in acks}
    finally:
        svc.stop()

    again = AlarmService(kafka, prefix, wall_clock=False)
    again.start()
    try:
        states = {r["alert_id"]: r["state"] for r in again.view()}
        assert states == {"pump-1:t1": "shelved", "pump-1:f1": "acknowledged"}
        assert again.ready.wait(30)
        # a new episode of the shelved point, after the restart: still shelved
        produce(kafka, prefix + topics.ALERTS, [(b"pump-1:t2", alert("pump-1:t2").encode())])
        until(lambda: {r["alert_id"]: r["state"] for r in again.view()}.get("pump-1:t2")
              == "shelved")
    finally:
        again.stop()
