"""Waiting on conditions, never on the clock: the tests' one way to wait for a result.

A test that sleeps "long enough" is slow when the machine is idle and flaky when it is loaded.
These helpers poll a condition at a short interval and, when the time is up, fail with a
message that says what was awaited and what was seen last.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

INTERVAL_S = 0.1


def _failure(what: str, timeout: float, seen: Callable[[], Any] | None, last: Any) -> str:
    shown = seen() if seen is not None else last
    text = shown if isinstance(shown, str) else repr(shown)
    return f"timed out after {timeout:g} s waiting for {what}; last seen: {text}"


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, *,
             seen: Callable[[], Any] | None = None, interval: float = INTERVAL_S) -> Any:
    """Poll ``predicate()`` until it returns something truthy, and return that.

    ``what`` names the condition for the failure message; ``seen()`` (optional) describes the
    state observed (else the predicate's last value is shown). An exception raised by the
    predicate propagates at once (a process that died is no reason to wait on)."""
    deadline = time.monotonic() + timeout
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(_failure(what, timeout, seen, last))
        time.sleep(interval)


async def async_wait_for(predicate: Callable[[], Any], timeout: float, what: str, *,
                         seen: Callable[[], Any] | None = None,
                         interval: float = INTERVAL_S) -> Any:
    """:func:`wait_for` for coroutines: polls without blocking the event loop."""
    deadline = time.monotonic() + timeout
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(_failure(what, timeout, seen, last))
        await asyncio.sleep(interval)
