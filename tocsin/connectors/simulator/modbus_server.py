"""The simulated plant served over Modbus/TCP (pymodbus server).

The register map is the connector's own config (a ModbusConfig): the server encodes each
tag's simulated value with the tag's table, address, type, byte order, scale and offset, so
the same file configures both ends. Tags that the plant does not simulate keep fixed test
values set by the caller (`static`), which the tests use for every type and order.
"""

from __future__ import annotations

import asyncio
import logging
import time

from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from tocsin.connectors.modbus import DeviceConfig, TagMap
from tocsin.connectors.modbus_codec import encode
from tocsin.connectors.simulator.plant import Plant

log = logging.getLogger(__name__)
_SIZE = 10000  # addresses per table; reading past them answers "illegal data address"
_FC = {"coil": 1, "discrete": 2, "holding": 3, "input": 4}  # pymodbus' table selector


class PlantModbusServer:
    """One Modbus/TCP server (one unit id) for one device's register map."""

    def __init__(self, device: DeviceConfig, plant: Plant | None = None, *,
                 host: str = "127.0.0.1", port: int = 5020, rate_hz: float = 10.0,
                 static: dict[str, float | str] | None = None):
        self.device = device
        self.plant = plant or Plant()
        self.host, self.port, self.rate_hz = host, port, rate_hz
        self.static = static or {}
        bits = DataType.BITS
        regs = DataType.REGISTERS
        self.device_model = SimDevice(id=device.unit_id, simdata=(
            [SimData(0, values=[False] * _SIZE, datatype=bits)],  # coils
            [SimData(0, values=[False] * _SIZE, datatype=bits)],  # discrete inputs
            [SimData(0, values=[0] * _SIZE, datatype=regs)],  # holding registers
            [SimData(0, values=[0] * _SIZE, datatype=regs)],  # input registers
        ))
        self._bits: dict[tuple[str, int], int] = {}  # register words holding bit tags
        self.server: ModbusTcpServer | None = None
        self._tasks: list[asyncio.Task] = []
        self._t0 = time.time()

    def _encode(self, t: TagMap, value) -> list:
        if t.table in ("coil", "discrete"):
            return [bool(value)]
        if t.type == "bit":
            key = (t.table, t.address)
            cur = self._bits.get(key, 0)
            mask = 1 << (t.bit or 0)
            cur = (cur | mask) if value else (cur & ~mask)
            self._bits[key] = cur
            return [cur]
        return encode(value, t.type, t.order, length=t.length, scale=t.scale, offset=t.offset)

    async def update(self) -> None:
        now = time.time()
        values = self.plant.step(now - self._t0, 1.0 / self.rate_hz)
        for g in self.device.groups:
            for t in g.tags:
                asset = t.asset or self.device.asset
                if t.name in self.static:
                    v = self.static[t.name]
                elif asset in values and t.name in values[asset]:
                    v = values[asset][t.name]
                else:
                    continue
                await self.server.async_setValues(self.device.unit_id, _FC[t.table],
                                                  t.address, self._encode(t, v))

    async def start(self) -> "PlantModbusServer":
        self.server = ModbusTcpServer(self.device_model, address=(self.host, self.port))
        await self.update()
        self._tasks.append(asyncio.create_task(self.server.serve_forever()))
        self._tasks.append(asyncio.create_task(self._run()))
        for _ in range(100):  # until it listens
            try:
                _, w = await asyncio.open_connection(self.host, self.port)
                w.close()
                break
            except OSError:
                await asyncio.sleep(0.05)
        return self

    async def _run(self) -> None:
        period = 1.0 / self.rate_hz
        while True:
            await self.update()
            await asyncio.sleep(period)

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        if self.server is not None:
            await self.server.shutdown()
        for t in self._tasks:
            try:
                await t
            except (asyncio.CancelledError, Exception):
                pass
