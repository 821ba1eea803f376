"""The one Source protocol every connector implements, and the loop that runs a source.

A source is set up once (connect, validate its config against the device), then yields
readings frames until it is closed. Publishing (Kafka, store-and-forward) is not the source's
business: :func:`run_source` hands each frame to a sink.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Protocol, runtime_checkable

from tocsin.contracts.readings import ReadingsFrame

log = logging.getLogger(__name__)


@runtime_checkable
class Source(Protocol):
    name: str

    async def start(self) -> None:
        """Connect and validate; raise ConnectorError naming the device or tag at fault."""

    def frames(self) -> AsyncIterator[ReadingsFrame]:
        """Yield frames until closed."""

    async def close(self) -> None:
        """Release connections; idempotent."""


class Sink(Protocol):
    def publish(self, frame: ReadingsFrame) -> None: ...

    def flush(self, timeout: float = 10.0) -> int: ...


async def run_source(source: Source, sink: Sink, stop: asyncio.Event | None = None) -> int:
    """Pump frames from `source` into `sink` until `stop` is set; return frames published."""
    stop = stop or asyncio.Event()
    count = 0
    await source.start()
    frames = source.frames()
    drain = getattr(sink, "drain_forever", None)
    drainer = asyncio.create_task(drain()) if drain else None
    try:
        while not stop.is_set():
            nxt = asyncio.ensure_future(frames.__anext__())
            waiter = asyncio.ensure_future(stop.wait())
            done, _ = await asyncio.wait({nxt, waiter}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            if nxt not in done:
                nxt.cancel()
                break
            try:
                frame = nxt.result()
            except StopAsyncIteration:
                break
            sink.publish(frame)
            count += 1
    finally:
        if drainer:
            drainer.cancel()
        await source.close()
        left = sink.flush()
        if left and getattr(sink, "spool", None) is not None:
            log.warning("%s: %d frames not yet acknowledged by Kafka stay in the spool %s and "
                        "are sent on the next start", source.name, left, sink.spool.dir)
        elif left:
            log.error("%s: %d frames were not acknowledged by Kafka at shutdown", source.name,
                      left)
    return count
