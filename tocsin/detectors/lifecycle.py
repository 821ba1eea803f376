"""The alert lifecycle of one asset: raised -> updated -> acknowledged -> cleared.

Pure and deterministic: the machine sees one fused assessment per evaluation tick (event time,
ns) and the operators' acks, and returns lifecycle transitions. It never reads a clock, so a
replay gives the same transitions, and the alert id depends only on the asset and the event
time that opened the episode, so a redelivered input can never open a second alert.

Why each rule exists (operators hate walls of alerts):

* a raise needs P(fault) >= ``raise_p`` on at least ``raise_min_ticks`` ticks within the
  last ``raise_window_s`` of event time, the current tick among them (the episode opens at
  the first of them): a model's score crosses its threshold now and then on normal data,
  and one or two stray ticks are not an alert, while an intermittent fault (anomalous every
  other tick) still raises; evidence that includes a critical threshold alert raises at once;
* raise/clear use two probability levels (``raise_p`` > ``clear_p``), and clearing also needs
  the evidence to stay gone for ``hold_s`` of event time, so a signal that hovers at the
  boundary or flaps faster than the hold time stays ONE alert;
* ``updated`` is emitted only when severity or the top fault type changes, or the posterior
  moves by more than ``hysteresis`` since the last emitted event (no update per tick);
* an open alert changes its fault type only to a confident new diagnosis (the new type holds
  at least ``retype_p`` of P(fault)); while the diagnosis is unsure (say, a fault's
  after-effects fading through other tag groups) the alert keeps the type and posterior it
  was raised or last confidently updated with;
* an asset whose episodes keep reopening (``flap_max`` raises of the same fault type within
  ``flap_window_s``; a different fault type is a new problem, not flapping) is marked flapping: its next alert carries ``flapping`` and its hold time is multiplied by
  ``flap_hold_factor``, so slow flapping converges to one long alert instead of dozens;
* an alert unacknowledged for ``escalate_after_s`` is escalated one severity level (again after
  each further period, up to critical); an ack stops escalation.
"""

from __future__ import annotations

import hashlib
from collections import deque
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field, model_validator

NS = 1_000_000_000
LEVELS = ("info", "warning", "critical")


class LifecycleConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    raise_p: float = Field(0.8, gt=0, le=1, description="P(fault) that raises an alert")
    clear_p: float = Field(0.5, ge=0, lt=1, description="P(fault) below which evidence is gone")
    critical_p: float = Field(0.99, gt=0, le=1, description="P(fault) that makes it critical")
    hysteresis: float = Field(0.15, ge=0, le=1, description="posterior change for an update")
    retype_p: float = Field(0.8, gt=0, le=1, description="share of P(fault) a new fault type "
                            "needs to relabel an open alert")
    raise_min_ticks: int = Field(1, ge=1, description="ticks at or above raise_p needed "
                                 "within raise_window_s to raise (1 = the first such tick)")
    raise_window_s: float = Field(5.0, gt=0, description="event-time window of raise_min_ticks")
    hold_s: float = Field(10.0, ge=0, description="evidence gone this long (event time) clears")
    flap_window_s: float = Field(300.0, gt=0)
    flap_max: int = Field(3, ge=2, description="raises within the window that mean flapping")
    flap_hold_factor: float = Field(6.0, ge=1)
    escalate_after_s: float = Field(120.0, gt=0, description="unacknowledged this long escalates")

    @model_validator(mode="after")
    def _order(self) -> "LifecycleConfig":
        if self.clear_p >= self.raise_p:
            raise ValueError(f"clear_p ({self.clear_p}) must be below raise_p ({self.raise_p})")
        return self


@dataclass(frozen=True, slots=True)
class Assessment:
    """One tick's fused view of an asset: posterior over fault states and the base severity
    the evidence implies (e.g. a critical threshold alert is active)."""

    ts: int  # ns, event time of the tick
    posterior: dict[str, float]  # state -> probability, includes "normal"
    floor_severity: str = "warning"  # the least severity the evidence itself implies

    @property
    def p_fault(self) -> float:
        return 1.0 - self.posterior.get("normal", 0.0)

    @property
    def top(self) -> str:
        faults = {k: v for k, v in self.posterior.items() if k != "normal"}
        return max(sorted(faults), key=faults.__getitem__) if faults else "normal"


@dataclass(frozen=True, slots=True)
class Transition:
    event: str  # raised | updated | acknowledged | cleared
    alert_id: str
    asset: str
    ts: int  # ns, event time of the tick or ack that caused it
    opened_ts: int
    severity: str
    fault_type: str
    posterior: dict[str, float]
    acked_by: str | None = None
    escalations: int = 0
    flapping: bool = False
    reason: str = ""


def episode_id(asset: str, opened_ts: int) -> str:
    """Deterministic per asset and episode (the event time of the tick that opened it)."""
    h = hashlib.blake2b(f"{asset}|fusion|{opened_ts}".encode(), digest_size=10)
    return f"{asset}:f{h.hexdigest()}"


@dataclass
class _Open:
    alert_id: str
    opened_ts: int
    severity: str
    fault_type: str
    posterior: dict[str, float]  # as last emitted
    flapping: bool
    hold_ns: int
    acked_by: str | None = None
    escalations: int = 0
    last_escalation_ts: int = 0
    quiet_since: int | None = None  # event time when the evidence went away


@dataclass
class AlertLifecycle:
    """Lifecycle of the fused alert of one asset (at most one open episode at a time)."""

    asset: str
    config: LifecycleConfig = field(default_factory=LifecycleConfig)
    open: _Open | None = None
    last_ts: int | None = None
    raises: deque = field(default_factory=deque)  # (event time, fault type) of recent raises
    pending: deque = field(default_factory=deque)  # event times of recent ticks >= raise_p

    def step(self, a: Assessment) -> list[Transition]:
        """Feed one tick. Ticks at or before the last one seen are ignored (redelivery)."""
        if self.last_ts is not None and a.ts <= self.last_ts:
            return []
        self.last_ts = a.ts
        c = self.config
        if self.open is None:
            window = int(c.raise_window_s * NS)
            while self.pending and a.ts - self.pending[0] >= window:
                self.pending.popleft()
            if a.p_fault < c.raise_p:
                return []
            self.pending.append(a.ts)
            if len(self.pending) < c.raise_min_ticks and a.floor_severity != "critical":
                return []
            opened = self.pending[0]
            self.pending.clear()
            return [self._raise(a, opened)]
        o = self.open
        if a.p_fault < c.clear_p:
            if o.quiet_since is None:
                o.quiet_since = a.ts
            if a.ts - o.quiet_since >= o.hold_ns:
                self.open = None
                return [self._t("cleared", o, a.ts, reason=f"evidence gone for "
                                f"{(a.ts - o.quiet_since) / NS:.0f}s")]
            return self._escalate(o, a.ts)
        o.quiet_since = None
        out = self._escalate(o, a.ts)
        sev = _max_sev(self._severity(a), o.severity)
        top = a.top
        share = a.posterior.get(top, 0.0) / a.p_fault if a.p_fault > 0 else 0.0
        if top != o.fault_type and share < c.retype_p:
            # unsure: keep the diagnosis; only a severity change is news
            if sev != o.severity:
                o.severity = sev
                out.append(self._t("updated", o, a.ts, reason="severity changed"))
            return out
        moved = max(abs(a.posterior.get(k, 0.0) - o.posterior.get(k, 0.0))
                    for k in set(a.posterior) | set(o.posterior))
        if sev != o.severity or top != o.fault_type or moved >= c.hysteresis:
            why = [w for w, hit in (("severity", sev != o.severity),
                                    ("fault type", top != o.fault_type),
                                    ("posterior", moved >= c.hysteresis)) if hit]
            o.severity, o.fault_type, o.posterior = sev, top, dict(a.posterior)
            out.append(self._t("updated", o, a.ts, reason=" and ".join(why) + " changed"))
        return out

    def resume(self, alert_id: str, opened_ts: int, ts: int, severity: str, fault_type: str,
               posterior: dict[str, float], acked_by: str | None = None,
               escalations: int = 0, flapping: bool = False) -> bool:
        """Take over an episode a previous worker left open (its newest event, at event time
        ``ts``), so the next ticks update or clear THAT alert instead of raising a second one.
        Ticks at or before ``ts`` count as already seen. False when an episode is open here."""
        if self.open is not None:
            return False
        c = self.config
        hold = c.hold_s * (c.flap_hold_factor if flapping else 1.0)
        self.open = _Open(alert_id, opened_ts, severity, fault_type, dict(posterior), flapping,
                          int(hold * NS), acked_by, escalations, last_escalation_ts=ts)
        self.raises.append((opened_ts, fault_type))
        self.last_ts = max(self.last_ts or ts, ts)
        self.pending.clear()
        return True

    def ack(self, alert_id: str, user: str, ts: int) -> list[Transition]:
        """An operator's ack; idempotent, and a no-op for an id that is not open here."""
        o = self.open
        if o is None or o.alert_id != alert_id or o.acked_by is not None:
            return []
        o.acked_by = user
        return [self._t("acknowledged", o, max(ts, self.last_ts or ts),
                        reason=f"acknowledged by {user}")]

    # ------------------------------------------------------------------ internals
    def _raise(self, a: Assessment, opened_ts: int) -> Transition:
        c = self.config
        window = int(c.flap_window_s * NS)
        while self.raises and a.ts - self.raises[0][0] > window:
            self.raises.popleft()
        self.raises.append((a.ts, a.top))
        flapping = sum(top == a.top for _, top in self.raises) >= c.flap_max
        hold = c.hold_s * (c.flap_hold_factor if flapping else 1.0)
        o = self.open = _Open(episode_id(self.asset, opened_ts), opened_ts, self._severity(a),
                              a.top, dict(a.posterior), flapping, int(hold * NS),
                              last_escalation_ts=a.ts)
        return self._t("raised", o, a.ts, reason="flapping: hold time extended" if flapping
                       else f"P(fault) {a.p_fault:.2f} >= {c.raise_p}")

    def _severity(self, a: Assessment) -> str:
        base = "critical" if a.p_fault >= self.config.critical_p else "warning"
        return _max_sev(base, a.floor_severity)

    def _escalate(self, o: _Open, ts: int) -> list[Transition]:
        if o.acked_by is not None or o.severity == "critical":
            return []
        if ts - o.last_escalation_ts < int(self.config.escalate_after_s * NS):
            return []
        o.severity = LEVELS[LEVELS.index(o.severity) + 1]
        o.escalations += 1
        o.last_escalation_ts = ts
        return [self._t("updated", o, ts, reason=f"escalated: unacknowledged for "
                        f"{self.config.escalate_after_s:.0f}s")]

    def _t(self, event: str, o: _Open, ts: int, reason: str) -> Transition:
        return Transition(event, o.alert_id, self.asset, ts, o.opened_ts, o.severity,
                          o.fault_type, dict(o.posterior), o.acked_by, o.escalations,
                          o.flapping, reason)


def _max_sev(a: str, b: str) -> str:
    return a if LEVELS.index(a) >= LEVELS.index(b) else b
