"""Modbus register decoding and read planning. Pure: registers in, values out.

Byte and word order, for a value spanning words W1 W2 ... (each word two bytes, high byte
first on the wire) whose big-endian bytes are A B C D (E F G H for 64-bit):

- ``ABCD``: big-endian words in big-endian order (the Modbus convention; most PLCs)
- ``CDAB``: word order reversed, bytes in each word big-endian ("word swap"; many Schneider,
  Siemens floats)
- ``BADC``: words in order, bytes swapped inside each word ("byte swap")
- ``DCBA``: fully little-endian (word order reversed and bytes swapped)

For 64-bit values the same rule applies to all four words (CDAB reverses the four words).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Literal

ORDERS = ("ABCD", "CDAB", "BADC", "DCBA")
TYPES = ("int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64",
         "string", "bit")
Order = Literal["ABCD", "CDAB", "BADC", "DCBA"]
_FMT = {"int16": ">h", "uint16": ">H", "int32": ">i", "uint32": ">I", "int64": ">q",
        "uint64": ">Q", "float32": ">f", "float64": ">d"}
_WORDS = {"int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "float32": 2, "int64": 4,
          "uint64": 4, "float64": 4, "bit": 1}
REGISTER_TABLES = ("holding", "input")
BIT_TABLES = ("coil", "discrete")


def width(typ: str, length: int = 0) -> int:
    """Registers a value of `typ` occupies (a string: `length` registers)."""
    return length if typ == "string" else _WORDS[typ]


def _to_canonical(regs: list[int], order: str) -> bytes:
    """Wire registers -> the value's big-endian bytes."""
    words = list(regs)
    if order in ("CDAB", "DCBA"):
        words.reverse()
    raw = b"".join(w.to_bytes(2, "big") for w in words)
    if order in ("BADC", "DCBA"):
        raw = b"".join(raw[i + 1:i + 2] + raw[i:i + 1] for i in range(0, len(raw), 2))
    return raw


def _from_canonical(raw: bytes, order: str) -> list[int]:
    if order in ("BADC", "DCBA"):
        raw = b"".join(raw[i + 1:i + 2] + raw[i:i + 1] for i in range(0, len(raw), 2))
    words = [int.from_bytes(raw[i:i + 2], "big") for i in range(0, len(raw), 2)]
    if order in ("CDAB", "DCBA"):
        words.reverse()
    return words


def decode(regs: list[int], typ: str, order: str = "ABCD", *, bit: int | None = None,
           scale: float = 1.0, offset: float = 0.0) -> float | str:
    """Decode the registers of one tag; numbers get ``value * scale + offset``."""
    if typ == "bit":
        if bit is None:
            raise ValueError("type 'bit' in a register needs 'bit' (0-15)")
        return float((regs[0] >> bit) & 1)
    raw = _to_canonical(regs, order)
    if typ == "string":
        return raw.split(b"\x00", 1)[0].decode("ascii", errors="replace").rstrip()
    (val,) = struct.unpack(_FMT[typ], raw)
    if scale == 1.0 and offset == 0.0:
        return val  # exact for 64-bit integers (frames carry float64: exact to 2**53)
    return val * scale + offset


def encode(value: float | str, typ: str, order: str = "ABCD", *, length: int = 0,
           scale: float = 1.0, offset: float = 0.0) -> list[int]:
    """The inverse of :func:`decode` (used by the simulator's server and the tests)."""
    if typ == "string":
        raw = str(value).encode("ascii")[: 2 * length].ljust(2 * length, b"\x00")
        return _from_canonical(raw, order)
    if scale == 1.0 and offset == 0.0:
        raw_val = value
    else:
        raw_val = (value - offset) / scale
    if typ.startswith(("int", "uint")):
        raw_val = int(round(raw_val)) if isinstance(raw_val, float) else int(raw_val)
    return _from_canonical(struct.pack(_FMT[typ], raw_val), order)


@dataclass(frozen=True)
class Span:
    """One tag's place: table, first address, registers (or bits)."""

    table: str
    address: int
    count: int
    name: str


@dataclass(frozen=True)
class ReadRequest:
    table: str
    address: int
    count: int
    tags: tuple[Span, ...]


def plan_reads(spans: list[Span], *, max_registers: int = 125, max_bits: int = 2000,
               max_gap: int = 0) -> list[ReadRequest]:
    """Coalesce tags into as few reads as possible: same table, gaps of at most `max_gap`
    unused addresses, and no read longer than the protocol (or the device) allows."""
    out: list[ReadRequest] = []
    by_table: dict[str, list[Span]] = {}
    for s in spans:
        by_table.setdefault(s.table, []).append(s)
    for table, items in by_table.items():
        limit = max_bits if table in BIT_TABLES else max_registers
        items.sort(key=lambda s: (s.address, -s.count))
        cur: list[Span] = []
        start = end = 0
        for s in items:
            if s.count > limit:
                raise ValueError(f"tag {s.name!r} spans {s.count} > {limit} addresses")
            s_end = s.address + s.count
            if cur and s.address - end <= max_gap and max(end, s_end) - start <= limit:
                cur.append(s)
                end = max(end, s_end)
                continue
            if cur:
                out.append(ReadRequest(table, start, end - start, tuple(cur)))
            cur, start, end = [s], s.address, s_end
        if cur:
            out.append(ReadRequest(table, start, end - start, tuple(cur)))
    return out


def _permutation(words: int, order: str) -> tuple[int, ...] | None:
    """Byte positions that turn wire bytes into the value's big-endian bytes (None: as is)."""
    if order == "ABCD":
        return None
    idx = list(range(2 * words))
    if order in ("CDAB", "DCBA"):
        idx = [b for w in reversed(range(words)) for b in (2 * w, 2 * w + 1)]
    if order in ("BADC", "DCBA"):
        idx = [idx[i ^ 1] for i in range(len(idx))]
    return tuple(idx)


def compile_decoder(typ: str, order: str = "ABCD", *, bit: int | None = None,
                    scale: float = 1.0, offset: float = 0.0):
    """A fast decoder of one numeric tag from the raw bytes of a whole read: call it with
    (raw bytes of the request, byte offset of the tag). Same results as :func:`decode`."""
    if typ == "bit":
        if bit is None:
            raise ValueError("type 'bit' in a register needs 'bit' (0-15)")
        mask = 1 << bit

        def dec_bit(raw: bytes, at: int) -> float:
            return 1.0 if int.from_bytes(raw[at:at + 2], "big") & mask else 0.0
        return dec_bit
    if typ == "string":
        raise ValueError("strings are not decoded on the fast path")
    words = _WORDS[typ]
    st = struct.Struct(_FMT[typ])
    perm = _permutation(words, order)
    plain = scale == 1.0 and offset == 0.0

    def dec(raw: bytes, at: int):
        chunk = raw[at:at + 2 * words]
        if perm is not None:
            chunk = bytes(map(chunk.__getitem__, perm))
        v = st.unpack(chunk)[0]
        return v if plain else v * scale + offset
    return dec
