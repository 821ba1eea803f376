"""The shared reconnect policy: exponential ceiling, cap, jitter bounds, reset, clocks."""

from __future__ import annotations

import asyncio
import random

import pytest

from tocsin.connectors.backoff import Backoff


def test_without_jitter_the_delays_double_up_to_the_cap():
    b = Backoff(base_s=0.2, cap_s=3.0, jitter=0.0)
    assert [round(b.next_delay(), 6) for _ in range(7)] == [0.2, 0.4, 0.8, 1.6, 3.0, 3.0, 3.0]


def test_jitter_stays_inside_its_band_and_spreads_the_delays():
    b = Backoff(base_s=1.0, cap_s=8.0, jitter=0.5, rng=random.Random(7))
    seen = []
    for _ in range(200):
        top = b.ceiling()
        d = b.next_delay()
        assert top * 0.5 <= d <= top
        seen.append(d)
    capped = seen[10:]  # past the ramp every ceiling is the cap
    assert min(capped) >= 4.0 and max(capped) <= 8.0
    assert len({round(d, 3) for d in capped}) > 100  # not lock-step


def test_same_seed_same_sequence_and_reset_starts_over():
    a = Backoff(rng=random.Random(1))
    b = Backoff(rng=random.Random(1))
    first = [a.next_delay() for _ in range(5)]
    assert first == [b.next_delay() for _ in range(5)]
    a.reset()
    assert a.attempts == 0 and a.next_delay() <= 0.2


def test_up_to_never_waits_longer_than_the_cap():
    b = Backoff.up_to(0.05, jitter=0.0)
    assert b.base_s == 0.05 and b.next_delay() == 0.05 and b.next_delay() == 0.05
    assert Backoff.up_to(30.0).base_s == 0.2


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="base_s"):
        Backoff(base_s=5, cap_s=1)
    with pytest.raises(ValueError, match="jitter"):
        Backoff(jitter=1.5)


def test_wait_uses_the_injected_clock():
    slept: list[float] = []

    async def fake_sleep(d):
        slept.append(d)

    b = Backoff(base_s=0.5, cap_s=2.0, jitter=0.0)
    asyncio.run(b.wait(fake_sleep))
    b.wait_sync(slept.append)
    assert slept == [0.5, 1.0]
