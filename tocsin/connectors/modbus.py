"""Modbus/TCP source (pymodbus, async): poll groups of tags per device, coalesced reads,
retries with backoff, and errors counted and logged with the device and tag, never stopping
the other devices.

Config (YAML)::

    name: line-2
    devices:
      - name: pump-plc
        host: 127.0.0.1
        port: 5020
        unit_id: 1
        asset: pump-1              # default asset of the device's tags
        timeout_s: 1.0
        retries: 2
        max_registers_per_read: 125
        max_gap: 0
        groups:
          - interval_ms: 100
            tags:
              - {name: bearing_temp, table: holding, address: 0, type: float32, order: ABCD}
              - {name: motor_current, table: input, address: 0, type: uint16, scale: 0.1}
              - {name: running, table: coil, address: 0, type: bit}
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from tocsin.config.yamlfile import load_model
from tocsin.connectors.backoff import Backoff
from tocsin.connectors.modbus_codec import (
    BIT_TABLES,
    ReadRequest,
    Span,
    compile_decoder,
    decode,
    plan_reads,
    width,
)
from tocsin.contracts.readings import ReadingsFrame

log = logging.getLogger(__name__)


class TagMap(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    asset: str | None = None
    table: Literal["holding", "input", "coil", "discrete"] = "holding"
    address: int = Field(ge=0, le=65535)
    type: Literal["int16", "uint16", "int32", "uint32", "int64", "uint64", "float32",
                  "float64", "string", "bit"] = "uint16"
    order: Literal["ABCD", "CDAB", "BADC", "DCBA"] = "ABCD"
    length: int = Field(0, ge=0, le=125, description="registers, for type string")
    bit: int | None = Field(None, ge=0, le=15, description="bit of a register, type bit")
    scale: float = 1.0
    offset: float = 0.0

    @model_validator(mode="after")
    def _check(self) -> "TagMap":
        if self.table in BIT_TABLES and self.type != "bit":
            raise ValueError(f"tag {self.name!r}: table {self.table} holds bits; type must "
                             "be bit")
        if self.type == "bit" and self.table not in BIT_TABLES and self.bit is None:
            raise ValueError(f"tag {self.name!r}: a bit in a register needs 'bit' (0-15)")
        if self.type == "string" and not self.length:
            raise ValueError(f"tag {self.name!r}: type string needs 'length' (registers)")
        return self

    @property
    def count(self) -> int:
        return 1 if self.table in BIT_TABLES else width(self.type, self.length)


class PollGroup(BaseModel):
    model_config = ConfigDict(extra="forbid")
    interval_ms: float = Field(1000.0, gt=0)
    tags: list[TagMap]


class DeviceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    host: str
    port: int = Field(502, gt=0, lt=65536)
    unit_id: int = Field(1, ge=0, le=255)
    asset: str | None = None
    timeout_s: float = Field(1.0, gt=0)
    retries: int = Field(2, ge=0)
    backoff_max_s: float = Field(30.0, gt=0)
    max_registers_per_read: int = Field(125, ge=1, le=125)
    max_gap: int = Field(0, ge=0)
    groups: list[PollGroup]

    @model_validator(mode="after")
    def _check(self) -> "DeviceConfig":
        seen = set()
        for g in self.groups:
            for t in g.tags:
                if (t.asset or self.asset) is None:
                    raise ValueError(f"tag {t.name!r}: no asset (set it on the tag or the "
                                     "device)")
                key = (t.asset or self.asset, t.name)
                if key in seen:
                    raise ValueError(f"tag {t.name!r} of asset {key[0]!r} is mapped twice")
                seen.add(key)
        return self


class ModbusConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = "modbus"
    devices: list[DeviceConfig]


def load_modbus_config(path: str | Path) -> ModbusConfig:
    return load_model(path, ModbusConfig)


@dataclass
class DeviceStats:
    polls: int = 0
    reads: int = 0
    reconnects: int = 0
    by_tag: dict[str, int] = field(default_factory=dict)  # failed reads per tag


def _count(st: DeviceStats, req: ReadRequest) -> bool:
    """Count a failed read per tag; say whether to log it (1st, 10th, 100th, ... time), so a
    dead register polled 10 times a second does not flood the log."""
    for s in req.tags:
        st.by_tag[s.name] = st.by_tag.get(s.name, 0) + 1
    n = st.by_tag[req.tags[0].name]
    return n < 10 and n == 1 or str(n).rstrip("0") == "1"


_READERS = {"holding": "read_holding_registers", "input": "read_input_registers",
            "coil": "read_coils", "discrete": "read_discrete_inputs"}


class ModbusSource:
    """Implements :class:`tocsin.connectors.base.Source` for a set of Modbus/TCP devices."""

    def __init__(self, config: ModbusConfig):
        self.config = config
        self.name = f"modbus:{config.name}"
        self.stats = {d.name: DeviceStats() for d in config.devices}
        self._queue: asyncio.Queue[ReadingsFrame] = asyncio.Queue(maxsize=10000)
        self._tasks: list[asyncio.Task] = []
        self._clients: dict[str, AsyncModbusTcpClient] = {}
        self._seq = 0
        self._closing = False
        self._decoders: dict[int, object] = {}

    async def start(self) -> None:
        for dev in self.config.devices:
            client = AsyncModbusTcpClient(dev.host, port=dev.port, timeout=dev.timeout_s,
                                          retries=dev.retries, reconnect_delay=0)
            self._clients[dev.name] = client
            for g in dev.groups:
                tags = {t.name: t for t in g.tags}
                plan = plan_reads([Span(t.table, t.address, t.count, t.name) for t in g.tags],
                                  max_registers=dev.max_registers_per_read, max_gap=dev.max_gap)
                self._tasks.append(asyncio.create_task(
                    self._poll_group(dev, client, g, tags, plan),
                    name=f"modbus:{dev.name}:{g.interval_ms}ms"))

    async def _connect(self, dev: DeviceConfig, client: AsyncModbusTcpClient) -> None:
        """Connect, retrying with exponential backoff until it works (or we are cancelled)."""
        backoff = Backoff.up_to(dev.backoff_max_s)
        st = self.stats[dev.name]
        while not client.connected:
            why = "connection refused or timed out"
            try:
                await client.connect()
            except Exception as exc:  # pymodbus raises several types on refusal
                why = repr(exc)
            if client.connected:
                st.reconnects += 1
                log.info("modbus device %s (%s:%d) connected", dev.name, dev.host, dev.port)
                return
            delay = backoff.next_delay()
            log.warning("modbus device %s (%s:%d) unreachable (%s); retrying in %.1fs",
                        dev.name, dev.host, dev.port, why, delay)
            await asyncio.sleep(delay)

    async def _poll_group(self, dev: DeviceConfig, client, group: PollGroup,
                          tags: dict[str, TagMap], plan: list[ReadRequest]) -> None:
        """Supervise one poll loop: an unexpected error is logged with the device and the
        loop restarts after a pause, so one device's trouble never silently stops it."""
        while not self._closing:
            try:
                await self._poll_loop(dev, client, group, tags, plan)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("modbus device %s: poll loop failed; restarting in 1s", dev.name)
                client.close()
                await asyncio.sleep(1.0)

    async def _poll_loop(self, dev: DeviceConfig, client, group: PollGroup,
                         tags: dict[str, TagMap], plan: list[ReadRequest]) -> None:
        period = group.interval_ms / 1000.0
        st = self.stats[dev.name]
        nxt = time.monotonic()
        while not self._closing:
            if not client.connected:
                await self._connect(dev, client)
            ts = time.time_ns()
            samples: dict[str, list] = {}
            for req in list(plan):
                values = await self._read(dev, client, req, st)
                if values is None and len(req.tags) > 1 and client.connected:
                    # one bad address must not take its neighbours down: read this
                    # request's tags one by one from now on, so only the bad one fails
                    log.warning("modbus device %s: splitting the read of %s into single-tag "
                                "reads to find the bad address", dev.name,
                                ", ".join(t.name for t in req.tags))
                    i = plan.index(req)
                    singles = [ReadRequest(s.table, s.address, s.count, (s,)) for s in req.tags]
                    plan[i:i + 1] = singles
                    for one in singles:
                        vals = await self._read(dev, client, one, st)
                        self._collect(dev, tags, one, vals, ts, samples)
                    continue
                self._collect(dev, tags, req, values, ts, samples)
            st.polls += 1
            for asset, s in samples.items():
                self._seq += 1
                await self._queue.put(ReadingsFrame.from_samples(
                    asset, s, source=f"modbus://{dev.host}:{dev.port}/{dev.unit_id}",
                    seq=self._seq))
            nxt += period
            now = time.monotonic()
            if nxt < now:  # overran: skip the missed cycles rather than burst
                nxt = now + period
            await asyncio.sleep(nxt - now)

    def _collect(self, dev: DeviceConfig, tags: dict[str, TagMap], req: ReadRequest,
                 values: list | None, ts: int, samples: dict[str, list]) -> None:
        raw = None
        if values is not None and req.table not in BIT_TABLES:
            raw = struct.pack(f">{len(values)}H", *values)  # the whole read, once
        for span in req.tags:
            t = tags[span.name]
            asset = t.asset or dev.asset
            if values is None:
                samples.setdefault(asset, []).append((t.name, ts, None, 2))
                continue
            rel = span.address - req.address
            try:
                if t.table in BIT_TABLES:
                    v = float(values[rel])
                elif t.type == "string":
                    v = decode(values[rel:rel + span.count], t.type, t.order)
                else:
                    v = self._decoder(t)(raw, 2 * rel)
            except Exception as exc:
                log.error("modbus device %s tag %s: cannot decode %s as %s: %s", dev.name,
                          t.name, values[rel:rel + span.count], t.type, exc)
                v = None
            if isinstance(v, str):
                continue  # strings are identity data (serial, model), not readings
            samples.setdefault(asset, []).append((t.name, ts, v, 0 if v is not None else 2))

    def _decoder(self, t: TagMap):
        dec = self._decoders.get(id(t))
        if dec is None:
            dec = self._decoders[id(t)] = compile_decoder(t.type, t.order, bit=t.bit,
                                                          scale=t.scale, offset=t.offset)
        return dec

    async def _read(self, dev: DeviceConfig, client, req: ReadRequest,
                    st: DeviceStats) -> list | None:
        names = ", ".join(s.name for s in req.tags)
        try:
            rr = await getattr(client, _READERS[req.table])(req.address, count=req.count,
                                                            device_id=dev.unit_id)
        except (ModbusException, asyncio.TimeoutError, OSError) as exc:
            if _count(st, req):
                log.warning("modbus device %s: reading %s %d+%d (tags %s) failed: %s (%d "
                            "failures of these tags so far)", dev.name, req.table, req.address,
                            req.count, names, exc, st.by_tag[req.tags[0].name])
            return None
        st.reads += 1
        if rr.isError():
            if _count(st, req):
                log.warning("modbus device %s: exception response for %s %d+%d (tags %s): %s "
                            "(%d so far)", dev.name, req.table, req.address, req.count, names,
                            rr, st.by_tag[req.tags[0].name])
            return None
        if req.table in BIT_TABLES:
            return [int(b) for b in rr.bits[:req.count]]
        return list(rr.registers)

    async def frames(self) -> AsyncIterator[ReadingsFrame]:
        while True:
            yield await self._queue.get()

    def records(self) -> AsyncIterator[ReadingsFrame]:
        """The Source protocol's name for :meth:`frames`."""
        return self.frames()

    async def close(self) -> None:
        # pymodbus turns a cancellation inside a request into a ModbusIOException, which a
        # poll loop counts and survives: so stop by flag, and cancel until the tasks are done
        self._closing = True
        pending = set(self._tasks)
        deadline = time.monotonic() + 10
        while pending and time.monotonic() < deadline:
            for t in pending:
                t.cancel()
            _, pending = await asyncio.wait(pending, timeout=0.5)
        for c in self._clients.values():
            c.close()
        self._tasks.clear()
