"""Register-read responses that keep their payload as bytes, for Tocsin's own clients.

Why: pymodbus decodes a register response with one ``struct.unpack`` per register into a list,
and its decoder formats the whole register list for a debug line even when debug logging is
off; Tocsin then packs that list back into bytes for the block decoder
(:mod:`tocsin.connectors.modbus_block`), which reads the bytes with numpy in one call. These
classes keep the response's bytes as they came (``raw``) and build the register list only if
someone asks for it, so a 125-register read costs one slice instead of 125 unpacks, a list and
two conversions. :func:`install` registers them on a client (its own decoder table; other
clients are untouched). Requests are plain pymodbus requests, built once per read
(:func:`request`) and re-sent each poll: pymodbus sets the transaction id on every send.
"""

from __future__ import annotations

import struct

from pymodbus.exceptions import ModbusIOException
from pymodbus.pdu import ModbusPDU
from pymodbus.pdu.register_message import (
    ReadHoldingRegistersRequest,
    ReadHoldingRegistersResponse,
    ReadInputRegistersRequest,
    ReadInputRegistersResponse,
)


class _RawRegisters:
    """Mixin over pymodbus's register response: ``raw`` big-endian bytes, lazy registers."""

    raw: bytes = b""
    _regs: list[int] | None = None

    @property
    def registers(self) -> list[int]:  # type: ignore[override]
        if self._regs is None:
            self._regs = list(struct.unpack(f">{len(self.raw) // 2}H", self.raw))
        return self._regs

    @registers.setter
    def registers(self, value) -> None:
        self._regs = list(value)
        self.raw = struct.pack(f">{len(self._regs)}H", *self._regs)

    def decode(self, data: bytes) -> None:
        n = int(data[0])
        if n >= len(data):
            raise ModbusIOException(f"byte_count {n} > length of packet {len(data)}",
                                    function_code=self.function_code)  # type: ignore[attr-defined]
        self.raw = bytes(data[1:1 + n])
        self._regs = None
        self.count = n // 2

    def __str__(self) -> str:
        return (f"{type(self).__name__}(dev_id={self.dev_id}, "  # type: ignore[attr-defined]
                f"transaction_id={self.transaction_id}, "  # type: ignore[attr-defined]
                f"bytes={len(self.raw)})")


class RawHoldingRegistersResponse(_RawRegisters, ReadHoldingRegistersResponse):
    pass


class RawInputRegistersResponse(_RawRegisters, ReadInputRegistersResponse):
    pass


_REQUESTS = {"holding": ReadHoldingRegistersRequest, "input": ReadInputRegistersRequest}


def install(client) -> None:
    """Decode this client's holding/input register responses with the raw classes."""
    client.register(RawHoldingRegistersResponse)
    client.register(RawInputRegistersResponse)


def request(table: str, address: int, count: int, unit: int) -> ModbusPDU | None:
    """A reusable register-read request (None for the bit tables: they keep the client API)."""
    cls = _REQUESTS.get(table)
    return None if cls is None else cls(address=address, count=count, dev_id=unit)


def payload(rr) -> bytes:
    """The response's register bytes, raw or (another client's response) packed."""
    raw = getattr(rr, "raw", None)
    if raw is not None:
        return raw
    regs = rr.registers
    return struct.pack(f">{len(regs)}H", *regs)
