"""ISA-18.2 / EEMUA 191 figures on a synthetic alarm history whose answers are known by
construction (counted by hand below, not by the code under test)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tocsin.connectors.alarm_history import from_jsonl, parse_time
from tocsin.contracts.alerts import Alert, AlertEvent, Severity
from tocsin.detectors.alarm_performance import NS, AlarmRecord, ReportConfig, compute_report

T0 = parse_time("2026-03-02T06:00:00Z")
MIN = 60 * NS
PERIOD = 10 * MIN
STOP = T0 + 6 * 3600 * NS  # 36 ten-minute periods


def raise_(point: str, ts: int, sev: str = "info", aid: str | None = None, state: str = ""):
    aid = aid or f"{point}@{ts}"
    return AlarmRecord(ts, aid, point, "raised", sev, ts, state)


def history() -> list[AlarmRecord]:
    r: list[AlarmRecord] = []
    # 20 background alarms, one in each of periods 0..19, each a different point, low priority
    r += [raise_(f"A{i:02d}", T0 + i * PERIOD + 3 * MIN) for i in range(20)]
    # a flood in period 25: point F 12 times, 45 s apart (never 3 within 60 s), medium
    r += [raise_("F", T0 + 25 * PERIOD + k * 45 * NS, "warning") for k in range(12)]
    r.append(r[-1])  # a redelivered event is counted once
    # chattering point C, high: 3 within 40 s in period 30, 4 within 30 s in period 32
    r += [raise_("C", T0 + 30 * PERIOD + k * 20 * NS, "critical") for k in range(3)]
    r += [raise_("C", T0 + 32 * PERIOD + k * 10 * NS, "critical") for k in range(4)]
    # a shelved alarm's raise is not annunciated
    r.append(raise_("S", T0 + 5 * PERIOD, "critical", state="shelved"))
    # stale: opened 20 h before the range, still active at its end (26 h)
    r.append(AlarmRecord(T0 + 3600 * NS, "stale-1", "P1 level high", "updated", "warning",
                         T0 - 20 * 3600 * NS))
    # long but not stale: opened 10 h before, cleared 2 h into the range (12 h)
    r.append(AlarmRecord(T0 + 2 * 3600 * NS, "long-1", "P2 temp high", "cleared", "info",
                         T0 - 10 * 3600 * NS))
    # outside the range: ignored
    r.append(raise_("X", STOP))
    r.append(raise_("X", T0 - 1))
    return r


def test_figures_on_a_known_history():
    rep = compute_report(history(), T0, STOP)
    assert rep.periods == 36
    assert rep.annunciated == 20 + 12 + 7
    expect = [1] * 20 + [0] * 16
    expect[25], expect[30], expect[32] = 12, 3, 4
    assert rep.per_period == expect
    assert rep.avg_per_10min == pytest.approx(39 / 36)
    assert rep.peak_per_10min == 12
    assert rep.avg_per_hour == pytest.approx(39 / 6)
    assert rep.avg_per_day == pytest.approx(39 * 4)
    assert rep.flood_periods == 1 and rep.flood_share == pytest.approx(1 / 36)
    assert [t["point"] for t in rep.top[:2]] == ["F", "C"]
    assert [t["point"] for t in rep.top[2:]] == [f"A{i:02d}" for i in range(8)]  # ties by name
    assert rep.top_share == pytest.approx((12 + 7 + 8) / 39)
    assert rep.chattering == [{"point": "C", "max_in_window": 4, "episodes": 2,
                               "annunciations": 7}]
    assert [(s["alert_id"], s["active_s"], s["cleared"]) for s in rep.stale] == [
        ("stale-1", 26 * 3600.0, False)]
    assert rep.priority_counts == {"low": 20, "medium": 12, "high": 7}
    assert rep.priority_share["low"] == pytest.approx(20 / 39)
    v = rep.verdicts()
    assert v["avg_per_10min"] is False and v["flood_share"] is False
    assert v["chattering"] is False and v["stale"] is True
    json.dumps(rep.to_dict())  # serialisable as is


def test_two_operators_halve_the_rate_and_end_the_flood():
    rep = compute_report(history(), T0, STOP, ReportConfig(operators=2))
    assert rep.avg_per_10min == pytest.approx(39 / 36 / 2)
    assert rep.peak_per_10min == 6 and rep.flood_periods == 0


def test_chatter_window_is_inclusive_and_two_in_a_minute_is_not_chatter():
    recs = [raise_("B", T0 + k * 30 * NS) for k in range(3)]  # 0, 30, 60 s
    recs += [raise_("D", T0 + k * 31 * NS) for k in range(3)]  # 0, 31, 62 s
    rep = compute_report(recs, T0, T0 + PERIOD)
    assert [c["point"] for c in rep.chattering] == ["B"]


def test_empty_history_and_bad_range():
    rep = compute_report([], T0, T0 + 3 * PERIOD)
    assert rep.annunciated == 0 and rep.per_period == [0, 0, 0] and rep.top_share == 0
    with pytest.raises(ValueError, match="empty range"):
        compute_report([], T0, T0)


def test_jsonl_input_maps_alert_events(tmp_path):
    def alert(aid, event, ts, kind="threshold", sev=Severity.WARNING, state=None):
        return Alert(aid, AlertEvent(event), "pump-1", kind, "high", "bearing_temp", sev, 1.0,
                     0.5, ts, T0, ts, details={"state": state} if state else {})
    lines = [alert("a1", "raised", T0 + NS), alert("a1", "acknowledged", T0 + 2 * NS),
             alert("a1", "cleared", T0 + 3 * NS),
             alert("a2", "raised", T0 + 4 * NS, state="suppressed"),
             alert("a3", "raised", T0 + 5 * NS, kind="fusion", sev=Severity.CRITICAL)]
    p = tmp_path / "alerts.jsonl"
    p.write_bytes(b"\n".join(a.encode() for a in lines) + b"\n{bad\n")
    errors: list[str] = []
    recs = from_jsonl(p, errors)
    assert len(recs) == 5 and len(errors) == 1 and ":6:" in errors[0]
    rep = compute_report(recs, T0, T0 + PERIOD)
    assert rep.annunciated == 2
    assert {t["point"] for t in rep.top} == {"pump-1 bearing_temp high", "pump-1 high"}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 36 * 600 - 1), st.sampled_from("abcd"),
                          st.sampled_from(["info", "warning", "critical"])), max_size=80),
       st.integers(-10**6, 10**6))
def test_counts_add_up_and_do_not_depend_on_the_epoch(events, shift_s):
    def recs(offset):
        return [raise_(p, T0 + offset + s * NS, sev) for s, p, sev in events]
    a = compute_report(recs(0), T0, STOP)
    b = compute_report(recs(shift_s * NS), T0 + shift_s * NS, STOP + shift_s * NS)
    assert sum(a.per_period) == a.annunciated == sum(a.priority_counts.values())
    assert a.annunciated == len({(p, s) for s, p, _ in events})
    assert (a.per_period, a.top, a.chattering) == (b.per_period, b.top, b.chattering)
