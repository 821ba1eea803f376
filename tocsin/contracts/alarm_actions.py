"""Operator actions on alarms and their audit trail (ISA-18.2 states, issue 18).

``plant.alarm_actions`` (key = alert id): requests from consoles and the CLI (ack, shelve,
unshelve, reset, comment, remove_from_service, return_to_service). The alarm-state service
owns the states; it applies each request in topic order and answers on ``plant.alarm_audit``
(key = alarm point) with one record per change: who, when, why, from and to which state,
including the system's own actions (auto-unshelve, designed suppression) and rejected
requests. ``plant.alarm_states`` (compacted, key = alert id) holds each listed alarm's
current state, a tombstone when it leaves the list.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import orjson

from tocsin.contracts import topics
from tocsin.contracts._codec import check_schema, loads
from tocsin.contracts._codec import field as get_field
from tocsin.errors import SchemaError

ACTION = "tocsin.alarm_action"
AUDIT = "tocsin.alarm_audit"
VERSION = 1
ACTIONS_TOPIC, AUDIT_TOPIC, STATES_TOPIC = (topics.ALARM_ACTIONS, topics.ALARM_AUDIT,
                                            topics.ALARM_STATES)
ACTION_NAMES = ("ack", "shelve", "unshelve", "reset", "comment", "remove_from_service",
                "return_to_service")


@dataclass(slots=True)
class AlarmAction:
    action: str
    alert_id: str
    user: str
    ts: int  # ns, wall clock of the request
    reason: str = ""
    until_ts: int | None = None  # shelve: when it ends by itself
    role: str = ""  # the requester's role as the console saw it (for the trail)
    origin: str = ""  # console | cli | ...

    def encode(self) -> bytes:
        return orjson.dumps({"schema": f"{ACTION}/{VERSION}", **asdict(self)})

    @classmethod
    def decode(cls, data: bytes) -> "AlarmAction":
        obj = loads(data, ACTION)
        check_schema(obj, ACTION, VERSION)
        action = get_field(obj, "action", str, ACTION)
        if action not in ACTION_NAMES:
            raise SchemaError(f"{ACTION}: field 'action' must be one of "
                              f"{', '.join(ACTION_NAMES)}; got {action!r}")
        until = obj.get("until_ts")
        if until is not None and (not isinstance(until, int) or isinstance(until, bool)):
            raise SchemaError(f"{ACTION}: field 'until_ts' must be int or null")
        return cls(action, get_field(obj, "alert_id", str, ACTION),
                   get_field(obj, "user", str, ACTION), get_field(obj, "ts", int, ACTION),
                   str(obj.get("reason") or ""), until, str(obj.get("role") or ""),
                   str(obj.get("origin") or ""))


@dataclass(slots=True)
class AuditRecord:
    action: str  # an ACTION_NAMES entry, suppress/unsuppress, or rejected
    alert_id: str  # "" for a point-wide record with no episode listed
    point: str
    user: str  # the operator, or "system"
    ts: int  # ns, event time of the change
    reason: str
    from_state: str
    to_state: str
    asset: str = ""
    role: str = ""
    origin: str = ""

    def encode(self) -> bytes:
        return orjson.dumps({"schema": f"{AUDIT}/{VERSION}", **asdict(self)})

    @classmethod
    def decode(cls, data: bytes) -> "AuditRecord":
        obj = loads(data, AUDIT)
        check_schema(obj, AUDIT, VERSION)
        s = {k: get_field(obj, k, str, AUDIT) for k in ("action", "alert_id", "point", "user",
                                                         "reason", "from_state", "to_state")}
        return cls(**s, ts=get_field(obj, "ts", int, AUDIT), asset=str(obj.get("asset") or ""),
                   role=str(obj.get("role") or ""), origin=str(obj.get("origin") or ""))
