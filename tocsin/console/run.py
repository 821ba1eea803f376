"""Start the console: the alarm-state service, the notifier and the web app in one process."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tocsin.detectors.alarm_states import BoardConfig
from tocsin.detectors.notify_routing import NotifyConfig
from tocsin.errors import ConfigError

log = logging.getLogger("tocsin.console")


class AlarmsConfig(BaseModel):
    """The alarms YAML: ISA-18.2 settings (``states``) and ``notifications``."""

    model_config = ConfigDict(extra="forbid")
    states: BoardConfig = Field(default_factory=BoardConfig)
    notifications: NotifyConfig = Field(default_factory=NotifyConfig)


def load_alarms_config(path: str | Path | None) -> AlarmsConfig:
    if path is None:
        return AlarmsConfig()
    try:
        raw = yaml.safe_load(Path(path).read_text()) or {}
        return AlarmsConfig.model_validate(raw)
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    except ValidationError as exc:
        e = exc.errors()[0]
        raise ConfigError(f"{path}: {'.'.join(map(str, e['loc']))}: {e['msg']}") from exc


@dataclass
class ConsoleOptions:
    broker: str
    prefix: str = ""
    host: str = "127.0.0.1"
    port: int = 8600
    users_file: str | None = None
    alarms_config: str | None = None
    proxy_header: str | None = None
    proxy_role_header: str | None = None
    trusted_proxies: tuple[str, ...] = ("127.0.0.1", "::1")
    influx: tuple[str, str, str, str] | None = None  # url, token, org, bucket
    wall_clock: bool = True


def build(opts: ConsoleOptions):
    """(console, service): the service is started; call service.stop() when done."""
    from tocsin.connectors.notify_send import Notifier
    from tocsin.console.app import Console
    from tocsin.console.auth import Auth, load_users
    from tocsin.streams.alarm_service import AlarmService

    cfg = load_alarms_config(opts.alarms_config)
    users = load_users(opts.users_file)
    if not users.users and not opts.proxy_header:
        raise ConfigError("no users: add one with `tocsin console add-user NAME --role "
                          "operator` (or pass --proxy-header behind a trusted proxy)")
    notifier = Notifier(cfg.notifications, log) if cfg.notifications.routes else None
    service = AlarmService(opts.broker, opts.prefix, cfg.states, notifier=notifier,
                           wall_clock=opts.wall_clock)
    service.start()
    history = None
    if opts.influx:
        from tocsin.connectors.history import History

        history = History(*opts.influx)
    auth = Auth(users, proxy_header=opts.proxy_header,
                proxy_role_header=opts.proxy_role_header,
                trusted_proxies=frozenset(opts.trusted_proxies))
    console = Console(service, auth, history)
    return console, service


def run(opts: ConsoleOptions) -> None:
    from aiohttp import web

    console, service = build(opts)
    app = console.app()

    async def notify_loop(app):
        async def loop():
            while True:
                await asyncio.sleep(1.0)
                await service.notifier.tick(time.time_ns())
        if service.notifier is not None:
            app["notify"] = asyncio.create_task(loop())

    async def stop(app):
        if "notify" in app:
            app["notify"].cancel()
            await service.notifier.close()
        await asyncio.get_running_loop().run_in_executor(None, service.stop)

    app.on_startup.append(notify_loop)
    app.on_cleanup.append(stop)
    log.info("console on http://%s:%d (topics %s*)", opts.host, opts.port, opts.prefix)
    print(f"tocsin console: http://{opts.host}:{opts.port}/", flush=True)
    web.run_app(app, host=opts.host, port=opts.port, print=None, access_log=None)
