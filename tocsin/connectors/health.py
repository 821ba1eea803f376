"""Liveness, readiness and ``/metrics`` on one small HTTP port, for every long-running process.

One port because Kubernetes probes and Prometheus scrape the same container port, and
prometheus-client's own server serves nothing but ``/metrics``.

- ``/healthz`` (liveness): the process's event loop still ticks, i.e. the last
  :meth:`Health.beat` is younger than ``stale_s``. A wedged loop is what a restart cures; a
  broker that is down is not (restarting the worker would not bring Kafka back), so liveness
  never looks at dependencies.
- ``/readyz`` (readiness): every registered check passes (joined the consumer group, connector
  session up, model loaded, ...). Failing readiness takes a pod out of rotation and holds a
  rolling upgrade, without a restart.
- ``/metrics``: the Prometheus text format of the default registry.

The server runs in a daemon thread, so it still answers (with 503) while the loop is stuck.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

log = logging.getLogger(__name__)

# a check returns True/None when fine, or False / a reason string when not
Check = Callable[[], "bool | str | None"]


class Health:
    """Heartbeat and readiness checks of one process (thread-safe enough: reads of floats and
    dict snapshots; checks are called from the HTTP thread and must not block)."""

    def __init__(self, component: str = "tocsin", stale_s: float = 30.0):
        self.component = component
        self.stale_s = stale_s
        self.started = time.monotonic()
        self._last_beat: float | None = None
        self._checks: dict[str, Check] = {}

    def beat(self) -> None:
        self._last_beat = time.monotonic()

    def add_check(self, name: str, check: Check) -> None:
        self._checks[name] = check

    def live(self) -> tuple[bool, dict]:
        if self._last_beat is None:  # no loop reports beats (yet): answering is being alive
            age = time.monotonic() - self.started
            return True, {"component": self.component, "heartbeat": None,
                          "uptime_s": round(age, 1)}
        age = time.monotonic() - self._last_beat
        ok = age <= self.stale_s
        return ok, {"component": self.component, "heartbeat_age_s": round(age, 2),
                    "stale_after_s": self.stale_s}

    def ready(self) -> tuple[bool, dict]:
        results: dict[str, str] = {}
        ok = True
        for name, check in list(self._checks.items()):
            try:
                r = check()
            except Exception as exc:  # a failing check is a failed check, not a 500
                r = f"{type(exc).__name__}: {exc}"
            if r is True or r is None:
                results[name] = "ok"
            else:
                ok = False
                results[name] = r if isinstance(r, str) else "failing"
        live_ok, live = self.live()
        if not live_ok:
            ok = False
            results["heartbeat"] = f"no heartbeat for {live['heartbeat_age_s']} s"
        return ok, {"component": self.component, "checks": results}


HEALTH = Health()  # the process's instance; commands name it with configure()


def configure(component: str, stale_s: float = 30.0) -> Health:
    HEALTH.component = component
    HEALTH.stale_s = stale_s
    return HEALTH


async def heartbeat(health: Health = HEALTH, every_s: float = 1.0) -> None:
    """Beat while the event loop runs (start it as a task of the process's loop)."""
    import asyncio

    while True:
        health.beat()
        await asyncio.sleep(every_s)


def _handler(health: Health) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            path = self.path.split("?", 1)[0].rstrip("/") or "/"
            if path == "/metrics":
                self._send(200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST)
            elif path in ("/healthz", "/livez"):
                ok, body = health.live()
                self._json(ok, body)
            elif path == "/readyz":
                ok, body = health.ready()
                self._json(ok, body)
            else:
                self._send(404, b"try /healthz, /readyz or /metrics\n", "text/plain")

        def _json(self, ok: bool, body: dict) -> None:
            body = {"status": "ok" if ok else "fail", **body}
            self._send(200 if ok else 503, orjson.dumps(body) + b"\n", "application/json")

        def _send(self, code: int, data: bytes, ctype: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, fmt: str, *args) -> None:  # probes every few seconds: no log
            pass

    return Handler


def serve(port: int, host: str = "127.0.0.1", health: Health = HEALTH) -> ThreadingHTTPServer | None:
    """Serve /healthz, /readyz and /metrics on host:port in a daemon thread; 0 = off."""
    if not port:
        return None
    server = ThreadingHTTPServer((host, port), _handler(health))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="tocsin-health", daemon=True).start()
    log.info("health and metrics on http://%s:%d (/healthz /readyz /metrics)", host, port)
    return server
