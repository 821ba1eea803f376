"""The recording file format: Kafka messages (topic, partition, offset, timestamp, key, value,
headers) in checksummed, zstd-compressed blocks.

Layout::

    b"TOCSINREC\\n"                 magic
    u32 len + JSON header          {"format": 1, "created": ..., "topics": [...], ...}
    block*                         b"BLK1" u32 count, u32 raw_len, u32 comp_len, u32 crc32(comp)
                                   then comp_len bytes of zstd(records)
    b"END1" u64 total_records      trailer, written on a clean close

A record inside a block: one fixed part (u16 topic index, i32 partition, i64 offset,
i64 timestamp in ms, u8 timestamp type, i32 key length, i32 value length, u16 header count;
a length of -1 means null), then the key, the value, and per header u16 name length + name,
i32 value length + value. One fixed part means one struct call per record on replay.

Errors name the byte position and block, so a damaged file can be understood; a file whose
format number is newer than this code is refused.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import cramjam
import orjson

from tocsin.errors import DataError

MAGIC = b"TOCSINREC\n"
FORMAT = 1
BLOCK = b"BLK1"
END = b"END1"
_BLOCK_HDR = struct.Struct("<4sIIII")
_END = struct.Struct("<4sQ")
_REC = struct.Struct("<HiqqBiiH")
_LEN = struct.Struct("<i")


class RecordingError(DataError):
    """A recording file is damaged, truncated, or from a newer Tocsin."""


@dataclass(slots=True)
class Message:
    topic: str
    partition: int
    offset: int
    timestamp: int  # ms since the epoch (Kafka message timestamp)
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]] = field(default_factory=list)
    timestamp_type: int = 1  # 1 create time, 2 log append time


class RecordingWriter:
    """Append messages; blocks are flushed every `block_records` messages or `block_bytes`."""

    def __init__(self, path: str | Path, header: dict | None = None, *,
                 block_records: int = 2000, block_bytes: int = 1 << 20, level: int = 3):
        self.path = Path(path)
        self.f: BinaryIO = open(self.path, "wb")
        self.topics: dict[str, int] = {}
        self.header = dict(header or {})
        self.block_records = block_records
        self.block_bytes = block_bytes
        self.level = level
        self._buf = bytearray()
        self._count = 0
        self.total = 0
        self._header_written = False

    def _write_header(self, topics: list[str]) -> None:
        hdr = dict(self.header, format=FORMAT, topics=topics)
        data = orjson.dumps(hdr)
        self.f.write(MAGIC + struct.pack("<I", len(data)) + data)
        self._header_written = True

    def declare_topics(self, topics: list[str]) -> None:
        """Topic names must be known before the first block (they are stored as indices)."""
        if self._header_written:
            raise RecordingError("topics must be declared before the first message")
        for t in topics:
            self.topics.setdefault(t, len(self.topics))

    def write(self, m: Message) -> None:
        if not self._header_written:
            self._write_header(list(self.topics))
        try:
            ti = self.topics[m.topic]
        except KeyError:
            raise RecordingError(f"topic {m.topic!r} was not declared") from None
        b = self._buf
        key, value = m.key, m.value
        b += _REC.pack(ti, m.partition, m.offset, m.timestamp, m.timestamp_type,
                       -1 if key is None else len(key), -1 if value is None else len(value),
                       len(m.headers))
        if key:
            b += key
        if value:
            b += value
        for name, val in m.headers:
            nb = name.encode()
            b += struct.pack("<H", len(nb)) + nb
            _put(b, val)
        self._count += 1
        self.total += 1
        if self._count >= self.block_records or len(b) >= self.block_bytes:
            self.flush_block()

    def flush_block(self) -> None:
        if not self._count:
            return
        comp = bytes(cramjam.zstd.compress(bytes(self._buf), level=self.level))
        self.f.write(_BLOCK_HDR.pack(BLOCK, self._count, len(self._buf), len(comp),
                                     zlib.crc32(comp)))
        self.f.write(comp)
        self.f.flush()
        self._buf = bytearray()
        self._count = 0

    def close(self) -> None:
        if self.f.closed:
            return
        if not self._header_written:
            self._write_header(list(self.topics))
        self.flush_block()
        self.f.write(_END.pack(END, self.total))
        self.f.close()

    def __enter__(self) -> "RecordingWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _put(b: bytearray, data: bytes | None) -> None:
    if data is None:
        b += _LEN.pack(-1)
    else:
        b += _LEN.pack(len(data))
        b += data


class RecordingReader:
    """Iterate the messages of a recording, checking every block as it is read.

    With ``allow_truncated`` a file that ends inside a block or lacks the trailer (a recorder
    that was killed) yields every whole block and then stops; otherwise that is an error.
    """

    def __init__(self, path: str | Path, *, allow_truncated: bool = False):
        self.path = Path(path)
        self.allow_truncated = allow_truncated
        self.f = open(self.path, "rb")
        self.size = self.path.stat().st_size
        magic = self.f.read(len(MAGIC))
        if magic != MAGIC:
            raise RecordingError(f"{self.path}: not a Tocsin recording (bad magic at byte 0)")
        raw = self.f.read(4)
        if len(raw) < 4:
            raise RecordingError(f"{self.path}: truncated in the header at byte {len(MAGIC)}")
        (n,) = struct.unpack("<I", raw)
        data = self.f.read(n)
        if len(data) < n:
            raise RecordingError(f"{self.path}: truncated in the header at byte "
                                 f"{len(MAGIC) + 4 + len(data)} (header is {n} bytes)")
        try:
            self.header = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise RecordingError(f"{self.path}: corrupt header at byte {len(MAGIC) + 4}: "
                                 f"{exc}") from exc
        fmt = self.header.get("format")
        if not isinstance(fmt, int):
            raise RecordingError(f"{self.path}: header has no format number")
        if fmt > FORMAT:
            raise RecordingError(f"{self.path}: recording format {fmt} is newer than this "
                                 f"Tocsin supports ({FORMAT}); upgrade Tocsin to replay it")
        self.topics: list[str] = list(self.header.get("topics", []))
        self.data_start = self.f.tell()
        self.total: int | None = None  # known after the trailer is read
        self.blocks_read = 0

    def close(self) -> None:
        self.f.close()

    def __enter__(self) -> "RecordingReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _truncated(self, pos: int, what: str) -> bool:
        msg = (f"{self.path}: truncated at byte {pos} of {self.size} ({what}, block "
               f"{self.blocks_read + 1})")
        if self.allow_truncated:
            return True
        raise RecordingError(msg + "; pass allow_truncated/--allow-truncated to replay the "
                             "whole blocks before it")

    def blocks(self) -> Iterator[tuple[int, bytes]]:
        """Yield (record count, raw block bytes) for each verified block."""
        f = self.f
        f.seek(self.data_start)
        while True:
            pos = f.tell()
            tag = f.read(4)
            if tag == END:
                rest = f.read(_END.size - 4)
                if len(rest) < _END.size - 4:
                    self._truncated(pos, "inside the trailer")
                    return
                self.total = struct.unpack("<Q", rest)[0]
                return
            if tag == b"":
                self._truncated(pos, "missing trailer")
                return
            hdr = tag + f.read(_BLOCK_HDR.size - 4)
            if len(hdr) < _BLOCK_HDR.size:
                self._truncated(pos, "inside a block header")
                return
            magic, count, raw_len, comp_len, crc = _BLOCK_HDR.unpack(hdr)
            if magic != BLOCK:
                raise RecordingError(f"{self.path}: corrupt data at byte {pos}: expected a "
                                     f"block marker, found {magic!r} (block "
                                     f"{self.blocks_read + 1})")
            comp = f.read(comp_len)
            if len(comp) < comp_len:
                self._truncated(pos, f"block of {comp_len} bytes has {len(comp)}")
                return
            if zlib.crc32(comp) != crc:
                raise RecordingError(f"{self.path}: corrupt block {self.blocks_read + 1} at "
                                     f"byte {pos}: checksum mismatch")
            try:
                raw = bytes(cramjam.zstd.decompress(comp))
            except Exception as exc:
                raise RecordingError(f"{self.path}: corrupt block {self.blocks_read + 1} at "
                                     f"byte {pos}: {exc}") from exc
            if len(raw) != raw_len:
                raise RecordingError(f"{self.path}: corrupt block {self.blocks_read + 1} at "
                                     f"byte {pos}: {len(raw)} bytes, header says {raw_len}")
            self.blocks_read += 1
            yield count, raw

    def __iter__(self) -> Iterator[Message]:
        topics = self.topics
        for count, raw in self.blocks():
            yield from _decode_block(raw, count, topics)

    def records(self) -> Iterator[tuple]:
        """The fast path for replay: tuples as :func:`raw_records` gives them."""
        for count, raw in self.blocks():
            yield from raw_records(raw, count)


def _decode_block(raw: bytes, count: int, topics: list[str]) -> Iterator[Message]:
    for ti, part, off, ts, tst, key, val, headers in raw_records(raw, count):
        yield Message(topics[ti], part, off, ts, key, val, headers, tst)


def raw_records(raw: bytes, count: int) -> Iterator[tuple]:
    """(topic index, partition, offset, timestamp, ts type, key, value, headers) tuples."""
    pos = 0
    unpack = _REC.unpack_from
    size = _REC.size
    for _ in range(count):
        ti, part, off, ts, tst, kl, vl, nh = unpack(raw, pos)
        pos += size
        if kl >= 0:
            key = raw[pos:pos + kl]
            pos += kl
        else:
            key = None
        if vl >= 0:
            val = raw[pos:pos + vl]
            pos += vl
        else:
            val = None
        headers = []
        for _ in range(nh):
            (nl,) = struct.unpack_from("<H", raw, pos)
            pos += 2
            name = raw[pos:pos + nl].decode()
            pos += nl
            (hl,) = _LEN.unpack_from(raw, pos)
            pos += 4
            headers.append((name, None if hl < 0 else raw[pos:pos + hl]))
            pos += max(hl, 0)
        yield ti, part, off, ts, tst, key, val, headers
