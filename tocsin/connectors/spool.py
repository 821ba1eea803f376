"""A bounded on-disk FIFO of byte records (store-and-forward between a connector and Kafka).

Records are appended to segment files (``seg-000000000001.log`` ...), each record a u32
length, a u32 CRC32 and the bytes. A cursor file remembers how far the consumer has
acknowledged, so a restarted connector drains what an earlier run could not deliver.
When the size limit is reached the policy decides, visibly (counter and log):
``drop_oldest`` deletes the oldest segment; ``reject`` raises :class:`SpoolFull` so the
caller can stop reading (back-pressure).

Records appended while the reader is caught up are also kept in memory (bounded) and handed
out from there, and the positions of handed-out records are remembered for :meth:`ack`: in
the steady state a record costs one write and no reads (it used to cost an open, a seek and
a read to take it and another to acknowledge it). The disk stays the truth: a restart, a
rewind or a reader that fell behind the memory bound reads from the files.
"""

from __future__ import annotations

import logging
import os
import struct
import time
import zlib
from collections import deque
from pathlib import Path
from typing import Literal

from tocsin.errors import ConnectorError, TocsinError

log = logging.getLogger(__name__)
_HDR = struct.Struct("<II")
# the segment writer's buffer: records of a few kB (a 100-sample frame is ~3.5 kB) overflowed
# the default 8 kB one every second append, one write call each; every take() (each sink
# pump, every few ms) flushes it anyway, so a larger one only batches those write calls
_WRITE_BUFFER = 1 << 16


class SpoolFull(ConnectorError):
    """The spool is at its size limit and its policy is ``reject``."""


class DiskSpool:
    def __init__(self, directory: str | Path, *, max_bytes: int = 1 << 30,
                 segment_bytes: int = 16 << 20,
                 policy: Literal["drop_oldest", "reject"] = "drop_oldest",
                 memory_bytes: int = 32 << 20):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.policy = policy
        self.dropped = 0  # records deleted by drop_oldest
        self._segments = sorted(int(p.stem[4:]) for p in self.dir.glob("seg-*.log"))
        self._cur_seg, self._cur_off = self._load_cursor()
        if not self._segments:
            self._segments = [1]
            (self._path(1)).touch()
        if self._cur_seg < self._segments[0]:
            self._cur_seg, self._cur_off = self._segments[0], 0
        self._writer = open(self._path(self._segments[-1]), "ab", buffering=_WRITE_BUFFER)
        self._wpos = self._writer.tell()  # the writer's end, kept here (no tell() per append)
        self._pending = self._count_pending()
        self._send_seg, self._send_off = self._cur_seg, self._cur_off
        self._bytes = self._disk_bytes()  # kept up to date from here on (no stat per append)
        self._cursor_saved = 0.0
        self.memory_bytes = memory_bytes
        # (segment, end offset, bytes) of records appended while caught up, not yet taken;
        # valid while _synced (the send position is the start of the first of them)
        self._unsent: deque[tuple[int, int, bytes]] = deque()
        self._unsent_bytes = 0
        self._synced = self._pending == 0
        self._taken: deque[tuple[int, int]] = deque()  # (segment, end offset), not yet acked

    # -- files ------------------------------------------------------------------------
    def _path(self, seg: int) -> Path:
        return self.dir / f"seg-{seg:012d}.log"

    def _load_cursor(self) -> tuple[int, int]:
        try:
            seg, off = (self.dir / "cursor").read_text().split()
            return int(seg), int(off)
        except (OSError, ValueError):
            return (self._segments[0] if self._segments else 1), 0

    def _save_cursor(self) -> None:
        tmp = self.dir / "cursor.tmp"
        tmp.write_text(f"{self._cur_seg} {self._cur_off}")
        os.replace(tmp, self.dir / "cursor")

    def _count_pending(self) -> int:
        n = 0
        for seg in self._segments:
            if seg < self._cur_seg:
                continue
            with open(self._path(seg), "rb") as f:
                if seg == self._cur_seg:
                    f.seek(self._cur_off)
                while True:
                    hdr = f.read(_HDR.size)
                    if len(hdr) < _HDR.size:
                        break
                    ln, _ = _HDR.unpack(hdr)
                    f.seek(ln, os.SEEK_CUR)
                    n += 1
        return n

    @property
    def pending(self) -> int:
        """Records appended and not yet acknowledged."""
        return self._pending

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def _disk_bytes(self) -> int:
        return sum(self._path(s).stat().st_size for s in self._segments
                   if self._path(s).exists())

    # -- producer side --------------------------------------------------------------------
    def append(self, data: bytes, flush: bool = True) -> None:
        """``flush=False``: leave the record in the file's buffer until :meth:`flush` or the
        next :meth:`take` (which always flushes first: a record is in the file before it is
        handed out). A batch of appends then costs one write call instead of one each; a
        kill -9 can lose the unflushed ones, as it loses the source's in-memory queue."""
        need = _HDR.size + len(data)
        while self.size_bytes + need > self.max_bytes:
            if self.policy == "reject" or len(self._segments) == 1:
                raise SpoolFull(f"spool {self.dir} is full ({self.size_bytes:,} of "
                                f"{self.max_bytes:,} bytes)")
            self._drop_oldest()
        if self._wpos + need > self.segment_bytes and self._wpos > 0:
            self._writer.close()
            self._segments.append(self._segments[-1] + 1)
            self._writer = open(self._path(self._segments[-1]), "ab", buffering=_WRITE_BUFFER)
            self._wpos = self._writer.tell()
        self._writer.write(_HDR.pack(len(data), zlib.crc32(data)) + data)
        self._wpos += need
        if flush:
            self._writer.flush()
        self._pending += 1
        self._bytes += need
        if self._synced:
            self._unsent.append((self._segments[-1], self._wpos, data))
            self._unsent_bytes += len(data)
            if self._unsent_bytes > self.memory_bytes:  # the reader fell behind: use the disk
                self._synced = False
                self._unsent.clear()
                self._unsent_bytes = 0

    def _drop_oldest(self) -> None:
        seg = self._segments.pop(0)
        path = self._path(seg)
        lost = 0
        with open(path, "rb") as f:
            if seg == self._cur_seg:
                f.seek(self._cur_off)
            while (hdr := f.read(_HDR.size)) and len(hdr) == _HDR.size:
                f.seek(_HDR.unpack(hdr)[0], os.SEEK_CUR)
                lost += 1
        self._bytes -= path.stat().st_size
        if seg >= self._cur_seg:
            self.dropped += lost
            self._pending -= lost
            log.error("spool %s full: dropped %d unsent records (oldest segment %d); %d "
                      "dropped so far", self.dir, lost, seg, self.dropped)
        path.unlink()
        if self._cur_seg <= seg:
            self._cur_seg, self._cur_off = self._segments[0], 0
            self.rewind()
            self._save_cursor()

    # -- consumer side ---------------------------------------------------------------------
    def take(self, n: int) -> list[bytes]:
        """Up to `n` records not yet handed out, in order. They stay in the spool until
        :meth:`ack`; :meth:`rewind` hands the unacknowledged ones out again."""
        out: list[bytes] = []
        self._writer.flush()
        if self._send_seg < self._cur_seg:
            self.rewind()
        if self._synced:
            while self._unsent and len(out) < n:
                seg, end, data = self._unsent.popleft()
                self._unsent_bytes -= len(data)
                out.append(data)
                self._taken.append((seg, end))
                self._send_seg, self._send_off = seg, end
            return out
        while len(out) < n:
            path = self._path(self._send_seg)
            if not path.exists():
                break
            with open(path, "rb") as f:
                f.seek(self._send_off)
                while len(out) < n:
                    hdr = f.read(_HDR.size)
                    if len(hdr) < _HDR.size:
                        break
                    ln, crc = _HDR.unpack(hdr)
                    data = f.read(ln)
                    if len(data) < ln:
                        break  # still being written
                    if zlib.crc32(data) != crc:
                        raise TocsinError(f"spool {path}: corrupt record at byte "
                                          f"{f.tell() - ln - _HDR.size}")
                    out.append(data)
                    self._send_off = f.tell()
                    self._taken.append((self._send_seg, self._send_off))
            if len(out) >= n or self._send_seg >= self._segments[-1]:
                break
            self._send_seg, self._send_off = self._send_seg + 1, 0
        if self._send_seg == self._segments[-1] and self._send_off == self._wpos:
            self._synced = True  # caught up: later appends are handed out from memory
        return out

    def rewind(self) -> None:
        self._send_seg, self._send_off = self._cur_seg, self._cur_off
        self._synced = False
        self._unsent.clear()
        self._unsent_bytes = 0
        self._taken.clear()

    def ack(self, n: int) -> None:
        """The first `n` unacknowledged records were delivered: move past them for good."""
        if 0 < n <= len(self._taken):
            self._ack_taken(n)
        elif n > 0:
            self._taken.clear()  # acknowledging records never taken: walk the files
            self._ack_files(n)
        # the cursor file is rewritten at most every 0.2 s: after a crash a few delivered
        # frames may be sent again (at-least-once), never one lost
        now = time.monotonic()
        if now - self._cursor_saved >= 0.2:
            self._cursor_saved = now
            self._save_cursor()

    def _ack_taken(self, n: int) -> None:
        for _ in range(n):
            seg, end = self._taken.popleft()
        self._pending -= n
        self._cur_seg, self._cur_off = seg, end
        while self._segments[0] < seg:  # segments wholly delivered
            old = self._path(self._segments.pop(0))
            self._bytes -= old.stat().st_size
            old.unlink()

    def _ack_files(self, n: int) -> None:
        f = None
        try:
            while n > 0:
                path = self._path(self._cur_seg)
                f = open(path, "rb")
                f.seek(self._cur_off)
                while n > 0:
                    hdr = f.read(_HDR.size)
                    if len(hdr) < _HDR.size:
                        break
                    f.seek(_HDR.unpack(hdr)[0], os.SEEK_CUR)
                    self._cur_off = f.tell()
                    self._pending -= 1
                    n -= 1
                f.close()
                f = None
                if n > 0 or (self._cur_seg != self._segments[-1] and
                             self._cur_off >= path.stat().st_size):
                    if self._cur_seg == self._segments[-1]:
                        break
                    self._segments.remove(self._cur_seg)
                    self._bytes -= path.stat().st_size
                    path.unlink()
                    self._cur_seg, self._cur_off = self._segments[0], 0
        finally:
            if f is not None:
                f.close()

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._save_cursor()
        self._writer.close()
