"""Send planned notifications: webhook (JSON POST), email (SMTP) and Prometheus Alertmanager
(``POST /api/v2/alerts``). The planning (routes, groups, limits) is pure, in
:mod:`tocsin.detectors.notify_routing`; this is the I/O, with errors that name the receiver.

Alertmanager gets one alert per Tocsin alarm: labels ``alertname`` (the alarm point), asset,
severity, fault_type, kind and alert_id; a resolved alarm is posted with ``endsAt`` now.
Alertmanager then does its own grouping and routing; the route's repeat interval should be
shorter than its ``resolve_timeout`` (default 5 min) so that firing alarms stay firing there.
"""

from __future__ import annotations

import asyncio
import os
import smtplib
from datetime import datetime, timezone
from email.message import EmailMessage

import aiohttp
import orjson

from tocsin.detectors.notify_routing import NS, Notification, NotifyConfig, Receiver
from tocsin.errors import ServiceError


def _rfc3339(ns: int) -> str:
    return datetime.fromtimestamp(ns / NS, timezone.utc).isoformat().replace("+00:00", "Z")


def webhook_body(n: Notification) -> dict:
    return {"version": "tocsin.notification/1", "receiver": n.receiver, "kind": n.kind,
            "group": list(n.group), "ts": n.ts, "firing": n.firing, "resolved": n.resolved}


def email_message(n: Notification, r: Receiver) -> EmailMessage:
    m = EmailMessage()
    worst = max((a.get("severity", "info") for a in n.firing), default="resolved",
                key=lambda s: {"info": 0, "warning": 1, "critical": 2}.get(s, -1))
    m["Subject"] = (f"[tocsin {worst}] {len(n.firing)} firing, {len(n.resolved)} resolved: "
                    f"{' '.join(n.group)}")
    m["From"] = r.email.sender
    m["To"] = ", ".join(r.email.to)
    lines = [f"{n.kind} notification at {_rfc3339(n.ts)}", ""]
    lines += [f"FIRING   {a.get('severity', ''):8} {a['alert_id']}  {a.get('message', '')}"
              for a in n.firing]
    lines += [f"RESOLVED {a.get('severity', ''):8} {a['alert_id']}  {a.get('message', '')}"
              for a in n.resolved]
    m.set_content("\n".join(lines) + "\n")
    return m


def alertmanager_alerts(n: Notification, generator_url: str = "") -> list[dict]:
    def one(a: dict, resolved: bool) -> dict:
        labels = {"alertname": a.get("point") or a["alert_id"], "alert_id": a["alert_id"],
                  "asset": a.get("asset", ""), "severity": a.get("severity", ""),
                  "fault_type": a.get("fault_type") or "", "kind": a.get("kind", ""),
                  "source": "tocsin"}
        out = {"labels": {k: v for k, v in labels.items() if v},
               "annotations": {"summary": a.get("message", "")},
               "startsAt": _rfc3339(a.get("opened_ts") or n.ts)}
        if generator_url:
            out["generatorURL"] = generator_url
        if resolved:
            out["endsAt"] = _rfc3339(n.ts)
        return out
    return [one(a, False) for a in n.firing] + [one(a, True) for a in n.resolved]


class Sender:
    """One aiohttp session for every HTTP receiver; SMTP runs in a thread (smtplib)."""

    def __init__(self, config: NotifyConfig):
        self.receivers = {r.name: r for r in config.receivers}
        self._session: aiohttp.ClientSession | None = None
        self.sent = 0
        self.failed = 0

    async def send(self, n: Notification) -> None:
        r = self.receivers[n.receiver]
        try:
            if r.webhook is not None:
                await self._post(r.webhook.url, webhook_body(n), r.webhook.timeout_s)
            elif r.alertmanager is not None:
                url = r.alertmanager.url.rstrip("/") + "/api/v2/alerts"
                await self._post(url, alertmanager_alerts(n, r.alertmanager.generator_url), 10)
            else:
                await asyncio.get_running_loop().run_in_executor(None, self._smtp, r, n)
            self.sent += 1
        except (aiohttp.ClientError, OSError, smtplib.SMTPException, asyncio.TimeoutError) as exc:
            self.failed += 1
            raise ServiceError(f"receiver {r.name!r}: {type(exc).__name__}: {exc}") from exc

    async def _post(self, url: str, body, timeout: float) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        async with self._session.post(url, data=orjson.dumps(body),
                                      headers={"Content-Type": "application/json"},
                                      timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            if resp.status >= 300:
                text = (await resp.text())[:200]
                raise aiohttp.ClientResponseError(resp.request_info, (), status=resp.status,
                                                  message=f"{url}: {text}")

    @staticmethod
    def _smtp(r: Receiver, n: Notification) -> None:
        e = r.email
        with smtplib.SMTP(e.smtp_host, e.smtp_port, timeout=10) as s:
            if e.starttls:
                s.starttls()
            if e.username:
                s.login(e.username, os.environ.get(e.password_env or "", ""))
            s.send_message(email_message(n, r))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class Notifier:
    """Planner + sender: feed it alarm news with :meth:`on_alarm`; :meth:`tick` sends what is
    due. A failed send is logged and counted; the group is not retried at once (its next
    interval or repeat sends it again), so a dead receiver cannot stall the others."""

    def __init__(self, config: NotifyConfig, log=None):
        from tocsin.detectors.notify_routing import NotifyPlanner

        self.planner = NotifyPlanner(config)
        self.sender = Sender(config)
        self.log = log
        self.errors: list[str] = []

    def on_alarm(self, alarm: dict, ts: int) -> None:
        self.planner.on_alarm(alarm, ts)

    async def tick(self, ts: int) -> list[Notification]:
        due = self.planner.due(ts)
        for n in due:
            try:
                await self.sender.send(n)
            except ServiceError as exc:
                self.errors = (self.errors + [str(exc)])[-20:]
                if self.log is not None:
                    self.log.warning("notification not sent: %s", exc)
        return due

    async def close(self) -> None:
        await self.sender.close()


def load_notify_config(path) -> NotifyConfig:
    """A YAML file with ``receivers`` and ``routes`` (see docs/operators.md)."""
    import yaml
    from pydantic import ValidationError

    from tocsin.errors import ConfigError

    try:
        with open(path) as f:
            raw = yaml.safe_load(f) or {}
        return NotifyConfig.model_validate(raw.get("notifications", raw))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        raise ConfigError(f"{path}: notifications.{where}: {first['msg']}") from exc
