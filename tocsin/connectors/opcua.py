"""OPC UA source: subscribe to node ids (asyncua client; or poll servers without
subscriptions) and cut the values into one readings frame per asset per frame interval.
Connection losses are healed with backoff, re-creating the subscription.

Config (YAML)::

    endpoint: opc.tcp://127.0.0.1:4840/tocsin/
    mode: subscribe                  # or poll (poll_interval_ms)
    publishing_interval_ms: 100
    security:                        # optional; mode Sign or SignAndEncrypt
      policy: Basic256Sha256
      mode: SignAndEncrypt
      certificate: client-cert.der   # the client's certificate and private key
      private_key: client-key.pem
      server_certificate: server-cert.der   # optional: pin the server's certificate
    username: operator               # optional
    password: secret
    assets:
      pump-1:
        bearing_temp: "ns=2;s=pump-1.bearing_temp"
        vibration_rms: {node_id: "ns=2;s=pump-1.vibration_rms", sampling_interval_ms: 50,
                        queue_size: 10, deadband: 0.05}
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from asyncua import Client, ua
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tocsin.config.yamlfile import load_model
from tocsin.connectors.backoff import Backoff
from tocsin.connectors.opcua_security import warn_if_insecure
from tocsin.contracts.readings import ReadingsFrame
from tocsin.errors import ConfigError, ConnectorError

log = logging.getLogger(__name__)
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class NodeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    node_id: str
    sampling_interval_ms: float | None = Field(None, ge=0, description="default: publishing")
    queue_size: int = Field(0, ge=0, description="server-side queue per item (0: 1)")
    deadband: float | None = Field(None, ge=0, description="absolute deadband")

    @field_validator("node_id")
    @classmethod
    def _parse(cls, v: str) -> str:
        try:
            ua.NodeId.from_string(v)
        except Exception as exc:  # asyncua raises several types for bad strings
            raise ValueError(f"not an OPC UA node id: {v!r}") from exc
        return v


class SecurityConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    policy: Literal["Basic256Sha256", "Aes128Sha256RsaOaep", "Aes256Sha256RsaPss"] = \
        "Basic256Sha256"
    mode: Literal["Sign", "SignAndEncrypt"] = "SignAndEncrypt"
    certificate: Path
    private_key: Path
    server_certificate: Path | None = None

    @model_validator(mode="after")
    def _files(self) -> "SecurityConfig":
        for name in ("certificate", "private_key", "server_certificate"):
            f = getattr(self, name)
            if f is not None and not Path(f).is_file():
                raise ValueError(f"security.{name}: no such file {str(f)!r}")
        return self


class OpcUaConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    endpoint: str = Field(pattern=r"^opc\.tcp://")
    name: str = "opcua"
    publishing_interval_ms: float = Field(100.0, gt=0)
    # how often buffered data changes are cut into frames; short, so a frame waits little
    # beyond the server's publishing interval
    frame_interval_ms: float = Field(20.0, gt=0)
    timeout_s: float = Field(10.0, gt=0)
    check_interval_s: float = Field(1.0, gt=0, description="connection check period")
    backoff_max_s: float = Field(30.0, gt=0, description="longest wait between reconnects")
    mode: Literal["subscribe", "poll"] = "subscribe"
    poll_interval_ms: float = Field(1000.0, gt=0)
    security: SecurityConfig | None = None
    username: str | None = None
    password: str | None = None
    assets: dict[str, dict[str, NodeConfig | str]]

    @model_validator(mode="after")
    def _check(self) -> "OpcUaConfig":
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together")
        try:
            self.node_configs()  # node ids given as plain strings are checked here
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return self

    def nodes(self) -> list[tuple[str, str, str]]:
        return [(a, t, n.node_id) for a, t, n in self.node_configs()]

    def node_configs(self) -> list[tuple[str, str, NodeConfig]]:
        out = []
        for asset, tags in self.assets.items():
            for tag, node in tags.items():
                try:
                    nc = NodeConfig(node_id=node) if isinstance(node, str) else node
                except ValueError as exc:
                    raise ConfigError(f"asset {asset!r} tag {tag!r}: not an OPC UA node id: "
                                      f"{node!r}") from exc
                out.append((asset, tag, nc))
        return out


def load_opcua_config(path: str | Path) -> OpcUaConfig:
    cfg = load_model(path, OpcUaConfig)
    cfg.nodes()
    return cfg


def _ts_ns(dt: datetime | None) -> int:
    if dt is None:
        dt = datetime.now(timezone.utc)
    elif dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    delta = dt - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def _quality(status: ua.StatusCode | None) -> int:
    if status is None or status.is_good():
        return 0
    return 1 if status.is_uncertain() else 2


class _Collector:
    """asyncua subscription handler: buffers data changes per asset."""

    def __init__(self, by_node: dict[ua.NodeId, tuple[str, str]]):
        self.by_node = by_node
        self.buffers: dict[str, list] = defaultdict(list)
        self.status_problem: str | None = None

    def datachange_notification(self, node, val, data) -> None:
        asset, tag = self.by_node[node.nodeid]
        dv = data.monitored_item.Value
        try:
            value = float(val) if val is not None else None
        except (TypeError, ValueError):
            value = None
        q = _quality(dv.StatusCode_ if hasattr(dv, "StatusCode_") else dv.StatusCode)
        if value is None:
            q = 2
        self.buffers[asset].append((tag, _ts_ns(dv.SourceTimestamp or dv.ServerTimestamp),
                                    value, q))

    def status_change_notification(self, status) -> None:
        self.status_problem = str(status)


class OpcUaSource:
    """Implements :class:`tocsin.connectors.base.Source` for one OPC UA server."""

    def __init__(self, config: OpcUaConfig):
        self.config = config
        self.name = f"{config.name}@{config.endpoint}"
        self.client: Client | None = None
        self.bad_nodes: dict[str, str] = {}
        self._collector: _Collector | None = None
        self._seq = 0
        self.reconnects = 0
        self._nodes: list = []

    async def start(self) -> None:
        """Connect and subscribe; the first connection must work (a wrong endpoint is an
        error at start-up), later losses are healed by :meth:`frames`."""
        cfg = self.config
        warn_if_insecure(self.name, cfg.endpoint, cfg.security.mode if cfg.security else None,
                         cfg.password is not None)
        try:
            await self._connect()
        except (OSError, asyncio.TimeoutError, ua.UaError) as exc:
            raise ConnectorError(f"{self.name}: cannot connect ({exc!r})") from exc

    async def _connect(self) -> None:
        cfg = self.config
        self.client = Client(cfg.endpoint, timeout=cfg.timeout_s)
        if cfg.security is not None:
            from asyncua.crypto import security_policies as sp

            sec = cfg.security
            policy = getattr(sp, f"SecurityPolicy{sec.policy}")
            await self.client.set_security(
                policy, certificate=str(sec.certificate), private_key=str(sec.private_key),
                server_certificate=str(sec.server_certificate) if sec.server_certificate
                else None, mode=getattr(ua.MessageSecurityMode, sec.mode))
        if cfg.username is not None:
            self.client.set_user(cfg.username)
            self.client.set_password(cfg.password)
        await self.client.connect()
        self.bad_nodes.clear()
        triples = cfg.node_configs()
        nodes = [self.client.get_node(nc.node_id) for _, _, nc in triples]
        by_node = {n.nodeid: (a, t) for n, (a, t, _) in zip(nodes, triples)}
        self._collector = _Collector(by_node)
        self._nodes = list(zip(nodes, triples))
        if cfg.mode == "poll":
            await self._check_nodes_by_read()
            return
        sub = await self.client.create_subscription(cfg.publishing_interval_ms, self._collector)
        # one monitored-item request per distinct (sampling, queue, deadband) setting
        groups: dict[tuple, list] = defaultdict(list)
        for node, (asset, tag, nc) in self._nodes:
            sampling = (nc.sampling_interval_ms if nc.sampling_interval_ms is not None
                        else cfg.publishing_interval_ms)
            groups[(sampling, nc.queue_size, nc.deadband)].append((node, asset, tag, nc))
        for (sampling, queue, deadband), items in groups.items():
            group_nodes = [n for n, *_ in items]
            if deadband:
                results = await sub.deadband_monitor(group_nodes, deadband, 1, queue)
            else:
                results = await sub.subscribe_data_change(group_nodes, queuesize=queue,
                                                          sampling_interval=sampling)
            if not isinstance(results, list):
                results = [results]
            for (_, asset, tag, nc), res in zip(items, results):
                if isinstance(res, ua.StatusCode):
                    self._bad(asset, tag, nc.node_id, res.name)
        if len(self.bad_nodes) == len(triples):
            raise ConnectorError(f"{self.name}: the server rejected every configured node: "
                                 f"{self.bad_nodes}")

    def _bad(self, asset: str, tag: str, nid: str, why: str) -> None:
        self.bad_nodes[f"{asset}.{tag}"] = f"{nid}: {why}"
        log.error("%s: asset %s tag %s node %s rejected by server: %s; skipping it, the other "
                  "tags keep flowing", self.name, asset, tag, nid, why)

    async def _check_nodes_by_read(self) -> None:
        values = await self.client.read_attributes([n for n, _ in self._nodes])
        keep = []
        for (node, (asset, tag, nc)), dv in zip(self._nodes, values):
            status = dv.StatusCode_ if hasattr(dv, "StatusCode_") else dv.StatusCode
            if status is not None and status.is_bad():
                self._bad(asset, tag, nc.node_id, status.name)
            else:
                keep.append((node, (asset, tag, nc)))
        if not keep:
            raise ConnectorError(f"{self.name}: every configured node is bad: {self.bad_nodes}")
        self._nodes = keep

    async def _poll_once(self) -> None:
        col = self._collector
        values = await self.client.read_attributes([n for n, _ in self._nodes])
        now = time.time_ns()
        for (_node, (asset, tag, _)), dv in zip(self._nodes, values):
            status = dv.StatusCode_ if hasattr(dv, "StatusCode_") else dv.StatusCode
            try:
                v = float(dv.Value.Value) if dv.Value is not None else None
            except (TypeError, ValueError):
                v = None
            q = _quality(status) if v is not None else 2
            ts = _ts_ns(dv.SourceTimestamp) if dv.SourceTimestamp else now
            col.buffers[asset].append((tag, ts, v, q))

    async def _alive(self) -> bool:
        try:
            await self.client.check_connection()
            return self._collector is not None and not self._lost()
        except Exception:
            return False

    def _lost(self) -> bool:
        status = self._collector.status_problem if self._collector else None
        return bool(status) and "Good" not in status

    async def _reconnect(self) -> None:
        """Reconnect with exponential backoff and re-create the subscription."""
        backoff = Backoff.up_to(self.config.backoff_max_s)
        self.reconnects += 1
        while True:
            await self.close()
            try:
                await self._connect()
                log.info("%s: reconnected and re-subscribed", self.name)
                return
            except Exception as exc:  # OSError, timeouts, UaError: the server is still away
                delay = backoff.next_delay()
                log.warning("%s: server unreachable (%r); retrying in %.1fs", self.name, exc,
                            delay)
                await asyncio.sleep(delay)

    async def frames(self) -> AsyncIterator[ReadingsFrame]:
        assert self._collector is not None, "start() first"
        polling = self.config.mode == "poll"
        period = (self.config.poll_interval_ms if polling else self.config.frame_interval_ms)
        period /= 1000
        last_check = time.monotonic()
        while True:
            await asyncio.sleep(period)
            if polling:
                try:
                    await self._poll_once()
                except Exception as exc:  # connection trouble: the check below heals it
                    log.warning("%s: poll failed: %r", self.name, exc)
                    last_check = 0.0
            if time.monotonic() - last_check >= self.config.check_interval_s:
                last_check = time.monotonic()
                if not await self._alive():
                    log.warning("%s: connection lost; reconnecting", self.name)
                    for f in self._cut():  # what arrived before the loss is kept
                        yield f
                    await self._reconnect()
            for f in self._cut():
                yield f

    def records(self) -> AsyncIterator[ReadingsFrame]:
        """The Source protocol's name for :meth:`frames`."""
        return self.frames()

    def _cut(self) -> list[ReadingsFrame]:
        col = self._collector
        if col is None or not col.buffers:
            return []
        ready, col.buffers = col.buffers, defaultdict(list)
        out = []
        for asset, samples in ready.items():
            self._seq += 1
            out.append(ReadingsFrame.from_samples(asset, samples, source=self.config.endpoint,
                                                  seq=self._seq))
        return out

    async def close(self) -> None:
        if self.client is not None:
            try:
                await self.client.disconnect()
            except Exception:  # the server may already be gone
                pass
            self.client = None
