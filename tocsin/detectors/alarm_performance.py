"""Alarm-system performance figures (ANSI/ISA-18.2, EEMUA 191) from an alarm history. Pure.

The figures a plant's alarm system is judged by, computed from the alert lifecycle events in a
time range ``[start, stop)`` (ns, event time):

* annunciated alarms per operator per 10 minutes, average and peak (ISA-18.2: ~1 very likely
  acceptable, 2 the most manageable), and per hour / per day;
* the share of 10-minute periods in flood (more than 10 alarms per operator; target < ~1 %);
* the top-10 most frequent alarms' ("bad actors") share of all alarms (target: a few %);
* chattering alarms: one alarm point annunciated 3 or more times within 60 s (target: none);
* stale alarms: active for more than 24 h (target: fewer than 5 on any day);
* priority distribution (low/medium/high = info/warning/critical) against ~80/15/5 %.

An annunciation is a ``raised`` event, unless the alarm was shelved, suppressed by design or
out of service at the time (``state`` in the event's details): operators never saw those.
An "alarm point" (what bad actors and chattering count) is the configured alarm, not the
episode: asset + tag + rule for a threshold alarm, asset + fault type for a fused one.
Why periods start at ``start`` and not at the clock's 10-minute marks: a report for a shift
(say 06:03-14:03) must count whole periods of that shift; align ``start`` for clock periods.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

NS = 1_000_000_000
PRIORITY = {"info": "low", "warning": "medium", "critical": "high"}
NOT_ANNUNCIATED = frozenset({"shelved", "suppressed", "out_of_service"})
AVG_TARGET, MANAGEABLE, FLOOD_SHARE_TARGET, TOP10_TARGET, STALE_TARGET = 1.0, 2.0, 0.01, 0.05, 5
TARGETS: dict[str, object] = {
    "avg_per_10min": AVG_TARGET, "max_manageable_per_10min": MANAGEABLE,
    "flood_share": FLOOD_SHARE_TARGET, "top10_share": TOP10_TARGET, "chattering": 0,
    "stale": STALE_TARGET, "priority": {"low": 0.80, "medium": 0.15, "high": 0.05}}


class ReportConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    operators: int = Field(1, ge=1, description="operator positions sharing these alarms")
    period_s: float = Field(600.0, gt=0, description="rate period (ISA-18.2: 10 minutes)")
    flood_per_period: int = Field(10, ge=1, description="more than this per operator = flood")
    top_n: int = Field(10, ge=1, description="bad actors counted in the top-N share")
    chatter_count: int = Field(3, ge=2, description="annunciations within chatter_window_s")
    chatter_window_s: float = Field(60.0, gt=0)
    stale_s: float = Field(86400.0, gt=0, description="active longer than this = stale")


@dataclass(frozen=True, slots=True)
class AlarmRecord:
    """One lifecycle event of the history, reduced to what the figures need."""

    ts: int  # ns, event time
    alert_id: str
    point: str  # the configured alarm (see module doc)
    event: str  # raised | updated | acknowledged | cleared | shelved | ...
    severity: str  # info | warning | critical
    opened_ts: int
    state: str = ""  # ISA-18.2 state after the event, when the event says so


def alarm_point(asset: str, kind: str, rule: str, tag: str) -> str:
    return f"{asset} {rule}" if kind == "fusion" else f"{asset} {tag} {rule}"


@dataclass
class AlarmReport:
    start_ts: int
    stop_ts: int
    operators: int
    periods: int
    annunciated: int
    per_period: list[int]  # annunciations in each period (all operators)
    avg_per_10min: float  # per operator, normalised to 10 minutes
    peak_per_10min: float
    avg_per_hour: float
    avg_per_day: float
    flood_periods: int
    flood_share: float
    top: list[dict]  # [{point, count, share}] most frequent first
    top_share: float
    chattering: list[dict]  # [{point, max_in_window, episodes}]
    stale: list[dict]  # [{alert_id, point, opened_ts, active_s, cleared}]
    priority_counts: dict[str, int]
    priority_share: dict[str, float]
    targets: dict = field(default_factory=lambda: dict(TARGETS))

    def to_dict(self) -> dict:
        return asdict(self)

    def verdicts(self) -> dict[str, bool]:
        """Whether each figure meets its ISA-18.2 / EEMUA 191 target (True = meets)."""
        p = self.priority_share
        flood = self.targets.get("flood_per_period", 10)
        return {"avg_per_10min": self.avg_per_10min <= AVG_TARGET,
                "peak_per_10min": self.peak_per_10min <= (flood if isinstance(flood, int)
                                                          else 10),
                "flood_share": self.flood_share < FLOOD_SHARE_TARGET,
                "top10_share": self.top_share <= TOP10_TARGET,
                "chattering": len(self.chattering) == 0,
                "stale": len(self.stale) < STALE_TARGET,
                "priority": self.annunciated == 0 or (
                    p.get("high", 0) <= 0.10 and p.get("low", 0) >= 0.60)}


def compute_report(records: Iterable[AlarmRecord], start_ts: int, stop_ts: int,
                   config: ReportConfig | None = None) -> AlarmReport:
    """The figures over ``[start_ts, stop_ts)``; events outside it are ignored, except that an
    alarm opened earlier and still active counts as stale from its ``opened_ts``."""
    c = config or ReportConfig()
    if stop_ts <= start_ts:
        raise ValueError(f"empty range: stop ({stop_ts}) must be after start ({start_ts})")
    period = int(c.period_s * NS)
    n_periods = max(1, math.ceil((stop_ts - start_ts) / period))
    seen: set[tuple] = set()
    ann: list[AlarmRecord] = []
    by_alert: dict[str, list[AlarmRecord]] = defaultdict(list)
    for r in sorted(records, key=lambda r: (r.ts, r.alert_id, r.event)):
        if not start_ts <= r.ts < stop_ts:
            continue
        key = (r.alert_id, r.event, r.ts)
        if key in seen:  # the same event from two sources (topic and history), or replayed
            continue
        seen.add(key)
        by_alert[r.alert_id].append(r)
        if r.event == "raised" and r.state not in NOT_ANNUNCIATED:
            ann.append(r)
    counts = np.zeros(n_periods, dtype=np.int64)
    if ann:
        idx = (np.array([r.ts for r in ann], dtype=np.int64) - start_ts) // period
        counts = np.bincount(idx, minlength=n_periods)
    per_op = counts / c.operators
    scale = 600.0 / c.period_s  # figures are quoted per 10 minutes whatever the period
    total_s = (stop_ts - start_ts) / NS
    flood = int(np.sum(per_op > c.flood_per_period))
    freq = Counter(r.point for r in ann)
    ranked = sorted(freq.items(), key=lambda kv: (-kv[1], kv[0]))
    top: list[dict] = [{"point": p, "count": n, "share": n / len(ann)}
                       for p, n in ranked[:c.top_n]]
    sev = Counter(PRIORITY.get(r.severity, "medium") for r in ann)
    pc = {k: sev.get(k, 0) for k in ("low", "medium", "high")}
    return AlarmReport(
        start_ts=start_ts, stop_ts=stop_ts, operators=c.operators, periods=n_periods,
        annunciated=len(ann), per_period=counts.tolist(),
        avg_per_10min=float(per_op.mean() * scale), peak_per_10min=float(per_op.max() * scale),
        avg_per_hour=len(ann) / c.operators / total_s * 3600,
        avg_per_day=len(ann) / c.operators / total_s * 86400,
        flood_periods=flood, flood_share=flood / n_periods, top=top,
        top_share=sum(int(t["count"]) for t in top) / len(ann) if ann else 0.0,
        chattering=_chattering(ann, c), stale=_stale(by_alert, stop_ts, c),
        priority_counts=pc,
        priority_share={k: (v / len(ann) if ann else 0.0) for k, v in pc.items()},
        targets={**TARGETS, "flood_per_period": c.flood_per_period})


def _chattering(ann: list[AlarmRecord], c: ReportConfig) -> list[dict]:
    """Points annunciated >= chatter_count times within any chatter_window_s (inclusive of the
    window's length: 3 raises at 0, 30 and 60 s chatter). An episode is a maximal run of
    annunciations each within the window of the one chatter_count-1 before it."""
    window = int(c.chatter_window_s * NS)
    ts_by_point: dict[str, list[int]] = defaultdict(list)
    for r in ann:
        ts_by_point[r.point].append(r.ts)
    out = []
    for point, ts in sorted(ts_by_point.items()):
        t = np.array(ts, dtype=np.int64)
        k = c.chatter_count
        if len(t) < k:
            continue
        hit = (t[k - 1:] - t[:len(t) - k + 1]) <= window  # hit[i]: t[i..i+k-1] in a window
        if not hit.any():
            continue
        # most annunciations inside one window, by a two-pointer sweep
        j, best = 0, 0
        for i in range(len(t)):
            while t[i] - t[j] > window:
                j += 1
            best = max(best, i - j + 1)
        episodes = int(hit[0]) + int(np.sum(hit[1:] & ~hit[:-1]))
        out.append({"point": point, "max_in_window": best, "episodes": episodes,
                    "annunciations": len(t)})
    return sorted(out, key=lambda d: (-d["max_in_window"], d["point"]))


def _stale(by_alert: dict[str, list[AlarmRecord]], stop_ts: int, c: ReportConfig) -> list[dict]:
    limit = int(c.stale_s * NS)
    out = []
    for aid, evs in by_alert.items():
        opened = min(e.opened_ts for e in evs)
        cleared = next((e.ts for e in evs if e.event == "cleared"), None)
        active = (cleared if cleared is not None else stop_ts) - opened
        if active > limit:
            out.append({"alert_id": aid, "point": evs[0].point, "opened_ts": opened,
                        "active_s": active / NS, "cleared": cleared is not None})
    return sorted(out, key=lambda d: (-d["active_s"], d["alert_id"]))
