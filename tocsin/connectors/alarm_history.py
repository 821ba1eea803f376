"""Alarm histories for `tocsin alarms report`: from InfluxDB's ``alerts`` measurement or from a
JSONL file of ``tocsin.alert/1`` events (one per line, as `tocsin alerts tail --json`-style
dumps or a recording of the ``plant.alerts`` topic write them)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path

from tocsin.contracts.alerts import Alert
from tocsin.detectors.alarm_performance import AlarmRecord, alarm_point
from tocsin.errors import SchemaError, TocsinError

_REL = re.compile(r"^-(\d+(?:\.\d+)?)(s|m|h|d|w)$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_time(v: str, now_ns: int | None = None) -> int:
    """ns since the epoch from RFC 3339 (``2026-01-01T06:00:00Z``), ``now`` or ``-24h``."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    if v in ("now", "now()"):
        return now_ns
    m = _REL.match(v)
    if m:
        return now_ns - int(float(m.group(1)) * _UNIT[m.group(2)] * 1e9)
    try:
        dt = datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        raise TocsinError(f"not a time: {v!r} (RFC 3339, 'now' or a duration like -24h)") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp()) * 10**9 + dt.microsecond * 1000


def iso(ns: int) -> str:
    return datetime.fromtimestamp(ns // 10**9, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def from_alerts(alerts: Iterable[Alert]) -> Iterator[AlarmRecord]:
    for a in alerts:
        d = a.details or {}
        yield AlarmRecord(ts=a.source_ts, alert_id=a.alert_id,
                          point=alarm_point(a.asset, a.kind, a.rule, a.tag),
                          event=a.event.value, severity=a.severity.value,
                          opened_ts=a.opened_ts, state=str(d.get("state") or ""))


def from_jsonl(path: str | Path, errors: list[str] | None = None) -> list[AlarmRecord]:
    """Records of a JSONL file; undecodable lines go to ``errors`` (line number and reason)."""
    out: list[Alert] = []
    with open(path, "rb") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                out.append(Alert.decode(line))
            except SchemaError as exc:
                if errors is None:
                    raise TocsinError(f"{path}:{n}: {exc}") from exc
                errors.append(f"{path}:{n}: {exc}")
    return list(from_alerts(out))


def from_influx(history, start_ns: int, stop_ns: int) -> list[AlarmRecord]:
    """Records from a :class:`tocsin.connectors.history.History` (``alerts`` measurement). The
    measurement has no ISA-18.2 state, so shelved raises count as annunciated there."""
    rows = history.alerts(start=iso(start_ns), stop=iso(stop_ns + 10**9))
    out = []
    for r in rows:
        t = r["time"]
        ts = int(t.timestamp()) * 10**9 + t.microsecond * 1000 if hasattr(t, "timestamp") \
            else int(t)
        out.append(AlarmRecord(ts=ts, alert_id=r.get("alert_id") or "",
                               point=alarm_point(r.get("asset") or "", r.get("kind") or "",
                                                 r.get("rule") or "", r.get("tag") or ""),
                               event=r.get("event") or "", severity=r.get("severity") or "",
                               opened_ts=int(r.get("opened_ts") or ts)))
    return out
