"""Notifications against real receivers on 127.0.0.1: an aiosmtpd SMTP server, an aiohttp
HTTP receiver, and a real Prometheus Alertmanager built from the Go module proxy by
`scripts/build-gotool alertmanager` (skipped, saying why, only when it cannot be built)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from tocsin.connectors.notify_send import Notifier
from tocsin.detectors.notify_routing import NS, NotifyConfig
from tocsin.errors import ServiceError
from tocsin.services.kafka import free_port
from tocsin.services.prometheus import provision

pytestmark = pytest.mark.integration


def alarm(aid, asset="pump-1", sev="critical", active=True):
    return {"alert_id": aid, "asset": asset, "severity": sev, "fault_type": "mechanical",
            "kind": "fusion", "point": f"{asset} mechanical", "opened_ts": time.time_ns(),
            "message": f"{asset}: mechanical fault likely", "active": active}


class Receiver:
    """An HTTP server that records every JSON body POSTed to it."""

    def __init__(self):
        self.bodies: list = []
        self.port = free_port()

    async def __aenter__(self):
        app = web.Application()

        async def hook(request):
            self.bodies.append(await request.json())
            return web.json_response({"ok": True})
        app.router.add_post("/{tail:.*}", hook)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc):
        await self.runner.cleanup()


async def test_webhook_and_email_with_grouping_and_rate_limit():
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Message

    mails = []

    class Keep(Message):
        def handle_message(self, message):
            mails.append(message)

    smtp_port = free_port()
    smtp = Controller(Keep(), hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    try:
        async with Receiver() as rx:
            cfg = NotifyConfig.model_validate({
                "receivers": [
                    {"name": "hook", "webhook": {"url": f"http://127.0.0.1:{rx.port}/tocsin"},
                     "max_per_window": 2, "window_s": 3600},
                    {"name": "mail", "email": {"to": ["shift@plant.example"],
                                               "smtp_port": smtp_port}}],
                "routes": [
                    {"receivers": ["mail"], "min_severity": "critical", "group_wait_s": 0,
                     "continue": True},
                    {"receivers": ["hook"], "assets": ["pump-*"], "group_wait_s": 0,
                     "group_by": ["alert_id"]}]})
            n = Notifier(cfg)
            t0 = time.time_ns()
            for i in range(3):
                n.on_alarm(alarm(f"pump-1:a{i}"), t0)
            n.on_alarm(alarm("press-1:b0", asset="press-1", sev="warning"), t0)  # no route
            sent = await n.tick(t0)
            assert sorted(x.receiver for x in sent) == ["hook", "hook", "mail"]
            assert n.planner.rate_limited == 1  # the third alarm waits for the hook's limit
            n.on_alarm(alarm("pump-1:a0", active=False), t0 + NS)
            await n.tick(t0 + 400 * NS)  # after the group interval, the mail group resolves
            await n.close()
            assert n.errors == [] and n.sender.failed == 0
            assert len(rx.bodies) == 2
            assert {b["firing"][0]["alert_id"] for b in rx.bodies} == {"pump-1:a0",
                                                                       "pump-1:a1"}
            assert rx.bodies[0]["version"] == "tocsin.notification/1"
            await asyncio.sleep(0.2)
            assert len(mails) == 2
            assert mails[0]["To"] == "shift@plant.example"
            assert "3 firing" in mails[0]["Subject"] and "critical" in mails[0]["Subject"]
            body = mails[0].get_payload()
            assert "pump-1:a0" in body and "pump-1:a2" in body
            assert "1 resolved" in mails[1]["Subject"]
    finally:
        smtp.stop()


async def test_a_dead_receiver_is_reported_by_name_and_does_not_stop_the_others():
    async with Receiver() as rx:
        cfg = NotifyConfig.model_validate({
            "receivers": [{"name": "dead", "webhook": {"url": f"http://127.0.0.1:{free_port()}/"}},
                          {"name": "live", "webhook": {"url": f"http://127.0.0.1:{rx.port}/"}}],
            "routes": [{"receivers": ["dead", "live"], "group_wait_s": 0}]})
        n = Notifier(cfg)
        n.on_alarm(alarm("pump-1:z"), time.time_ns())
        await n.tick(time.time_ns())
        await n.close()
        assert len(rx.bodies) == 1 and len(n.errors) == 1 and "'dead'" in n.errors[0]


def _alertmanager() -> str:
    if shutil.which("go") is None and not Path("/usr/local/go/bin/go").exists():
        pytest.skip("Alertmanager test skipped: no Go toolchain to build it "
                    "(scripts/build-gotool alertmanager needs Go)")
    try:
        return str(provision("alertmanager") / "alertmanager")
    except ServiceError as exc:
        pytest.skip(f"Alertmanager test skipped: the build failed: {str(exc)[-400:]}")


@pytest.mark.timeout(1500)  # builds Alertmanager first if .ci/run has not (minutes, once)
async def test_forwarding_to_a_real_alertmanager(tmp_path):
    binary = _alertmanager()
    async with Receiver() as rx:
        port = free_port()
        (tmp_path / "am.yml").write_text(
            "route:\n  receiver: hook\n  group_by: [asset]\n  group_wait: 1s\n"
            "  group_interval: 1s\n  repeat_interval: 1h\n"
            f"receivers:\n  - name: hook\n    webhook_configs:\n"
            f"      - url: http://127.0.0.1:{rx.port}/am\n        send_resolved: true\n")
        am = subprocess.Popen(
            [binary, f"--config.file={tmp_path / 'am.yml'}",
             f"--storage.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
             "--cluster.listen-address=", "--log.level=warn"],
            stdout=open(tmp_path / "am.log", "wb"), stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            async with aiohttp.ClientSession() as s:
                for _ in range(100):
                    try:
                        async with s.get(f"{base}/-/ready") as r:
                            if r.status == 200:
                                break
                    except aiohttp.ClientError:
                        pass
                    await asyncio.sleep(0.1)
                else:
                    pytest.fail("alertmanager not ready: " + (tmp_path / "am.log").read_text())
                cfg = NotifyConfig.model_validate({
                    "receivers": [{"name": "am", "alertmanager": {"url": base}}],
                    "routes": [{"receivers": ["am"], "group_wait_s": 0, "group_interval_s": 0,
                                "group_by": ["alert_id"]}]})
                n = Notifier(cfg)
                n.on_alarm(alarm("pump-1:fa11"), time.time_ns())
                await n.tick(time.time_ns())
                assert n.errors == []
                async with s.get(f"{base}/api/v2/alerts") as r:
                    alerts = await r.json()
                assert [a["labels"]["alert_id"] for a in alerts] == ["pump-1:fa11"]
                assert alerts[0]["labels"]["severity"] == "critical"
                assert alerts[0]["labels"]["alertname"] == "pump-1 mechanical"
                assert alerts[0]["status"]["state"] == "active"
                for _ in range(100):  # Alertmanager's own webhook: it routed our alert
                    if rx.bodies:
                        break
                    await asyncio.sleep(0.1)
                assert rx.bodies and rx.bodies[0]["alerts"][0]["labels"]["asset"] == "pump-1"
                n.on_alarm(alarm("pump-1:fa11", active=False), time.time_ns())
                await n.tick(time.time_ns())
                await n.close()
                async with s.get(f"{base}/api/v2/alerts?active=true") as r:
                    assert await r.json() == []  # resolved by our endsAt
        finally:
            am.terminate()
            am.wait(10)
