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
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from tocsin.config.yamlfile import load_model
from tocsin.connectors import modbus_pdu
from tocsin.connectors.backoff import Backoff
from tocsin.connectors.modbus_block import (
    BlockDecoder,
    PollLayout,
    TagCodec,
    as_slots,
    is_block_tag,
)
from tocsin.connectors.modbus_codec import BIT_TABLES, ReadRequest, Span, plan_reads, width
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


@dataclass
class _Read:
    req: ReadRequest
    decode: BlockDecoder
    slots: np.ndarray | slice  # where its numeric tags go in the poll's value vector
    pdu: object = None  # the request, built once (register tables; bits use the client API)


def _names(req: ReadRequest) -> str:
    return ", ".join(s.name for s in req.tags)


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

    async def start(self) -> None:
        for dev in self.config.devices:
            client = AsyncModbusTcpClient(dev.host, port=dev.port, timeout=dev.timeout_s,
                                          retries=dev.retries, reconnect_delay=0)
            modbus_pdu.install(client)  # register reads keep their bytes (no per-register list)
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

    def _compile(self, dev: DeviceConfig, tags: dict[str, TagMap], req: ReadRequest,
                 layout: PollLayout) -> _Read:
        """One read's decoder and the slots its numeric tags fill (strings are skipped)."""
        codecs, slots = [], []
        for span in req.tags:
            t = tags[span.name]
            if not is_block_tag(t.table, t.type):
                continue
            plain = t.type == "bit"  # a bit is 0 or 1, never scaled
            codecs.append(TagCodec(span.address - req.address, t.type, t.order, t.bit,
                                   1.0 if plain else t.scale, 0.0 if plain else t.offset))
            slots.append(layout.slot[span.name])
        return _Read(req, BlockDecoder(codecs, bits=req.table in BIT_TABLES), as_slots(slots),
                     modbus_pdu.request(req.table, req.address, req.count, dev.unit_id))

    async def _poll_loop(self, dev: DeviceConfig, client, group: PollGroup,
                         tags: dict[str, TagMap], plan: list[ReadRequest]) -> None:
        period = group.interval_ms / 1000.0
        st = self.stats[dev.name]
        layout = PollLayout([(s.name, tags[s.name].asset or dev.asset) for r in plan
                             for s in r.tags if is_block_tag(tags[s.name].table,
                                                              tags[s.name].type)])
        reads = [self._compile(dev, tags, r, layout) for r in plan]
        source = f"modbus://{dev.host}:{dev.port}/{dev.unit_id}"
        nxt = time.monotonic()
        while not self._closing:
            if not client.connected:
                await self._connect(dev, client)
            ts = time.time_ns()
            values, quality = layout.new_poll()
            i = 0
            while i < len(reads):
                rd = reads[i]
                raw = await self._read(dev, client, rd.req, st, rd.pdu)
                if raw is None and len(rd.req.tags) > 1 and client.connected:
                    # one bad address must not take its neighbours down: read this
                    # request's tags one by one from now on, so only the bad one fails
                    log.warning("modbus device %s: splitting the read of %s into single-tag "
                                "reads to find the bad address", dev.name,
                                ", ".join(t.name for t in rd.req.tags))
                    singles = [self._compile(dev, tags, ReadRequest(
                        s.table, s.address, s.count, (s,)), layout) for s in rd.req.tags]
                    reads[i:i + 1] = singles
                    plan[:] = [r.req for r in reads]  # kept if the loop restarts
                    for one in singles:
                        self._fill(dev, one, await self._read(dev, client, one.req, st,
                                                              one.pdu),
                                   values, quality)
                    i += len(singles)
                    continue
                self._fill(dev, rd, raw, values, quality)
                i += 1
            st.polls += 1
            for asset, names, ts_a, v, q in layout.split(values, quality, ts):
                self._seq += 1
                frame = ReadingsFrame(asset, list(names), ts_a, v, q, source=source,
                                      seq=self._seq)
                if self._queue.full():  # back-pressure: wait for the reader
                    await self._queue.put(frame)
                else:  # no coroutine per frame
                    self._queue.put_nowait(frame)
            nxt += period
            now = time.monotonic()
            if nxt < now:  # overran: skip the missed cycles (to the next tick) rather than burst
                nxt += period * math.ceil((now - nxt) / period)
            await asyncio.sleep(nxt - now)

    def _fill(self, dev: DeviceConfig, rd: _Read, raw, values: np.ndarray,
              quality: np.ndarray) -> None:
        """Put one read's values into the poll's vectors; a failed read leaves its tags NaN
        with bad quality."""
        if raw is not None:
            try:
                values[rd.slots] = rd.decode(raw)
                return
            except (ValueError, IndexError) as exc:
                log.error("modbus device %s: cannot decode %s %d+%d (tags %s): %s", dev.name,
                          rd.req.table, rd.req.address, rd.req.count,
                          _names(rd.req), exc)
        quality[rd.slots] = 2

    async def _read(self, dev: DeviceConfig, client, req: ReadRequest,
                    st: DeviceStats, pdu=None) -> bytes | list | None:
        """The raw big-endian bytes of the registers read (bits: a list), or None."""
        try:
            if pdu is not None:  # the request built once, re-sent (a fresh transaction id)
                rr = await client.execute(False, pdu)
            else:
                rr = await getattr(client, _READERS[req.table])(req.address, count=req.count,
                                                                device_id=dev.unit_id)
        except (ModbusException, asyncio.TimeoutError, OSError) as exc:
            if _count(st, req):
                log.warning("modbus device %s: reading %s %d+%d (tags %s) failed: %s (%d "
                            "failures of these tags so far)", dev.name, req.table, req.address,
                            req.count, _names(req), exc, st.by_tag[req.tags[0].name])
            return None
        st.reads += 1
        if rr.isError():
            if _count(st, req):
                log.warning("modbus device %s: exception response for %s %d+%d (tags %s): %s "
                            "(%d so far)", dev.name, req.table, req.address, req.count,
                            _names(req),
                            rr, st.by_tag[req.tags[0].name])
            return None
        if req.table in BIT_TABLES:
            return rr.bits[:req.count]
        return modbus_pdu.payload(rr)  # the whole read's bytes, as they came

    async def frames(self) -> AsyncIterator[ReadingsFrame]:
        queue = self._queue
        while True:
            # frames already queued are taken without a get() coroutine each
            yield queue.get_nowait() if queue.qsize() else await queue.get()

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
