"""The ISA-18.2 alarm board (pure): states, operator actions with an audit record each,
shelving with expiry, designed suppression, out of service, latching, and its round trip."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tocsin.detectors.alarm_states import (
    HIDDEN,
    NS,
    STATES,
    AlarmActionError,
    AlarmBoard,
    BoardConfig,
    SuppressionRule,
)

T0 = 1_772_430_000 * NS
TEMP, SPEED = "pump-1 bearing_temp high", "pump-1 speed low"


def ev(b: AlarmBoard, event: str, aid: str, point: str = TEMP, t: float = 0, **kw):
    return b.on_event(event, aid, asset=point.split()[0], point=point, severity="warning",
                      ts=T0 + int(t * NS), opened_ts=T0, **kw)


def at(t: float) -> int:
    return T0 + int(t * NS)


def test_ack_then_clear_and_the_audit_record():
    b = AlarmBoard()
    ch = ev(b, "raised", "a1")
    assert [(c.action, c.to_state, c.audit) for c in ch] == [("raised", "unacknowledged",
                                                               False)]
    ch = b.act("ack", "a1", "olga", at(5), "seen, calling maintenance")
    assert [(c.action, c.user, c.ts, c.reason, c.from_state, c.to_state) for c in ch] == [
        ("ack", "olga", at(5), "seen, calling maintenance", "unacknowledged", "acknowledged")]
    assert ch[0].audit
    with pytest.raises(AlarmActionError, match="already acknowledged by olga"):
        b.act("ack", "a1", "ivan", at(6))
    ev(b, "cleared", "a1", t=10)
    assert b.state("a1") == "normal" and b.alarms == {}


def test_return_to_normal_unacknowledged_stays_listed_until_acked():
    b = AlarmBoard()
    ev(b, "raised", "a1")
    ev(b, "cleared", "a1", t=3)
    assert b.state("a1") == "returned_unacknowledged"
    assert [c.to_state for c in b.act("ack", "a1", "olga", at(4))] == ["normal"]
    assert "a1" not in b.alarms


def test_the_fusion_workers_acknowledged_event_acks_too():
    b = AlarmBoard()
    ev(b, "raised", "a1")
    ch = ev(b, "acknowledged", "a1", t=2, acked_by="cli-user")
    assert ch[-1].to_state == "acknowledged" and not ch[-1].audit


def test_latched_alarm_needs_a_reset():
    b = AlarmBoard(BoardConfig(latched_points=["pump-1 bearing_temp"]))
    ev(b, "raised", "a1")
    with pytest.raises(AlarmActionError, match="only a latched alarm"):
        b.act("reset", "a1", "olga", at(1))
    b.act("ack", "a1", "olga", at(1))
    ev(b, "cleared", "a1", t=2)
    assert b.state("a1") == "latched"
    assert [c.to_state for c in b.act("reset", "a1", "olga", at(3), "checked")] == ["normal"]
    assert b.alarms == {}


def test_shelving_needs_reason_and_expiry_hides_new_episodes_and_expires_on_event_time():
    b = AlarmBoard(BoardConfig(max_shelve_s=3600))
    ev(b, "raised", "a1")
    with pytest.raises(AlarmActionError, match="reason"):
        b.act("shelve", "a1", "olga", at(1), "", at(600))
    with pytest.raises(AlarmActionError, match="expiry"):
        b.act("shelve", "a1", "olga", at(1), "sensor fouled", at(1))
    with pytest.raises(AlarmActionError, match="limited to 1 h"):
        b.act("shelve", "a1", "olga", at(1), "sensor fouled", at(3602))
    ch = b.act("shelve", "a1", "olga", at(1), "sensor fouled", at(600))
    assert [(c.action, c.to_state, c.reason) for c in ch] == [("shelve", "shelved",
                                                               "sensor fouled")]
    ev(b, "cleared", "a1", t=10)
    assert "a1" not in b.alarms  # a shelved alarm that clears needs no ack
    ch = ev(b, "raised", "a2", t=20)  # the same point, a new episode: still shelved
    assert ch[-1].to_state == "shelved"
    assert b.advance(at(599)) == []
    ch = b.advance(at(600))
    assert [(c.action, c.alert_id, c.user, c.from_state, c.to_state) for c in ch] == [
        ("unshelve", "a2", "system", "shelved", "unacknowledged")]
    assert b.points == {}


def test_auto_unshelve_of_a_point_with_nothing_listed_is_still_recorded():
    b = AlarmBoard()
    ev(b, "raised", "a1")
    b.act("shelve", "a1", "olga", at(1), "known issue", at(60))
    ev(b, "cleared", "a1", t=2)
    ch = ev(b, "raised", "x1", point=SPEED, t=61)  # any later event time expires it
    assert [(c.action, c.alert_id, c.point) for c in ch][0] == ("unshelve", "", TEMP)


def test_a_refused_action_still_reports_the_expiry_it_caused():
    b = AlarmBoard()
    ev(b, "raised", "a1")
    b.act("shelve", "a1", "olga", at(1), "known issue", at(60))
    with pytest.raises(AlarmActionError, match="not shelved") as exc:
        b.act("unshelve", "a1", "olga", at(61))  # too late: it expired by itself
    assert [(c.action, c.user, c.to_state) for c in exc.value.changes] == [
        ("unshelve", "system", "unacknowledged")]


def test_suppression_by_design_while_the_pump_is_stopped():
    rule = SuppressionRule(name="pump-1 stopped", while_active=SPEED, assets=["pump-1"])
    b = AlarmBoard(BoardConfig(suppression=[rule]))
    ev(b, "raised", "t1")
    ch = ev(b, "raised", "s1", point=SPEED, t=1)
    assert [(c.action, c.alert_id, c.to_state) for c in ch] == [
        ("raised", "s1", "unacknowledged"), ("suppress", "t1", "suppressed")]
    assert ch[1].user == "system" and "pump-1 stopped" in ch[1].reason
    ev(b, "raised", "t2", point="pump-1 flow low", t=2)
    assert b.state("t2") == "suppressed"
    ch = ev(b, "cleared", "s1", point=SPEED, t=3)
    assert {(c.action, c.alert_id, c.to_state) for c in ch[1:]} == {
        ("unsuppress", "t1", "unacknowledged"), ("unsuppress", "t2", "unacknowledged")}


def test_out_of_service_and_comments():
    b = AlarmBoard()
    ev(b, "raised", "a1")
    with pytest.raises(AlarmActionError, match="reason"):
        b.act("remove_from_service", "a1", "eng", at(1))
    ch = b.act("remove_from_service", "a1", "eng", at(1), "transmitter replaced")
    assert ch[0].to_state == "out_of_service"
    with pytest.raises(AlarmActionError, match="out of service"):
        b.act("shelve", "a1", "olga", at(2), "x", at(60))
    c = b.act("comment", "a1", "olga", at(3), "spoke to the field operator")
    assert c[0].from_state == c[0].to_state == "out_of_service" and c[0].audit
    assert b.act("return_to_service", "a1", "eng", at(4))[0].to_state == "unacknowledged"
    with pytest.raises(AlarmActionError, match="not a listed alarm"):
        b.act("ack", "nope", "olga", at(5))


# ---------------------------------------------------------------------- properties
POINTS = [TEMP, SPEED, "pump-2 flow low"]
op = st.one_of(
    st.tuples(st.just("event"), st.sampled_from(["raised", "updated", "cleared"]),
              st.integers(0, 5), st.integers(0, 2)),
    st.tuples(st.just("act"), st.sampled_from(["ack", "shelve", "unshelve", "reset", "comment",
                                               "remove_from_service", "return_to_service"]),
              st.integers(0, 5), st.integers(1, 900)),
    st.tuples(st.just("advance"), st.just(""), st.just(0), st.integers(1, 900)))


def apply(b: AlarmBoard, ops, t0: int = 0) -> list:
    trail = []
    t = t0
    for kind, what, n, arg in ops:
        t += 7
        try:
            if kind == "event":
                aid = f"e{n}"
                point = b.alarms[aid].point if aid in b.alarms else POINTS[arg]
                trail += ev(b, what, aid, point=point, t=t)
            elif kind == "act":
                trail += b.act(what, f"e{n}", "olga", at(t), "because", at(t + arg))
            else:
                t += arg
                trail += b.advance(at(t))
        except AlarmActionError as exc:
            trail += exc.changes
            trail.append(str(exc))
    return trail


CFG = BoardConfig(latched_points=["pump-2"], max_shelve_s=600, suppression=[
    SuppressionRule(name="stopped", while_active=SPEED, assets=["pump-1"])])


@settings(max_examples=150, deadline=None)
@given(st.lists(op, max_size=40), st.integers(0, 40))
def test_states_valid_audit_complete_and_round_trip(ops, cut):
    b = AlarmBoard(CFG)
    head = apply(b, ops[:cut])
    for a in b.alarms.values():
        s = b.state(a.alert_id)
        assert s in STATES and s != "normal"  # normal alarms are dropped
        if s not in HIDDEN:
            assert (s in ("unacknowledged", "acknowledged")) == a.active
    for p in b.points.values():
        assert p.shelved_by is None or p.shelved_until > b.now  # expired shelving ended
    for c in head:
        if not isinstance(c, str):
            assert c.from_state in STATES + ("annunciated",) and c.to_state in STATES
            assert c.audit == (c.user in ("olga", "system"))
    copy = AlarmBoard.from_dict(json.loads(json.dumps(b.to_dict())))
    assert apply(copy, ops[cut:], 7 * cut + 10**6) == apply(b, ops[cut:], 7 * cut + 10**6)
