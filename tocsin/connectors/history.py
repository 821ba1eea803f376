"""Queries for users: readings, alerts and the raw window around an alert, from InfluxDB.

The same code serves `tocsin history` and Python callers::

    from tocsin.connectors.history import History
    h = History.from_env()
    rows = h.readings("pump-1", ["bearing_temp"], start="-1h", every="10s")
    window = h.around_alert("pump-1:223eb2732953d0873105", before="2m", after="1m")
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import datetime

from influxdb_client import InfluxDBClient

from tocsin.config.influx_security import load_influx_security
from tocsin.errors import TocsinError

_DUR = re.compile(r"^-?\d+(ns|us|ms|s|m|h|d|w)$")
_FNS = {"mean", "min", "max", "last", "first", "sum", "count", "median"}


def _time(v: str) -> str:
    """A Flux time: a relative duration (-1h) or an RFC 3339 time."""
    if _DUR.match(v) or v == "now()":
        return v
    try:
        datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        raise TocsinError(f"not a time: {v!r} (use -1h style durations or RFC 3339)") from None
    return f"time(v: {v!r})".replace("'", '"')


def _str(v: str) -> str:
    return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass
class History:
    url: str
    token: str
    org: str
    bucket: str

    @classmethod
    def from_env(cls) -> "History":
        return cls(os.environ.get("TOCSIN_INFLUX_URL", "http://127.0.0.1:8086"),
                   load_influx_security().token_value() or "",
                   os.environ.get("TOCSIN_INFLUX_ORG", "tocsin"),
                   os.environ.get("TOCSIN_INFLUX_BUCKET", "tocsin"))

    def query(self, flux: str) -> list[dict]:
        kw = load_influx_security().client_kwargs(self.url, self.token)
        with InfluxDBClient(**kw, org=self.org, timeout=30_000) as client:
            tables = client.query_api().query(flux, org=self.org)
        return [r.values for t in tables for r in t.records]

    def readings(self, asset: str, tags: list[str] | None = None, *, start: str = "-1h",
                 stop: str = "now()", every: str | None = None, fn: str = "mean",
                 rollup: bool = False) -> list[dict]:
        """Rows of time, asset, tag, value (aggregated per `every` window with `fn`)."""
        if fn not in _FNS:
            raise TocsinError(f"aggregate must be one of {sorted(_FNS)}, not {fn!r}")
        if every is not None and not _DUR.match(every):
            raise TocsinError(f"window must be a duration like 10s or 1m, not {every!r}")
        bucket = f"{self.bucket}_1m" if rollup else self.bucket
        flt = f'r._measurement == "readings" and r._field == "value" and r.asset == {_str(asset)}'
        if tags:
            flt += " and (" + " or ".join(f"r.tag == {_str(t)}" for t in tags) + ")"
        flux = (f'from(bucket: {_str(bucket)}) |> range(start: {_time(start)}, '
                f'stop: {_time(stop)}) |> filter(fn: (r) => {flt})')
        if every:
            flux += f" |> aggregateWindow(every: {every}, fn: {fn}, createEmpty: false)"
        rows = self.query(flux)
        return sorted(({"time": r["_time"], "asset": r["asset"], "tag": r["tag"],
                        "value": r["_value"]} for r in rows), key=lambda d: (d["time"], d["tag"]))

    def alerts(self, asset: str | None = None, *, start: str = "-24h",
               stop: str = "now()") -> list[dict]:
        flt = 'r._measurement == "alerts"'
        if asset:
            flt += f" and r.asset == {_str(asset)}"
        flux = (f'from(bucket: {_str(self.bucket)}) |> range(start: {_time(start)}, '
                f'stop: {_time(stop)}) |> filter(fn: (r) => {flt}) |> pivot(rowKey: ["_time"], '
                'columnKey: ["_field"], valueColumn: "_value")')
        rows = self.query(flux)
        keep = ("_time", "asset", "tag", "rule", "kind", "severity", "event", "value", "limit",
                "alert_id", "message", "opened_ts")
        out = [{("time" if k == "_time" else k): r.get(k) for k in keep} for r in rows]
        return sorted(out, key=lambda d: (d["time"], d["alert_id"] or ""))

    def around_alert(self, alert_id: str, *, before: str = "2m", after: str = "1m",
                     start: str = "-30d") -> dict:
        """The raw readings of the alert's asset from `before` the episode opened to
        `after` its last event, with the alert's events: one call."""
        events = [a for a in self.alerts(start=start) if a["alert_id"] == alert_id]
        if not events:
            raise TocsinError(f"no alert {alert_id!r} in the history since {start}")
        asset = events[0]["asset"]
        t0 = min(e["opened_ts"] for e in events)
        t1 = max(int(e["time"].timestamp() * 1e9) for e in events)
        b, a = _ns(before), _ns(after)
        to_iso = lambda ns: datetime.utcfromtimestamp(ns / 1e9).isoformat() + "Z"  # noqa: E731
        rows = self.readings(asset, start=to_iso(t0 - b), stop=to_iso(t1 + a))
        return {"alert_id": alert_id, "asset": asset, "events": events, "readings": rows}


def _ns(d: str) -> int:
    m = re.match(r"^(\d+)(ms|s|m|h|d)$", d)
    if not m:
        raise TocsinError(f"not a duration: {d!r}")
    return int(m.group(1)) * {"ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9,
                              "d": 86400 * 10**9}[m.group(2)]
