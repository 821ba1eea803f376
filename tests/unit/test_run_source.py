"""`tocsin connect`'s loop (connectors.base.run_source): every record published, stop honoured
even when the source always has a record ready, the source's error passed on, and the source
closed and the sink flushed either way. In-memory source and sink: pure orchestration."""

from __future__ import annotations

import asyncio

import pytest

from tocsin.connectors.base import run_source


class Source:
    name = "fake"

    def __init__(self, n: int | None, fail_at: int | None = None):
        self.n, self.fail_at, self.closed = n, fail_at, False

    async def start(self) -> None:
        pass

    async def records(self):
        i = 0
        while self.n is None or i < self.n:
            if i == self.fail_at:
                raise RuntimeError("device gone")
            yield i  # never suspends: always a record ready
            i += 1

    async def close(self) -> None:
        self.closed = True


class Sink:
    def __init__(self, stop: asyncio.Event | None = None, stop_after: int = 0):
        self.got: list[int] = []
        self.flushed = False
        self.stop, self.stop_after = stop, stop_after

    def publish(self, r) -> None:
        self.got.append(r)
        if self.stop is not None and len(self.got) == self.stop_after:
            asyncio.get_running_loop().call_soon(self.stop.set)  # as a signal handler does

    def flush(self, timeout: float = 10.0) -> int:
        self.flushed = True
        return 0


def test_every_record_of_a_finite_source_is_published_in_order():
    src, sink = Source(1000), Sink()
    assert asyncio.run(run_source(src, sink)) == 1000
    assert sink.got == list(range(1000)) and src.closed and sink.flushed


def test_stop_ends_an_endless_source_that_never_waits():
    async def go():
        stop = asyncio.Event()
        src, sink = Source(None), Sink(stop, stop_after=3000)
        n = await asyncio.wait_for(run_source(src, sink, stop), 10)
        return n, src, sink

    n, src, sink = asyncio.run(go())
    assert 3000 <= n < 3000 + 4 * 256 and n == len(sink.got)  # within a few yields
    assert src.closed and sink.flushed


def test_the_sources_error_is_raised_after_closing():
    src, sink = Source(None, fail_at=10), Sink()
    with pytest.raises(RuntimeError, match="device gone"):
        asyncio.run(run_source(src, sink))
    assert sink.got == list(range(10)) and src.closed and sink.flushed
