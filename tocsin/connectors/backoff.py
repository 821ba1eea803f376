"""One reconnect/retry delay policy for every connector: exponential, capped, with jitter.

Before this there were three loops (OPC UA from 0.5 s, Modbus and the InfluxDB sink from
0.2 s, all doubling without jitter), so a fleet of connectors that lost the same server
retried in lock-step. The policy is "full jitter" over an exponential ceiling: each delay is
drawn uniformly between ``ceiling * (1 - jitter)`` and the ceiling, the ceiling doubles up to
``cap_s``; :meth:`Backoff.reset` after a success starts again from ``base_s``.

The random source and the sleep are injected, so tests check the sequence without waiting.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field


@dataclass
class Backoff:
    base_s: float = 0.2
    cap_s: float = 30.0
    factor: float = 2.0
    jitter: float = 0.5  # 0: the exact ceiling every time; 1: anywhere in [0, ceiling]
    rng: random.Random = field(default_factory=random.Random, repr=False)
    attempts: int = 0

    def __post_init__(self) -> None:
        if not (0 < self.base_s <= self.cap_s):
            raise ValueError(f"backoff: need 0 < base_s ({self.base_s}) <= cap_s ({self.cap_s})")
        if self.factor < 1 or not (0 <= self.jitter <= 1):
            raise ValueError("backoff: factor must be >= 1 and jitter within [0, 1]")

    @classmethod
    def up_to(cls, cap_s: float, **kw) -> "Backoff":
        """The connectors' policy: from 0.2 s (or the cap, if smaller) up to `cap_s`."""
        return cls(base_s=min(cls.base_s, cap_s), cap_s=cap_s, **kw)

    def ceiling(self) -> float:
        """The upper bound of the next delay (before jitter)."""
        return min(self.cap_s, self.base_s * self.factor ** min(self.attempts, 64))

    def next_delay(self) -> float:
        top = self.ceiling()
        self.attempts += 1
        return top - self.jitter * top * self.rng.random()

    def reset(self) -> None:
        self.attempts = 0

    async def wait(self, sleep: Callable[[float], Awaitable[object]] = asyncio.sleep) -> float:
        """Sleep for the next delay (asyncio); returns the delay slept."""
        d = self.next_delay()
        await sleep(d)
        return d

    def wait_sync(self, sleep: Callable[[float], object] = time.sleep) -> float:
        """Same for threads and blocking loops (pass a sleep that keeps a consumer alive)."""
        d = self.next_delay()
        sleep(d)
        return d
