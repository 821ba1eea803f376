"""`tocsin modbus probe`: read raw registers and show them decoded under every type and
byte/word order, so the right combination can be picked against a known reading."""

from __future__ import annotations

from pymodbus.client import AsyncModbusTcpClient

from tocsin.connectors.modbus_codec import ORDERS, decode
from tocsin.errors import ConnectorError

CANDIDATES = ("int16", "uint16", "int32", "uint32", "float32", "int64", "uint64", "float64")
_READ = {"holding": "read_holding_registers", "input": "read_input_registers"}


async def read_raw(host: str, port: int, unit: int, table: str, address: int, count: int,
                   timeout: float = 2.0) -> list[int]:
    client = AsyncModbusTcpClient(host, port=port, timeout=timeout, retries=1)
    try:
        await client.connect()
        if not client.connected:
            raise ConnectorError(f"modbus {host}:{port}: cannot connect")
        rr = await getattr(client, _READ[table])(address, count=count, device_id=unit)
        if rr.isError():
            raise ConnectorError(f"modbus {host}:{port} unit {unit}: {table} {address}+{count}: "
                                 f"{rr}")
        return list(rr.registers)
    finally:
        client.close()


def interpretations(regs: list[int]) -> list[tuple[str, str, str]]:
    """(type, order, value) for every type that fits the registers, starting at the first."""
    rows = []
    for typ in CANDIDATES:
        n = {"int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "float32": 2}.get(typ, 4)
        if len(regs) < n:
            continue
        for order in ORDERS if n > 1 else ("ABCD", "BADC"):
            v = decode(regs[:n], typ, order)
            rows.append((typ, order, f"{v:.6g}" if isinstance(v, float) else str(v)))
    return rows
