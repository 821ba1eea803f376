"""The payment feeds as :class:`tocsin.connectors.base.Source` implementations.

- :class:`PaymentsFeedSource`: the ISO 8583 TCP listener and the HTTP JSON endpoint of
  :mod:`tocsin.connectors.payments_ingest`, the same handlers (framing, answers, field-named
  refusals), with the records handed to the consumer through an :class:`Inbox` instead of
  straight to Kafka. A peer is answered once the consumer is done with its transaction.
- :class:`PaymentsCsvSource`: a labeled transaction CSV (the training format of
  :mod:`tocsin.connectors.payments_data`) replayed in event time, optionally paced.

`tocsin payments ingest` keeps its own Kafka-acknowledging publisher; these adapters are the
protocol view used by the registry, the contract test and embedders.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tocsin.connectors.inbox import Inbox
from tocsin.contracts.payments import Transaction
from tocsin.errors import ConnectorError, TocsinError


class PaymentsFeedConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = "payments-feed"
    host: str = "127.0.0.1"
    iso_port: int | None = Field(8583, ge=0, lt=65536, description="None: off; 0: any free")
    http_port: int | None = Field(8080, ge=0, lt=65536, description="None: off; 0: any free")
    queue: int = Field(1000, gt=0, description="transactions waiting for the consumer")

    @model_validator(mode="after")
    def _one_listener(self) -> "PaymentsFeedConfig":
        if self.iso_port is None and self.http_port is None:
            raise ValueError("iso_port and http_port are both off: nothing to listen on")
        return self


class _InboxPublisher:
    """What serve_iso/http_app call (TxnPublisher's interface), feeding an Inbox."""

    def __init__(self, inbox: Inbox[Transaction]):
        self.inbox = inbox

    @property
    def accepted(self) -> int:
        return self.inbox.accepted

    @property
    def rejected(self) -> int:
        return self.inbox.rejected

    async def publish(self, txns: list[Transaction]) -> None:
        await self.inbox.put(txns)

    async def dead_letter(self, source: str, payload: bytes, error: str) -> None:
        res = self.inbox.reject(source, payload, error)
        if asyncio.iscoroutine(res):
            await res


class PaymentsFeedSource:
    """ISO 8583 and/or HTTP listeners yielding :class:`Transaction` records."""

    def __init__(self, config: PaymentsFeedConfig, *, key: bytes | None = None,
                 on_reject=None):
        self.config = config
        self.name = f"{config.name}@{config.host}"
        self.inbox: Inbox[Transaction] = Inbox(self.name, config.queue, on_reject=on_reject)
        self._key = key
        self._iso: asyncio.Server | None = None
        self._runner: Any = None  # aiohttp's AppRunner, imported lazily
        self.iso_port: int | None = None
        self.http_port: int | None = None

    async def start(self) -> None:
        from aiohttp import web

        from tocsin.connectors.payments_ingest import http_app, serve_iso, token_key

        cfg = self.config
        self.inbox.bind()
        pub: Any = _InboxPublisher(self.inbox)  # duck-types TxnPublisher
        where = "iso_port"
        try:
            if cfg.iso_port is not None:
                self._iso = await serve_iso(pub, cfg.host, cfg.iso_port,
                                            self._key or token_key())
                self.iso_port = self._iso.sockets[0].getsockname()[1]
            if cfg.http_port is not None:
                where = "http_port"
                self._runner = web.AppRunner(http_app(pub), access_log=None)
                await self._runner.setup()
                await web.TCPSite(self._runner, cfg.host, cfg.http_port).start()
                self.http_port = self._runner.addresses[0][1]
        except OSError as exc:
            await self.close()
            raise ConnectorError(f"{self.name}: {where} {getattr(cfg, where)}: cannot listen "
                                 f"({exc.strerror or exc})") from exc

    def records(self) -> AsyncIterator[Transaction]:
        return self.inbox.records()

    async def close(self) -> None:
        self.inbox.close()
        if self._iso is not None:
            self._iso.close()
            self._iso = None
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()


class PaymentsCsvConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = "payments-csv"
    path: Path = Field(description="labeled transaction CSV (see payments_data)")
    speed: float = Field(0.0, ge=0, description="event-time pace: 1 real time, 0 as fast as "
                                                "the consumer takes them")
    source: str = "csv"

    @field_validator("path")
    @classmethod
    def _exists(cls, v: Path) -> Path:
        if not Path(v).is_file():
            raise ValueError(f"no such file {str(v)!r}")
        return v


class PaymentsCsvSource:
    """A transaction CSV replayed in event-time order (labels are not records here)."""

    def __init__(self, config: PaymentsCsvConfig):
        self.config = config
        self.name = f"{config.name}:{config.path.name}"
        self._txns: list[Transaction] | None = None

    async def start(self) -> None:
        from tocsin.connectors.payments_data import read_csv

        try:
            txns, _labels, _y = await asyncio.to_thread(read_csv, self.config.path)
        except TocsinError as exc:
            raise ConnectorError(f"{self.name}: {exc}") from exc
        for t in txns:
            t.source = t.source or self.config.source
        self._txns = sorted(txns, key=lambda t: t.ts)

    async def records(self) -> AsyncIterator[Transaction]:
        if self._txns is None:
            raise ConnectorError(f"{self.name}: start() first")
        loop = asyncio.get_running_loop()
        t0_wall, t0_ev = loop.time(), (self._txns[0].ts if self._txns else 0)
        for t in self._txns:
            if self.config.speed > 0:
                due = t0_wall + (t.ts - t0_ev) / 1e9 / self.config.speed
                await asyncio.sleep(max(0.0, due - loop.time()))
            yield t

    async def close(self) -> None:
        self._txns = None
