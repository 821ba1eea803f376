"""OPC UA source: subscribe to node ids (asyncua client, subscriptions, not polling) and cut
the data changes into one readings frame per asset per frame interval.

Config (YAML)::

    endpoint: opc.tcp://127.0.0.1:4840/tocsin/
    publishing_interval_ms: 100
    assets:
      pump-1:
        bearing_temp: "ns=2;s=pump-1.bearing_temp"
        vibration_rms: {node_id: "ns=2;s=pump-1.vibration_rms"}
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from pathlib import Path

from asyncua import Client, ua
from pydantic import BaseModel, ConfigDict, Field, field_validator

from tocsin.configfile import load_model
from tocsin.contracts.readings import ReadingsFrame
from tocsin.errors import ConfigError, ConnectorError

log = logging.getLogger(__name__)
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class NodeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    node_id: str

    @field_validator("node_id")
    @classmethod
    def _parse(cls, v: str) -> str:
        try:
            ua.NodeId.from_string(v)
        except Exception as exc:  # asyncua raises several types for bad strings
            raise ValueError(f"not an OPC UA node id: {v!r}") from exc
        return v


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
    assets: dict[str, dict[str, NodeConfig | str]]

    def nodes(self) -> list[tuple[str, str, str]]:
        out = []
        for asset, tags in self.assets.items():
            for tag, node in tags.items():
                nid = node if isinstance(node, str) else node.node_id
                try:
                    ua.NodeId.from_string(nid)
                except Exception as exc:
                    raise ConfigError(f"asset {asset!r} tag {tag!r}: not an OPC UA node id: "
                                      f"{nid!r}") from exc
                out.append((asset, tag, nid))
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

    async def start(self) -> None:
        """Connect and subscribe; the first connection must work (a wrong endpoint is an
        error at start-up), later losses are healed by :meth:`frames`."""
        try:
            await self._connect()
        except (OSError, asyncio.TimeoutError, ua.UaError) as exc:
            raise ConnectorError(f"{self.name}: cannot connect ({exc!r})") from exc

    async def _connect(self) -> None:
        cfg = self.config
        self.client = Client(cfg.endpoint, timeout=cfg.timeout_s)
        await self.client.connect()
        self.bad_nodes.clear()
        triples = cfg.nodes()
        nodes = [self.client.get_node(nid) for _, _, nid in triples]
        by_node = {n.nodeid: (a, t) for n, (a, t, _) in zip(nodes, triples)}
        self._collector = _Collector(by_node)
        sub = await self.client.create_subscription(cfg.publishing_interval_ms, self._collector)
        results = await sub.subscribe_data_change(nodes)
        for (asset, tag, nid), res in zip(triples, results):
            if isinstance(res, ua.StatusCode):
                self.bad_nodes[f"{asset}.{tag}"] = f"{nid}: {res.name}"
                log.error("%s: asset %s tag %s node %s rejected by server: %s; skipping it, "
                          "the other tags keep flowing", self.name, asset, tag, nid, res.name)
        if len(self.bad_nodes) == len(triples):
            raise ConnectorError(f"{self.name}: the server rejected every configured node: "
                                 f"{self.bad_nodes}")

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
        delay = 0.5
        self.reconnects += 1
        while True:
            await self.close()
            try:
                await self._connect()
                log.info("%s: reconnected and re-subscribed", self.name)
                return
            except Exception as exc:  # OSError, timeouts, UaError: the server is still away
                log.warning("%s: server unreachable (%r); retrying in %.1fs", self.name, exc,
                            delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.config.backoff_max_s)

    async def frames(self) -> AsyncIterator[ReadingsFrame]:
        assert self._collector is not None, "start() first"
        period = self.config.frame_interval_ms / 1000
        last_check = time.monotonic()
        while True:
            await asyncio.sleep(period)
            if time.monotonic() - last_check >= self.config.check_interval_s:
                last_check = time.monotonic()
                if not await self._alive():
                    log.warning("%s: connection lost; reconnecting", self.name)
                    for f in self._cut():  # what arrived before the loss is kept
                        yield f
                    await self._reconnect()
            for f in self._cut():
                yield f

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
