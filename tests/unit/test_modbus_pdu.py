"""The raw register responses: the same registers as pymodbus's own decoding, kept as bytes."""

from __future__ import annotations

import asyncio
import struct

import numpy as np
import pytest
from pymodbus.exceptions import ModbusIOException
from pymodbus.pdu.register_message import ReadHoldingRegistersResponse

from tocsin.connectors import modbus_pdu
from tocsin.connectors.modbus_block import BlockDecoder, TagCodec


def _frame(regs: list[int]) -> bytes:
    return bytes([2 * len(regs)]) + struct.pack(f">{len(regs)}H", *regs)


@pytest.mark.parametrize("cls", [modbus_pdu.RawHoldingRegistersResponse,
                                 modbus_pdu.RawInputRegistersResponse])
def test_raw_response_decodes_like_pymodbus(cls):
    regs = list(np.random.default_rng(0).integers(0, 65536, size=125))
    mine, theirs = cls(), ReadHoldingRegistersResponse()
    mine.decode(_frame(regs))
    theirs.decode(_frame(regs))
    assert mine.raw == struct.pack(">125H", *regs)
    assert mine.registers == theirs.registers == regs
    assert mine.count == 125 and not mine.isError()
    assert "bytes=250" in str(mine)  # a short line, not the register list


def test_raw_response_refuses_a_short_packet_as_pymodbus_does():
    with pytest.raises(ModbusIOException):
        modbus_pdu.RawHoldingRegistersResponse().decode(bytes([8, 0, 1]))


def test_payload_feeds_the_block_decoder_the_same_bytes():
    regs = list(struct.unpack(">4H", struct.pack(">2f", 1.5, -2.25)))
    raw = modbus_pdu.RawHoldingRegistersResponse()
    raw.decode(_frame(regs))
    plain = ReadHoldingRegistersResponse(registers=regs)
    dec = BlockDecoder([TagCodec(0, "float32", "ABCD", None, 1.0, 0.0),
                        TagCodec(2, "float32", "ABCD", None, 1.0, 0.0)])
    assert modbus_pdu.payload(raw) == modbus_pdu.payload(plain)
    np.testing.assert_array_equal(dec(modbus_pdu.payload(raw)), [1.5, -2.25])


def test_install_changes_only_that_clients_decoder():
    from pymodbus.client import AsyncModbusTcpClient
    from pymodbus.pdu.decoders import DecodePDU

    async def go():
        a = AsyncModbusTcpClient("127.0.0.1", port=1)
        b = AsyncModbusTcpClient("127.0.0.1", port=1)
        modbus_pdu.install(a)
        return a.ctx.framer.decoder, b.ctx.framer.decoder

    da, db = asyncio.run(go())
    assert da.pdu_table[3][1] is modbus_pdu.RawHoldingRegistersResponse
    assert da.pdu_table[4][1] is modbus_pdu.RawInputRegistersResponse
    assert db.pdu_table[3][1] is ReadHoldingRegistersResponse
    assert DecodePDU.pdu_table[3][1] is ReadHoldingRegistersResponse


def test_request_is_built_once_per_read_and_bits_keep_the_client_api():
    req = modbus_pdu.request("holding", 10, 4, unit=7)
    assert (req.function_code, req.address, req.count, req.dev_id) == (3, 10, 4, 7)
    assert modbus_pdu.request("input", 0, 1, 1).function_code == 4
    assert modbus_pdu.request("coil", 0, 1, 1) is None
