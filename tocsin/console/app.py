"""The web console: one aiohttp process, server-sent events, a page of vanilla JavaScript.

Why this stack: aiohttp is already installed (Faust runs on it), is well kept, and serves
both the JSON API and a long-lived SSE stream from one asyncio loop; SSE is one-way, plain
HTTP, and reconnects by itself, which is all a live alarm list needs (actions are ordinary
POSTs); vanilla JS means no build step and no CDN, for control-room PCs without internet.
The alarm states live in the in-process :class:`~tocsin.streams.alarm_service.AlarmService`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import orjson
from aiohttp import web

from tocsin.console.auth import Auth, Identity
from tocsin.contracts.alarm_actions import ACTION_NAMES, AlarmAction
from tocsin.detectors.alarm_states import AlarmActionError
from tocsin.errors import TocsinError

log = logging.getLogger("tocsin.console")
STATIC = Path(__file__).parent / "static"
NS = 1_000_000_000
IDENT = web.AppKey("ident", dict)


def _json(obj, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS, default=str),
                        status=status, content_type="application/json")


class Console:
    def __init__(self, service, auth: Auth, history=None):
        """``history``: a tocsin.connectors.history.History for trends and the report."""
        self.service, self.auth, self.history = service, auth, history
        self.queues: set[asyncio.Queue] = set()
        self.loop: asyncio.AbstractEventLoop | None = None
        self._alarms_pending = False

    # ------------------------------------------------------------------ plumbing
    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth_mw])
        r = app.router
        r.add_get("/login", self.login_page)
        r.add_post("/login", self.login)
        r.add_post("/logout", self.logout)
        r.add_get("/", self.index)
        r.add_get("/healthz", self.health)
        r.add_get("/api/me", self.me)
        r.add_get("/api/alarms", self.alarms)
        r.add_post("/api/alarms/{alert_id}/{action}", self.act)
        r.add_get("/api/audit", self.audit)
        r.add_get("/api/assets", self.assets)
        r.add_get("/api/trend/{alert_id}", self.trend)
        r.add_get("/api/review", self.review_list)
        r.add_post("/api/review/{txn_id}/{verdict}", self.review)
        r.add_get("/api/report", self.report)
        r.add_get("/api/events", self.events)
        r.add_static("/static", STATIC)
        app.on_startup.append(self._startup)
        return app

    async def health(self, request) -> web.Response:
        return _json({"ok": True})

    async def alarms(self, request) -> web.Response:
        return _json(self.service.view())

    async def audit(self, request) -> web.Response:
        return _json(list(self.service.audit)[::-1])

    async def review_list(self, request) -> web.Response:
        return _json(self.service.review_queue())

    async def _startup(self, app) -> None:
        self.loop = asyncio.get_running_loop()
        self.service.listeners.append(self._from_service)

    def _from_service(self, kind: str, payload) -> None:  # called from the Kafka threads
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self._fanout, kind, payload)

    def _fanout(self, kind: str, payload) -> None:
        if kind == "alarms":  # coalesce bursts into one list per 100 ms
            if self._alarms_pending:
                return
            self._alarms_pending = True
            asyncio.get_running_loop().call_later(0.1, self._flush_alarms)
            return
        if kind == "review":
            payload = self.service.review_queue()
        self._put(kind, payload)

    def _flush_alarms(self) -> None:
        self._alarms_pending = False
        self._put("alarms", self.service.view())

    def _put(self, kind: str, payload) -> None:
        for q in list(self.queues):
            if q.full():
                q.get_nowait()  # a slow tab loses old updates, never blocks the others
            q.put_nowait((kind, payload))

    @web.middleware
    async def _auth_mw(self, request: web.Request, handler):
        if request.path in ("/login", "/healthz") or request.path.startswith("/static/"):
            return await handler(request)
        ident = (self.auth.from_proxy(request.remote, request.headers)
                 or self.auth.from_cookie(request.cookies.get(Auth.COOKIE)))
        if ident is None:
            if request.path.startswith("/api/"):
                return _json({"error": "not logged in"}, 401)
            raise web.HTTPFound("/login")
        if request.method == "POST" and request.path.startswith("/api/") and \
                request.headers.get("X-Tocsin") != "1":
            return _json({"error": "missing X-Tocsin header (cross-site request?)"}, 403)
        request["ident"] = ident
        return await handler(request)

    # ------------------------------------------------------------------ pages
    async def login_page(self, request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "login.html")

    async def login(self, request) -> web.Response:
        form = await request.post()
        ident = await asyncio.get_running_loop().run_in_executor(
            None, self.auth.login, str(form.get("user", "")), str(form.get("password", "")))
        if ident is None:
            log.warning("failed login for %r from %s", form.get("user"), request.remote)
            raise web.HTTPFound("/login?failed=1")
        resp = web.HTTPFound("/")
        resp.set_cookie(Auth.COOKIE, self.auth.cookie(ident), httponly=True, samesite="Strict",
                        max_age=int(self.auth.session_s))
        log.info("login: %s (%s)", ident.user, ident.role)
        raise resp

    async def logout(self, request) -> web.Response:
        resp = web.HTTPFound("/login")
        resp.del_cookie(Auth.COOKIE)
        raise resp

    async def index(self, request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html")

    async def me(self, request) -> web.Response:
        i: Identity = request["ident"]
        return _json({"user": i.user, "role": i.role,
                      "may": [a for a in (*ACTION_NAMES, "label") if i.may(a)]})

    # ------------------------------------------------------------------ actions
    async def act(self, request) -> web.Response:
        i: Identity = request["ident"]
        action, aid = request.match_info["action"], request.match_info["alert_id"]
        if action not in ACTION_NAMES:
            return _json({"error": f"unknown action {action!r}"}, 404)
        if not i.may(action):
            return _json({"error": f"{i.role} may not {action}"}, 403)
        body = await request.json() if request.can_read_body else {}
        now = time.time_ns()
        until = None
        if action == "shelve":
            try:
                until = now + int(float(body.get("minutes", 0)) * 60 * NS)
            except (TypeError, ValueError):
                return _json({"error": "minutes must be a number"}, 400)
        req = AlarmAction(action, aid, i.user, now, str(body.get("reason", "")), until,
                          i.role, "console")
        try:
            await asyncio.get_running_loop().run_in_executor(None, self.service.submit, req)
        except AlarmActionError as exc:
            return _json({"error": str(exc)}, 409)
        return _json({"accepted": True, "action": action, "alert_id": aid})

    async def review(self, request) -> web.Response:
        i: Identity = request["ident"]
        if not i.may("label"):
            return _json({"error": f"{i.role} may not label transactions"}, 403)
        verdict = request.match_info["verdict"]
        if verdict not in ("fraud", "legit"):
            return _json({"error": "verdict is fraud or legit"}, 404)
        try:
            out = await asyncio.get_running_loop().run_in_executor(
                None, self.service.label, request.match_info["txn_id"], verdict == "fraud",
                i.user)
        except AlarmActionError as exc:
            return _json({"error": str(exc)}, 409)
        return _json(out)

    # ------------------------------------------------------------------ views
    async def assets(self, request) -> web.Response:
        s = self.service
        with s.lock:
            names = sorted(set(s.scores) | set(s.fusion))
            return _json({a: {"scores": s.scores.get(a), "fusion": s.fusion.get(a)}
                          for a in names})

    async def trend(self, request) -> web.Response:
        aid = request.match_info["alert_id"]
        alarm = next((a for a in self.service.view() if a["alert_id"] == aid), None)
        if alarm is None:
            return _json({"error": f"{aid} is not listed"}, 404)
        if self.history is None:
            return _json({"error": "no InfluxDB configured (--influx-url)"}, 503)
        from tocsin.connectors.alarm_history import iso

        before = float(request.query.get("before", 120)) * NS
        after = float(request.query.get("after", 60)) * NS
        start, stop = iso(int(alarm["opened_ts"] - before)), iso(int(alarm["last_ts"] + after)
                                                                  + NS)
        try:
            rows = await asyncio.get_running_loop().run_in_executor(
                None, lambda: self.history.readings(alarm["asset"], start=start, stop=stop))
        except Exception as exc:  # influx down or refusing: say so, keep the console up
            return _json({"error": f"InfluxDB: {type(exc).__name__}: {exc}"}, 503)
        return _json({"asset": alarm["asset"], "opened_ts": alarm["opened_ts"],
                      "rows": [{"t": int(r["time"].timestamp() * 1000), "tag": r["tag"],
                                "v": r["value"]} for r in rows]})

    async def report(self, request) -> web.Response:
        from tocsin.connectors.alarm_history import from_influx, parse_time
        from tocsin.detectors.alarm_performance import ReportConfig, compute_report

        now = time.time_ns()
        try:
            t0 = parse_time(request.query.get("from", "-24h"), now)
            t1 = parse_time(request.query.get("to", "now"), now)
            ops = int(request.query.get("operators", 1))
            if request.query.get("source") == "influx":
                if self.history is None:
                    return _json({"error": "no InfluxDB configured (--influx-url)"}, 503)
                recs = await asyncio.get_running_loop().run_in_executor(
                    None, from_influx, self.history, t0, t1)
            else:
                with self.service.lock:
                    recs = list(self.service.history)
            rep = compute_report(recs, t0, t1, ReportConfig(operators=ops))
        except (TocsinError, ValueError) as exc:
            return _json({"error": str(exc)}, 400)
        return _json({**rep.to_dict(), "verdicts": rep.verdicts()})

    async def events(self, request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-cache",
                                           "X-Accel-Buffering": "no"})
        await resp.prepare(request)
        q: asyncio.Queue = asyncio.Queue(maxsize=200)
        self.queues.add(q)
        try:
            await _sse(resp, "alarms", self.service.view())
            while True:
                try:
                    kind, payload = await asyncio.wait_for(q.get(), 15)
                except asyncio.TimeoutError:
                    await resp.write(b": keep-alive\n\n")
                    continue
                await _sse(resp, kind, payload)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.queues.discard(q)
        return resp


async def _sse(resp: web.StreamResponse, kind: str, payload) -> None:
    data = orjson.dumps(payload, option=orjson.OPT_NON_STR_KEYS, default=str)
    await resp.write(b"event: " + kind.encode() + b"\ndata: " + data + b"\n\n")


def serve(console: Console, host: str, port: int) -> None:
    """Run until Ctrl-C (the alarm service is started and stopped by the caller)."""
    web.run_app(console.app(), host=host, port=port, print=None, access_log=None)
