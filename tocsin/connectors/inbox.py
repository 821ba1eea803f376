"""The hand-over between a push source's protocol handlers and its ``records()`` consumer.

Listeners (ISO 8583, HTTP, DICOM C-STORE) and watchers are driven by their peers, not by the
consumer, so :class:`tocsin.connectors.base.Source` is implemented on top of a bounded queue.
A handler's :meth:`Inbox.put` returns only once the consumer is done with the record (it asked
for the next one, or stopped iterating), so a peer is answered after the sink had the record,
never before; a full queue makes handlers wait (back-pressure), and closing the source fails
what is still waiting, so those peers get an error answer and retry.

Refused input (a malformed message, an unsupported image) is not a record: handlers report it
with :meth:`Inbox.reject`, which counts it, keeps the last few reasons and calls `on_reject`
(e.g. a dead-letter publisher).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Generic, TypeVar

from tocsin.errors import ConnectorError

T = TypeVar("T")
_CLOSED = object()


class Inbox(Generic[T]):
    def __init__(self, name: str, maxsize: int = 1000, *,
                 on_reject: Callable[[str, bytes, str], object] | None = None,
                 keep_rejects: int = 100):
        self.name, self.maxsize, self.on_reject = name, maxsize, on_reject
        self.accepted = self.rejected = 0
        self.rejects: deque[tuple[str, str]] = deque(maxlen=keep_rejects)  # (origin, reason)
        self.closed = False
        self._q: asyncio.Queue | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self) -> None:
        """Attach to the running loop (the source's start()); handlers may run in threads."""
        self._loop = asyncio.get_running_loop()
        self._q = asyncio.Queue(self.maxsize)
        self.closed = False

    async def put(self, items: Sequence[T]) -> None:
        """Hand over `items`; returns when the consumer is done with all of them."""
        if self._q is None or self._loop is None or self.closed:
            raise ConnectorError(f"{self.name}: source is not running")
        futs = []
        for item in items:
            fut = self._loop.create_future()
            await self._q.put((item, fut))
            if self.closed:  # closed while we waited for room: the item was never taken
                fut.cancel()
                raise ConnectorError(f"{self.name}: source closed")
            futs.append(fut)
        await asyncio.gather(*futs)
        self.accepted += len(futs)

    def put_from_thread(self, item: T, timeout: float = 30.0) -> None:
        """:meth:`put` for handlers running in other threads (pynetdicom, file scans)."""
        if self._loop is None:
            raise ConnectorError(f"{self.name}: source is not running")
        fut = asyncio.run_coroutine_threadsafe(self.put([item]), self._loop)
        try:
            fut.result(timeout)
        except concurrent.futures.TimeoutError as exc:
            fut.cancel()
            raise ConnectorError(f"{self.name}: the consumer did not take the record within "
                                 f"{timeout:g} s") from exc

    def reject(self, origin: str, payload: bytes, reason: str):
        self.rejected += 1
        self.rejects.append((origin, reason))
        return self.on_reject(origin, payload, reason) if self.on_reject else None

    async def records(self) -> AsyncIterator[T]:
        if self._q is None:
            raise ConnectorError(f"{self.name}: start() first")
        q, fut = self._q, None
        try:
            while True:
                item, fut = await q.get()
                if item is _CLOSED:
                    fut = None
                    return
                yield item
                if not fut.done():
                    fut.set_result(None)
                fut = None
        finally:  # the consumer stopped after taking a record: it is done with it
            if fut is not None and not fut.done():
                fut.set_result(None)

    def close(self) -> None:
        """Stop: fail every record not yet taken, end records(); idempotent."""
        if self._q is None or self.closed:
            return
        self.closed = True
        while not self._q.empty():
            item, fut = self._q.get_nowait()
            if item is not _CLOSED and not fut.done():
                fut.set_exception(ConnectorError(f"{self.name}: closed before the record "
                                                 "was taken"))
        self._q.put_nowait((_CLOSED, None))
