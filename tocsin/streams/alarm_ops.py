"""The alarm board on the exactly-once runtime: a route and the board operator.

The ISA-18.2 board is one state: shelving and out-of-service belong to a point (all episodes
of asset + tag + rule), and suppression by design spans assets, so it cannot be split by
alert id. ``alarm-route`` (stateless) reads ``plant.alerts``, ``plant.alerts.acks`` and
``plant.alarm_actions``, checks that each decodes (else a dead letter) and writes it, tagged
with its kind, to the ONE-partition through topic ``plant.alarm.in``; ``alarm-board`` reads
that partition, so one worker holds the board at a time and another takes over on failure.
The board's load is alert events and operator actions, not samples.

State: every listed alarm (key ``alarm:<id>``, with its kind), every shelved or
out-of-service point (``point:<point>``) and the board's event time (``now``), written after
each record that changed them, in the transaction that carries the audit records, the
compacted ``plant.alarm_states`` and the acks forwarded to the fusion stage:
Restore.changelog(). The wall clock moves event time on in ``tick`` (live mode), so shelving
expires while the plant is quiet; that auto-unshelve is committed like any other change.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING

import orjson

from tocsin.contracts import alarm_actions as aa
from tocsin.contracts.acks import Ack
from tocsin.contracts.alerts import Alert
from tocsin.contracts.topics import ALERT_ACKS, ALERTS
from tocsin.detectors.alarm_states import Alarm, PointState
from tocsin.streams.deadletters import reason
from tocsin.streams.runtime.operator import Emitter, Record, Restore, Stateless
from tocsin.streams.runtime.state import KeyedState

if TYPE_CHECKING:
    from tocsin.streams.alarm_service import AlarmService

log = logging.getLogger("tocsin.alarms")
ALARM_IN = "plant.alarm.in"
KINDS = {ALERTS: b"a", ALERT_ACKS: b"k", aa.ACTIONS_TOPIC: b"r"}
_DECODE = {b"a": Alert.decode, b"k": Ack.decode, b"r": aa.AlarmAction.decode}


class AlarmRoute(Stateless):
    name = "alarm-route"

    def __init__(self, prefix: str):
        self.tags = {prefix + t: k for t, k in KINDS.items()}
        self.dst = prefix + ALARM_IN

    def inputs(self) -> list[str]:
        return list(self.tags)

    def process(self, records: Sequence[Record], out: Emitter) -> None:
        for r in records:
            kind = self.tags[r.topic]
            try:  # the poison rule: what does not decode is a dead letter here
                _DECODE[kind](r.value)
            except Exception as exc:
                out.dead_letter(r, reason(exc), "decode")
                continue
            out.send(self.dst, r.key, kind + r.value)


class AlarmBoardOp:
    name = "alarm-board"

    def __init__(self, service: "AlarmService"):
        self.svc = service
        self.src = service.t(ALARM_IN)
        self.state: KeyedState | None = None

    def inputs(self) -> list[str]:
        return [self.src]

    def restore_mode(self) -> Restore:
        return Restore.changelog()

    def open(self, partition: int, state: KeyedState) -> None:
        svc = self.svc
        with svc.lock:
            svc.board.alarms.clear()
            svc.board.points.clear()
            svc.kinds.clear()
            for key, value in state.items():
                load_entry(svc, key, value)
        self.state = state
        if len(state):
            log.info("alarm board: restored %d record(s) from its changelog", len(state))
        svc.ready.set()

    def close(self, partition: int) -> None:
        self.state = None
        self.svc.ready.clear()
        with self.svc.lock:
            self.svc.board.alarms.clear()
            self.svc.board.points.clear()
            self.svc.kinds.clear()

    def process(self, records: Sequence[Record], out: Emitter) -> None:
        for r in records:
            kind, body = r.value[:1], r.value[1:]
            try:
                self.svc.on_input(kind, body, out)
            except Exception as exc:  # the poison rule
                log.exception("alarm board failed on a %r record", kind)
                out.dead_letter(r, reason(exc), "process")

    def tick(self, now_ns: int, out: Emitter) -> None:
        if self.svc.wall_clock and self.state is not None:
            self.svc.advance(now_ns, out)

    def write(self, changed_alarms: dict[str, Alarm | None],
              changed_points: dict[str, PointState | None], out: Emitter) -> None:
        """The keys a change touched: to the changelog and to plant.alarm_states."""
        svc, st = self.svc, self.state
        for aid, a in changed_alarms.items():
            key = f"alarm:{aid}".encode()
            value = None if a is None else orjson.dumps({"alarm": asdict(a),
                                                         "kind": svc.kinds.get(aid, "")})
            _put(st, key, value)
            out.send(svc.t(aa.STATES_TOPIC), key, value)  # type: ignore[arg-type]
        for point, p in changed_points.items():
            key = f"point:{point}".encode()
            value = None if p is None else orjson.dumps({"point": point, "state": asdict(p)})
            _put(st, key, value)
            out.send(svc.t(aa.STATES_TOPIC), key, value)  # type: ignore[arg-type]
        if st is not None:
            st[b"now"] = str(svc.board.now).encode()


def _put(st: KeyedState | None, key: bytes, value: bytes | None) -> None:
    if st is None:
        return
    if value is None:
        if key in st:
            del st[key]
    else:
        st[key] = value


def load_entry(svc: "AlarmService", key: bytes, value: bytes) -> None:
    """One changelog record back into the board (the caller holds the lock)."""
    if key == b"now":
        svc.board.now = max(svc.board.now, int(value))
        return
    obj = orjson.loads(value)
    if key.startswith(b"alarm:"):
        a = Alarm(**obj["alarm"])
        svc.board.alarms[a.alert_id] = a
        svc.kinds[a.alert_id] = obj.get("kind", "")
        svc.board.now = max(svc.board.now, a.last_ts)
    elif key.startswith(b"point:"):
        svc.board.points[obj["point"]] = PointState(**obj["state"])
