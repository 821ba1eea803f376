"""Notification routing (pure): matching by severity/asset/fault type, grouping with
group_wait / group_interval / repeat_interval, and per-receiver rate limits."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tocsin.detectors.notify_routing import NS, NotifyConfig, NotifyPlanner

T0 = 1_796_121_475_101_522_677  # not a multiple of 256: float sums round it (a real bug)


def cfg(**route) -> NotifyConfig:
    return NotifyConfig.model_validate({
        "receivers": [{"name": "ops", "webhook": {"url": "http://127.0.0.1:1/x"},
                       "max_per_window": route.pop("max_per_window", 20), "window_s": 3600},
                      {"name": "mail", "email": {"to": ["ops@example.org"]}}],
        "routes": [{"receivers": ["ops"], **route}]})


def alarm(aid, asset="pump-1", sev="warning", ft="mechanical", active=True, kind="fusion"):
    return {"alert_id": aid, "asset": asset, "severity": sev, "fault_type": ft, "kind": kind,
            "message": f"{aid} on {asset}", "active": active}


def at(s: float) -> int:
    return T0 + int(s * NS)


def test_group_wait_collects_then_interval_then_repeat_then_resolved():
    p = NotifyPlanner(cfg(group_wait_s=10, group_interval_s=60, repeat_interval_s=600))
    p.on_alarm(alarm("a1"), at(0))
    p.on_alarm(alarm("a2"), at(5))
    assert p.due(at(9)) == []
    n = p.due(at(10))
    assert [(x.kind, [a["alert_id"] for a in x.firing]) for x in n] == [("new", ["a1", "a2"])]
    p.on_alarm(alarm("a3"), at(20))
    assert p.due(at(69)) == []
    n = p.due(at(70))
    assert [(x.kind, len(x.firing)) for x in n] == [("update", 3)]
    assert p.due(at(669)) == []
    assert [x.kind for x in p.due(at(670))] == ["repeat"]
    for a in ("a1", "a2", "a3"):
        p.on_alarm(alarm(a, active=False), at(700))
    n = p.due(at(730))
    assert [(x.kind, x.firing, len(x.resolved)) for x in n] == [("update", [], 3)]
    assert p.groups == {} and p.due(at(10_000)) == []


def test_routes_match_severity_asset_and_fault_type_and_group_by_asset():
    p = NotifyPlanner(cfg(min_severity="warning", assets=["pump-*"],
                          fault_types=["mechanical", "hydraulic"], group_wait_s=0))
    p.on_alarm(alarm("x1", sev="info"), at(0))  # too low
    p.on_alarm(alarm("x2", asset="press-1"), at(0))  # other asset
    p.on_alarm(alarm("x3", ft="electrical"), at(0))  # other fault type
    p.on_alarm(alarm("y1", asset="pump-1"), at(0))
    p.on_alarm(alarm("y2", asset="pump-2", sev="critical", ft="hydraulic"), at(0))
    n = p.due(at(0))
    assert sorted((x.group, [a["alert_id"] for a in x.firing]) for x in n) == [
        (("pump-1",), ["y1"]), (("pump-2",), ["y2"])]


def test_rate_limit_defers_and_never_drops():
    p = NotifyPlanner(cfg(group_wait_s=0, group_by=["alert_id"], max_per_window=2))
    for i in range(5):
        p.on_alarm(alarm(f"a{i}"), at(0))
    assert len(p.due(at(0))) == 2 and p.rate_limited == 3
    assert p.due(at(1800)) == []
    later = p.due(at(3600))
    assert len(later) == 2 and {a["alert_id"] for x in later for a in x.firing} == {"a2", "a3"}
    assert len(p.due(at(7200))) == 1


def test_first_match_wins_unless_continue():
    c = NotifyConfig.model_validate({
        "receivers": [{"name": "a", "webhook": {"url": "http://127.0.0.1:1/"}},
                      {"name": "b", "webhook": {"url": "http://127.0.0.1:2/"}}],
        "routes": [{"receivers": ["a"], "min_severity": "critical", "group_wait_s": 0},
                   {"receivers": ["b"], "group_wait_s": 0}]})
    p = NotifyPlanner(c)
    p.on_alarm(alarm("c1", sev="critical"), at(0))
    p.on_alarm(alarm("w1"), at(0))
    assert sorted((x.receiver, x.firing[0]["alert_id"]) for x in p.due(at(0))) == [
        ("a", "c1"), ("b", "w1")]
    c.routes[0].continue_ = True
    p = NotifyPlanner(c)
    p.on_alarm(alarm("c1", sev="critical"), at(0))
    assert sorted(x.receiver for x in p.due(at(0))) == ["a", "b"]


def test_config_errors_name_the_field():
    with pytest.raises(ValidationError, match="unknown receiver 'pager'"):
        NotifyConfig.model_validate({"receivers": [], "routes": [{"receivers": ["pager"]}]})
    with pytest.raises(ValidationError, match="exactly one of webhook"):
        NotifyConfig.model_validate({"receivers": [{"name": "x"}]})
