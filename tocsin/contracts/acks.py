"""Operator acknowledgements (topic ``plant.alerts.acks``, keyed by alert id).

An ack is a request, not a state change: the fusion worker owns the alert's lifecycle and
answers a valid ack with an ``acknowledged`` event on ``plant.alerts``. Keying by alert id
keeps every ack of one alert in order on one partition.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from tocsin.contracts._codec import check_schema, loads
from tocsin.contracts._codec import field as get_field
from tocsin.contracts.strict import check_id

NAME = "tocsin.ack"
VERSION = 1


@dataclass(slots=True)
class Ack:
    alert_id: str
    user: str
    ts: int  # ns, when the operator acknowledged (wall clock of the CLI)
    note: str = ""

    def encode(self) -> bytes:
        return orjson.dumps({"schema": f"{NAME}/{VERSION}", "alert_id": self.alert_id,
                             "user": self.user, "ts": self.ts, "note": self.note})

    @classmethod
    def decode(cls, data: bytes) -> "Ack":
        obj = loads(data, NAME)
        check_schema(obj, NAME, VERSION)
        alert_id = check_id(get_field(obj, "alert_id", str, NAME), "alert_id", NAME)
        return cls(alert_id=alert_id,
                   user=check_id(get_field(obj, "user", str, NAME), "user", NAME),
                   ts=get_field(obj, "ts", int, NAME), note=str(obj.get("note") or ""))
