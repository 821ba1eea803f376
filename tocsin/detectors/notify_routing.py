"""Notification routing, grouping, rate limits and repeats (pure; the senders are a shell).

Alertmanager's model, because operators who have one know it: a route matches alarms by
severity, asset and fault type and names receivers; matching alarms are grouped by
``group_by`` fields; a new group waits ``group_wait_s`` to collect its first alarms, changes to
a group are sent at most every ``group_interval_s``, and a group still firing is sent again
every ``repeat_interval_s``. On top, each receiver has a rate limit (``max_per_window`` per
``window_s``): a notification over it waits (its group stays due), so a flood becomes a few
grouped messages, never a lost alarm. Time is whatever the caller passes (event time).
Only alarms an operator would see notify: shelved, suppressed and out-of-service alarms are
the caller's to leave out.
"""

from __future__ import annotations

import fnmatch
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

NS = 1_000_000_000


def _ns(seconds: float) -> int:
    """Integer ns: a float sum with a 19-digit timestamp rounds by up to 256 ns."""
    return int(round(seconds * NS))


_RANK = {"info": 0, "warning": 1, "critical": 2}


class Webhook(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(pattern=r"^https?://")
    timeout_s: float = 5.0


class Email(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to: list[str] = Field(min_length=1)
    sender: str = "tocsin@localhost"
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    starttls: bool = False
    username: str | None = None
    password_env: str | None = Field(None, description="environment variable holding the "
                                     "SMTP password (never the password itself)")


class Alertmanager(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(pattern=r"^https?://", description="base URL, e.g. http://127.0.0.1:9093")
    generator_url: str = ""


class Receiver(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    webhook: Webhook | None = None
    email: Email | None = None
    alertmanager: Alertmanager | None = None
    max_per_window: int = Field(20, ge=1, description="notifications per window_s at most")
    window_s: float = Field(3600.0, gt=0)

    @model_validator(mode="after")
    def _one(self) -> "Receiver":
        n = sum(x is not None for x in (self.webhook, self.email, self.alertmanager))
        if n != 1:
            raise ValueError(f"receiver {self.name!r}: give exactly one of webhook, email, "
                             f"alertmanager (got {n})")
        return self


class Route(BaseModel):
    model_config = ConfigDict(extra="forbid")
    receivers: list[str] = Field(min_length=1)
    min_severity: Literal["info", "warning", "critical"] = "info"
    assets: list[str] = Field(default_factory=list, description="glob patterns; empty = any")
    fault_types: list[str] = Field(default_factory=list, description="empty = any")
    kinds: list[str] = Field(default_factory=list, description="threshold / fusion; empty = any")
    group_by: list[Literal["asset", "fault_type", "severity", "kind", "alert_id"]] = ["asset"]
    group_wait_s: float = Field(30.0, ge=0)
    group_interval_s: float = Field(300.0, ge=0)
    repeat_interval_s: float = Field(4 * 3600.0, gt=0)
    continue_: bool = Field(False, alias="continue", description="also try the next routes")

    def matches(self, a: dict) -> bool:
        if _RANK.get(a.get("severity", "info"), 0) < _RANK[self.min_severity]:
            return False
        if self.assets and not any(fnmatch.fnmatchcase(a.get("asset", ""), p)
                                   for p in self.assets):
            return False
        if self.fault_types and a.get("fault_type") not in self.fault_types:
            return False
        return not self.kinds or a.get("kind") in self.kinds


class NotifyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    receivers: list[Receiver] = Field(default_factory=list)
    routes: list[Route] = Field(default_factory=list)

    @model_validator(mode="after")
    def _known(self) -> "NotifyConfig":
        names = {r.name for r in self.receivers}
        for i, route in enumerate(self.routes):
            for r in route.receivers:
                if r not in names:
                    raise ValueError(f"routes[{i}]: unknown receiver {r!r} (defined: "
                                     f"{sorted(names)})")
        return self


@dataclass(frozen=True)
class Notification:
    receiver: str
    route: int
    group: tuple
    kind: str  # new | update | repeat
    firing: list[dict]
    resolved: list[dict]
    ts: int


@dataclass
class _Group:
    route: int
    receiver: str
    key: tuple
    first_ts: int
    firing: dict = field(default_factory=dict)  # alert id -> alarm dict
    resolved: dict = field(default_factory=dict)
    last_sent: int | None = None
    dirty: bool = True


@dataclass
class NotifyPlanner:
    config: NotifyConfig
    groups: dict = field(default_factory=dict)
    sent: dict = field(default_factory=dict)  # receiver -> deque of send times
    rate_limited: int = 0  # times a due notification had to wait for its receiver's limit

    def on_alarm(self, alarm: dict, ts: int) -> None:
        """An alarm's news: ``alarm`` has alert_id, asset, severity, kind, fault_type,
        message, and ``active`` (False = resolved)."""
        for i, route in enumerate(self.config.routes):
            if not route.matches(alarm):
                continue
            key = tuple(str(alarm.get(k, "")) for k in route.group_by)
            for rcv in route.receivers:
                g = self.groups.get((i, rcv, key))
                if g is None:
                    if not alarm.get("active", True):
                        continue  # nothing was sent about it: no resolution either
                    g = self.groups[(i, rcv, key)] = _Group(i, rcv, key, ts)
                aid = alarm["alert_id"]
                if alarm.get("active", True):
                    g.firing[aid] = dict(alarm)
                    g.resolved.pop(aid, None)
                elif aid in g.firing:
                    g.resolved[aid] = dict(alarm)
                    del g.firing[aid]
                g.dirty = True
            if not route.continue_:
                return

    def due(self, ts: int) -> list[Notification]:
        """The notifications to send at ``ts`` (call it every second or so)."""
        out = []
        limits = {r.name: r for r in self.config.receivers}
        for gk in sorted(self.groups, key=lambda k: (k[0], k[1], k[2])):
            g = self.groups[gk]
            route = self.config.routes[g.route]
            if g.last_sent is None:
                kind = "new" if ts >= g.first_ts + _ns(route.group_wait_s) else None
            elif g.dirty:
                kind = "update" if ts >= g.last_sent + _ns(route.group_interval_s) else None
            elif g.firing and ts >= g.last_sent + _ns(route.repeat_interval_s):
                kind = "repeat"
            else:
                kind = None
            if kind is None:
                continue
            rcv = limits[g.receiver]
            q = self.sent.setdefault(g.receiver, deque())
            while q and q[0] <= ts - _ns(rcv.window_s):
                q.popleft()
            if len(q) >= rcv.max_per_window:
                self.rate_limited += 1
                continue
            q.append(ts)
            out.append(Notification(g.receiver, g.route, g.key, kind,
                                    sorted(g.firing.values(), key=lambda a: a["alert_id"]),
                                    sorted(g.resolved.values(), key=lambda a: a["alert_id"]),
                                    ts))
            g.last_sent, g.dirty = ts, False
            g.resolved.clear()
            if not g.firing:
                del self.groups[gk]
        return out
