"""ANSI/ISA-18.2 alarm states and operator actions over the alert lifecycle. Pure.

The detection lifecycle (:mod:`tocsin.detectors.lifecycle`, the threshold rules) decides when
a condition is *active*; this board adds what the operator sees and does, per ISA-18.2:

========================  ==============================================================
state                     meaning
========================  ==============================================================
unacknowledged            active, not yet acknowledged (annunciated)
acknowledged              active, acknowledged
returned_unacknowledged   back to normal before anyone acknowledged it (still listed)
latched                   a latched alarm back to normal: listed until an operator resets it
shelved                   hidden by an operator, with a reason, until an expiry (auto-unshelve)
suppressed                suppressed by design: a configured condition holds (asset stopped)
out_of_service            taken out of service by an engineer (maintenance, broken sensor)
normal                    nothing to show (the entry is dropped)
========================  ==============================================================

Shelving, out of service and latching belong to the alarm *point* (asset + tag + rule, or
asset + fault type), not to one episode: a point shelved for an hour stays shelved when it
clears and raises again. Precedence: out of service > suppressed > shelved > the process
states. Every operator action, and each automatic one (auto-unshelve, suppression start and
end), returns a :class:`Change` with who, when and why; the shell publishes them as the audit
trail. Time is event time only (alert source times, action times, :meth:`AlarmBoard.advance`),
so a replay gives the same trail. The whole board is plain data: :meth:`AlarmBoard.to_dict`
and :meth:`AlarmBoard.from_dict` round-trip it (for snapshots and restarts).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from pydantic import BaseModel, ConfigDict, Field

from tocsin.errors import ActionError

NS = 1_000_000_000
STATES = ("unacknowledged", "acknowledged", "returned_unacknowledged", "latched", "shelved",
          "suppressed", "out_of_service", "normal")
HIDDEN = frozenset({"shelved", "suppressed", "out_of_service"})
ACTIONS = ("ack", "shelve", "unshelve", "reset", "comment", "remove_from_service",
           "return_to_service")


class AlarmActionError(ActionError):
    """An operator action that the alarm's state does not allow; the message says why.
    ``changes``: what happened before the refusal (an expired shelving), to record anyway."""

    changes: list = []


class SuppressionRule(BaseModel):
    """Suppress by design: while an alarm matching ``while_active`` is active (say "pump-1
    running low", i.e. the pump is stopped), the alarms of ``assets`` are suppressed, except
    the trigger itself. A pattern matches an alarm point by prefix ("pump-1 " = all of pump-1)."""

    model_config = ConfigDict(extra="forbid")
    name: str
    while_active: str = Field(min_length=1, description="alarm point (prefix) of the condition")
    assets: list[str] = Field(min_length=1)


class BoardConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_shelve_s: float = Field(8 * 3600.0, gt=0, description="longest shelving allowed")
    latched_points: list[str] = Field(default_factory=list, description="points (prefixes) "
                                      "that latch: listed after returning to normal until reset")
    suppression: list[SuppressionRule] = Field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Change:
    """One state change or operator action: the audit record (``user`` "system" for the
    board's own actions, "process" for the detection side)."""

    action: str  # raised | updated | cleared | ack | shelve | unshelve | reset | comment | ...
    alert_id: str
    point: str
    user: str
    ts: int
    reason: str
    from_state: str
    to_state: str

    @property
    def audit(self) -> bool:
        return self.user != "process"


@dataclass
class Alarm:
    alert_id: str
    asset: str
    point: str
    severity: str
    message: str
    opened_ts: int
    last_ts: int
    active: bool = True
    acked_by: str | None = None
    latch_held: bool = False


@dataclass
class PointState:
    shelved_by: str | None = None
    shelve_reason: str = ""
    shelved_until: int = 0
    oos_by: str | None = None
    oos_reason: str = ""


@dataclass
class AlarmBoard:
    config: BoardConfig = field(default_factory=BoardConfig)
    alarms: dict[str, Alarm] = field(default_factory=dict)
    points: dict[str, PointState] = field(default_factory=dict)
    now: int = 0  # newest event time seen

    # ------------------------------------------------------------------ queries
    def state(self, alert_id: str) -> str:
        a = self.alarms.get(alert_id)
        if a is None:
            return "normal"
        p = self.points.get(a.point)
        if p is not None and p.oos_by is not None:
            return "out_of_service"
        if self._suppressed_by(a) is not None:
            return "suppressed"
        if p is not None and p.shelved_by is not None:
            return "shelved"
        if a.active:
            return "acknowledged" if a.acked_by else "unacknowledged"
        if a.latch_held:
            return "latched"
        return "normal" if a.acked_by else "returned_unacknowledged"

    def view(self) -> list[dict]:
        """Every listed alarm with its state and point settings (for consoles)."""
        out = []
        for a in sorted(self.alarms.values(), key=lambda a: (a.opened_ts, a.alert_id)):
            p = self.points.get(a.point) or PointState()
            out.append({**asdict(a), "state": self.state(a.alert_id),
                        "suppressed_by": self._suppressed_by(a),
                        "shelved_by": p.shelved_by, "shelve_reason": p.shelve_reason,
                        "shelved_until": p.shelved_until or None, "oos_by": p.oos_by,
                        "oos_reason": p.oos_reason})
        return out

    # ------------------------------------------------------------------ process side
    def on_event(self, event: str, alert_id: str, *, asset: str, point: str, severity: str,
                 ts: int, opened_ts: int, message: str = "", acked_by: str | None = None
                 ) -> list[Change]:
        """A lifecycle event of the detection side (raised/updated/acknowledged/cleared)."""
        out = self.advance(ts)
        before_sup = self._suppression_snapshot()
        a = self.alarms.get(alert_id)
        old = self.state(alert_id)
        if event == "cleared":
            if a is None:
                return out
            a.active, a.last_ts = False, max(a.last_ts, ts)
            if self._latches(a.point) and old not in HIDDEN:
                a.latch_held = True
        else:
            if a is None:  # also a console that starts after the raise
                a = self.alarms[alert_id] = Alarm(alert_id, asset, point, severity, message,
                                                  opened_ts, ts)
            a.active = True
            a.severity, a.last_ts = severity, max(a.last_ts, ts)
            a.message = message or a.message
            if acked_by and not a.acked_by:
                a.acked_by = acked_by
        new = self.state(alert_id)
        out.append(Change(event, alert_id, point, "process", ts,
                          message or event, old, new))
        self._drop_if_normal(alert_id)
        out += self._suppression_changes(before_sup, ts, alert_id)
        return out

    def advance(self, ts: int) -> list[Change]:
        """Move event time forward; shelving that has expired ends (auto-unshelve)."""
        if ts <= self.now:
            return []
        self.now = ts
        out = []
        for point, p in sorted(self.points.items()):
            if p.shelved_by is not None and p.shelved_until <= ts:
                out += self._each(point, ts, "unshelve", "system",
                                  f"shelving by {p.shelved_by} expired",
                                  lambda p=p: _unshelve(p))
        return out

    # ------------------------------------------------------------------ operator side
    def act(self, action: str, alert_id: str, user: str, ts: int, reason: str = "",
            until_ts: int | None = None) -> list[Change]:
        """An operator action; raises :class:`AlarmActionError` when it is not allowed."""
        if action not in ACTIONS:
            raise AlarmActionError(f"unknown action {action!r}; one of {', '.join(ACTIONS)}")
        if not user:
            raise AlarmActionError("an action needs the user who takes it")
        out = self.advance(ts)  # an expired shelving ends first: the action sees the result
        ts = max(ts, self.now)
        a = self.alarms.get(alert_id)
        try:
            if a is None:
                raise AlarmActionError(f"{alert_id} is not a listed alarm")
            _check(action, a, self.points.get(a.point) or PointState(), self.state(alert_id),
                   ts, reason, until_ts, self.config.max_shelve_s)
        except AlarmActionError as exc:
            exc.changes = out  # the expiry happened all the same: the caller records it
            raise
        p = self.points.setdefault(a.point, PointState())
        out += getattr(self, f"_do_{action}")(a, p, user, ts, reason, until_ts)
        self._gc_point(a.point)
        return out

    def _do_ack(self, a, p, user, ts, reason, until_ts) -> list[Change]:
        return self._one(a, ts, "ack", user, reason or "acknowledged",
                         lambda: setattr(a, "acked_by", user))

    def _do_reset(self, a, p, user, ts, reason, until_ts) -> list[Change]:
        def do():
            a.latch_held = False
            a.acked_by = a.acked_by or user
        return self._one(a, ts, "reset", user, reason or "reset", do)

    def _do_comment(self, a, p, user, ts, reason, until_ts) -> list[Change]:
        st = self.state(a.alert_id)
        return [Change("comment", a.alert_id, a.point, user, ts, reason, st, st)]

    def _do_shelve(self, a, p, user, ts, reason, until_ts) -> list[Change]:
        def do():
            p.shelved_by, p.shelve_reason, p.shelved_until = user, reason, until_ts
        return self._each(a.point, ts, "shelve", user, reason, do)

    def _do_unshelve(self, a, p, user, ts, reason, until_ts) -> list[Change]:
        return self._each(a.point, ts, "unshelve", user, reason or "unshelved",
                          lambda: _unshelve(p))

    def _do_remove_from_service(self, a, p, user, ts, reason, until_ts) -> list[Change]:
        def do():
            p.oos_by, p.oos_reason = user, reason
            _unshelve(p)
        return self._each(a.point, ts, "remove_from_service", user, reason, do)

    def _do_return_to_service(self, a, p, user, ts, reason, until_ts) -> list[Change]:
        def do():
            p.oos_by, p.oos_reason = None, ""
        return self._each(a.point, ts, "return_to_service", user,
                          reason or "returned to service", do)
    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict:
        return {"config": self.config.model_dump(), "now": self.now,
                "alarms": [asdict(a) for a in self.alarms.values()],
                "points": {k: asdict(v) for k, v in self.points.items()}}

    @classmethod
    def from_dict(cls, d: dict) -> "AlarmBoard":
        return cls(BoardConfig(**d["config"]), {a["alert_id"]: Alarm(**a) for a in d["alarms"]},
                   {k: PointState(**v) for k, v in d["points"].items()}, int(d["now"]))

    # ------------------------------------------------------------------ internals
    def _latches(self, point: str) -> bool:
        return any(point.startswith(p) for p in self.config.latched_points)

    def _suppressed_by(self, a: Alarm) -> str | None:
        for r in self.config.suppression:
            if a.asset in r.assets and not a.point.startswith(r.while_active) and any(
                    o.active and o.point.startswith(r.while_active)
                    for o in self.alarms.values()):
                return r.name
        return None

    def _suppression_snapshot(self) -> dict[str, str | None]:
        if not self.config.suppression:
            return {}
        return {aid: self._suppressed_by(a) for aid, a in self.alarms.items()}

    def _suppression_changes(self, before: dict[str, str | None], ts: int,
                             skip: str) -> list[Change]:
        """Audit records for the alarms whose designed suppression started or ended (the
        alarm ``skip`` caused it and has its own record)."""
        out = []
        for aid, was in sorted(before.items()):
            a = self.alarms.get(aid)
            if a is None or aid == skip:
                continue
            now = self._suppressed_by(a)
            if (was is None) == (now is None):
                continue
            if now is None and a.active:
                a.acked_by = None  # back in view while active: annunciated again
            st = self.state(aid)
            out.append(Change("suppress" if now else "unsuppress", aid, a.point, "system", ts,
                              f"suppressed by design: {now or was}",
                              _unhidden(a) if now else "suppressed", st))
        for aid in before:
            self._drop_if_normal(aid)
        return out

    def _one(self, a: Alarm, ts: int, action: str, user: str, reason: str, do) -> list[Change]:
        old = self.state(a.alert_id)
        do()
        new = self.state(a.alert_id)
        out = [Change(action, a.alert_id, a.point, user, ts, reason, old, new)]
        self._drop_if_normal(a.alert_id)
        return out

    def _each(self, point: str, ts: int, action: str, user: str, reason: str, do
              ) -> list[Change]:
        """A point-wide action: one change per listed alarm of the point."""
        ids = sorted(aid for aid, a in self.alarms.items() if a.point == point)
        old = {aid: self.state(aid) for aid in ids}
        do()
        out = [Change(action, aid, point, user, ts, reason, old[aid], self.state(aid))
               for aid in ids] or [Change(action, "", point, user, ts, reason, "normal",
                                          "normal")]  # no episode listed: the point's record
        for aid in ids:
            a = self.alarms[aid]
            if old[aid] in HIDDEN and self.state(aid) not in HIDDEN and a.active:
                a.acked_by = None  # back in view while active: annunciated again
            self._drop_if_normal(aid)
        self._gc_point(point)
        return out

    def _drop_if_normal(self, alert_id: str) -> None:
        a = self.alarms.get(alert_id)
        if a is None or a.active:
            return
        st = self.state(alert_id)
        if st == "normal" or (st in HIDDEN and not a.latch_held):
            del self.alarms[alert_id]  # a hidden alarm that cleared needs no acknowledgement

    def _gc_point(self, point: str) -> None:
        p = self.points.get(point)
        if p is not None and p.shelved_by is None and p.oos_by is None:
            del self.points[point]


def _check(action: str, a: Alarm, p: PointState, st: str, ts: int, reason: str,
           until_ts: int | None, max_shelve_s: float) -> None:
    """Why ``action`` is not allowed now (raises), before anything changes."""
    def need(cond: bool, why: str) -> None:
        if not cond:
            raise AlarmActionError(why)
    if action == "ack":
        need(not a.acked_by, f"{a.alert_id} already acknowledged by {a.acked_by}")
    elif action == "reset":
        need(st == "latched", f"{a.alert_id} is {st}; only a latched alarm is reset")
    elif action == "comment":
        need(bool(reason.strip()), "a comment needs text")
    elif action == "shelve":
        need(bool(reason.strip()), "shelving needs a reason")
        need(until_ts is not None and until_ts > ts, "shelving needs an expiry after now")
        need(until_ts is None or until_ts - ts <= max_shelve_s * NS,
             f"shelving is limited to {max_shelve_s / 3600:g} h")
        need(p.oos_by is None, f"{a.point} is out of service")
    elif action == "unshelve":
        need(p.shelved_by is not None, f"{a.point} is not shelved")
    elif action == "remove_from_service":
        need(bool(reason.strip()), "taking an alarm out of service needs a reason")
        need(p.oos_by is None, f"{a.point} is already out of service")
    elif action == "return_to_service":
        need(p.oos_by is not None, f"{a.point} is not out of service")


def _unhidden(a: Alarm) -> str:
    if a.active:
        return "acknowledged" if a.acked_by else "unacknowledged"
    return "latched" if a.latch_held else "returned_unacknowledged"


def _unshelve(p: PointState) -> None:
    p.shelved_by, p.shelve_reason, p.shelved_until = None, "", 0
