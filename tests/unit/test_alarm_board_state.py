"""The alarm board operator's state: a board rebuilt from its changelog at any point gives the
same audit records, states and forwarded acks as an uninterrupted one; an acknowledged alarm
stays acknowledged and a shelved point stays shelved."""

from __future__ import annotations

from tocsin.contracts import alarm_actions as aa
from tocsin.contracts.acks import Ack
from tocsin.contracts.alerts import Alert, AlertEvent, Severity
from tocsin.streams.alarm_ops import AlarmBoardOp
from tocsin.streams.alarm_service import AlarmService
from tocsin.streams.runtime.emitter import BatchEmitter
from tocsin.streams.runtime.operator import Record
from tocsin.streams.runtime.state import KeyedState

NS = 10**9
P = "u."


def alert(aid, kind="threshold", event=AlertEvent.RAISED, tag="flow", ts=0):
    return Alert(aid, event, "pump-1", kind, "low" if kind == "threshold" else "hydraulic",
                 tag, Severity.WARNING, 40.0, 60.0, ts, ts, ts, f"{aid} {event.value}")


def inputs() -> list[Record]:
    t = 1_700_000_000 * NS
    items = [
        b"a" + alert("pump-1:t1", ts=t).encode(),
        b"a" + alert("pump-1:f1", kind="fusion", ts=t + NS).encode(),
        b"r" + aa.AlarmAction("shelve", "pump-1:t1", "olga", t + 2 * NS, "cleaning",
                              t + 600 * NS, "operator", "test").encode(),
        b"r" + aa.AlarmAction("ack", "pump-1:f1", "olga", t + 3 * NS, "on it", None,
                              "operator").encode(),
        b"k" + Ack("pump-1:t1", "cli", t + 4 * NS, "from the cli").encode(),
        b"a" + alert("pump-1:t1", event=AlertEvent.CLEARED, ts=t + 5 * NS).encode(),
        b"a" + alert("pump-1:t2", ts=t + 6 * NS).encode(),  # a new episode, same point
        b"r" + aa.AlarmAction("ack", "pump-1:f1", "ivan", t + 7 * NS, "", None,
                              "operator").encode(),  # rejected: already acknowledged
        b"a" + alert("pump-1:f1", kind="fusion", event=AlertEvent.UPDATED,
                     ts=t + 8 * NS).encode(),
        b"a" + alert("pump-1:t3", tag="temp", ts=t + 900 * NS).encode(),  # shelving expired
        b"a" + alert("pump-1:f1", kind="fusion", event=AlertEvent.CLEARED,
                     ts=t + 901 * NS).encode(),
    ]
    return [Record(P + "plant.alarm.in", 0, i, b"k", v) for i, v in enumerate(items)]


def board(state: KeyedState):
    svc = AlarmService("127.0.0.1:1", P, wall_clock=False)
    op = svc.op = AlarmBoardOp(svc)
    op.open(0, state)
    return svc, op


def run(cut: int | None):
    state = KeyedState(0)
    svc, op = board(state)
    out, sent = BatchEmitter(P + "tocsin.deadletter", "w1"), []
    changelog: dict[bytes, bytes | None] = {}
    for i, r in enumerate(inputs()):
        if i == cut:  # the worker dies; the next one restores the changelog
            state = KeyedState(0)
            for k, v in changelog.items():
                state.apply_changelog(k, v)
            svc, op = board(state)
        op.process([r], out)
        sent += out.take()
        changelog.update(state.take_changes())
    return sent, svc


def test_restore_from_the_changelog_at_any_point_changes_no_output():
    want, svc = run(None)
    audit = [aa.AuditRecord.decode(v) for t, _, v in want if t == P + aa.AUDIT_TOPIC]
    actions = [(r.action, r.alert_id, r.to_state) for r in audit]
    assert ("shelve", "pump-1:t1", "shelved") in actions
    assert ("ack", "pump-1:f1", "acknowledged") in actions
    assert ("unshelve", "pump-1:t2", "unacknowledged") in actions  # expired at t + 600 s
    assert any(r.action == "rejected" for r in audit)
    assert any(t == P + "plant.alerts.acks" for t, _, _ in want)  # fused ack forwarded
    for cut in range(1, len(inputs())):
        got, _ = run(cut)
        assert got == want, cut


def test_an_acknowledged_alarm_stays_acknowledged_after_a_restart():
    state = KeyedState(0)
    for k, v in _changelog_until(6).items():  # the worker died after the 7th record
        state.apply_changelog(k, v)
    svc, _ = board(state)
    rows = {r["alert_id"]: r for r in svc.view()}
    assert rows["pump-1:f1"]["state"] == "acknowledged"
    assert rows["pump-1:f1"]["acked_by"] == "olga"
    assert rows["pump-1:f1"]["kind"] == "fusion"  # so a later ack is forwarded again
    assert rows["pump-1:t2"]["state"] == "shelved"  # the point's shelving restored


def _changelog_until(n: int) -> dict[bytes, bytes | None]:
    state = KeyedState(0)
    svc, op = board(state)
    out = BatchEmitter(P + "tocsin.deadletter", "w1")
    log: dict[bytes, bytes | None] = {}
    for r in inputs()[:n + 1]:
        op.process([r], out)
        out.take()
        log.update(state.take_changes())
    return log
