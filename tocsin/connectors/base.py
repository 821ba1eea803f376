"""The one Source protocol every connector implements, and the loop that runs a source.

A source is set up once (connect or listen, validate its config against the device), then
yields records until it is closed. One protocol, typed by its record: plant connectors (OPC
UA, Modbus) yield :class:`ReadingsFrame`, the payment feeds :class:`Transaction`, the DICOM
edges :class:`StudyImage`. Pull sources poll a device; push sources (listeners, watchers)
hand over what their peers sent through :class:`tocsin.connectors.inbox.Inbox`.
Publishing (Kafka, store-and-forward) is not the source's business: :func:`run_source` hands
each record to a sink. Every implementation is listed in :mod:`tocsin.connectors.registry`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Protocol, TypeVar, runtime_checkable

from tocsin.contracts.readings import ReadingsFrame

log = logging.getLogger(__name__)
T_co = TypeVar("T_co", covariant=True)


@runtime_checkable
class Source(Protocol[T_co]):
    name: str

    async def start(self) -> None:
        """Connect and validate; raise ConnectorError naming the device or tag at fault."""

    def records(self) -> AsyncIterator[T_co]:
        """Yield records until closed."""

    async def close(self) -> None:
        """Release connections; idempotent."""


class Sink(Protocol):
    def publish(self, frame: ReadingsFrame) -> None: ...

    def flush(self, timeout: float = 10.0) -> int: ...


async def run_source(source: Source[ReadingsFrame], sink: Sink, stop: asyncio.Event | None = None) -> int:
    """Pump records from `source` into `sink` until `stop` is set; return records published.

    One task reads and publishes; `stop` cancels it. (A race of a next-record future and a
    stop future per record cost about 60 µs a record, more than the rest of the loop.)"""
    stop = stop or asyncio.Event()
    count = 0
    await source.start()
    drain = getattr(sink, "drain_forever", None)
    drainer = asyncio.create_task(drain()) if drain else None

    async def forward() -> None:
        nonlocal count
        async for frame in source.records():
            sink.publish(frame)
            count += 1
            if count % 256 == 0:  # a source that always has a record ready never suspends
                await asyncio.sleep(0)

    reader = asyncio.create_task(forward())
    waiter = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({reader, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if reader.done():
            reader.result()  # the source's or the sink's error, as before
        else:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
    finally:
        waiter.cancel()
        reader.cancel()
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
