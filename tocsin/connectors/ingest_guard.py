"""The payment listeners' gatekeepers: bearer-token authentication for HTTP, and for the
ISO 8583 listener a connection cap, an idle timeout and a per-connection rate limit.

Refusals are counted and logged at most once per interval (never one line per attempt, so a
flood cannot fill the disk), and an unauthenticated request never produces a Kafka record.
"""

from __future__ import annotations

import asyncio
import logging
import time

from tocsin.config.ingest_security import token_ok

log = logging.getLogger("tocsin.ingest")
PUBLIC_PATHS = frozenset({"/healthz"})


class Throttled:
    """Counts refusals of one kind; logs the count at most every ``every_s`` seconds."""

    def __init__(self, what: str, every_s: float = 10.0):
        self.what, self.every_s = what, every_s
        self.total = self._since = 0
        self._last = float("-inf")

    def hit(self, detail: str = "") -> None:
        self.total += 1
        self._since += 1
        now = time.monotonic()
        if now - self._last >= self.every_s:
            log.warning("%s: %d in the last %.0f s (%d in all)%s", self.what, self._since,
                        min(now - self._last, 1e9) if self._last > 0 else 0, self.total,
                        f"; last from {detail}" if detail else "")
            self._last, self._since = now, 0


def bearer_middleware(hashes: list[str]):
    """aiohttp middleware: every path but ``/healthz`` needs ``Authorization: Bearer <token>``
    whose SHA-256 is in ``hashes``; otherwise 401 before the body is read."""
    from aiohttp import web

    refused = Throttled("HTTP ingest: requests without a valid bearer token refused (401)")

    @web.middleware
    async def auth(request: web.Request, handler):
        if request.path in PUBLIC_PATHS or token_ok(request.headers.get("Authorization"),
                                                    hashes):
            return await handler(request)
        refused.hit(request.remote or "?")
        return web.json_response({"error": "missing or invalid bearer token", "field": None},
                                 status=401, headers={"WWW-Authenticate": 'Bearer realm="tocsin"'})

    auth.refused = refused  # type: ignore[attr-defined]
    return auth


class ConnectionCap:
    """At most ``limit`` open connections; the one over the limit is closed at once."""

    def __init__(self, limit: int):
        self.limit, self.open = limit, 0
        self.refused = Throttled(f"ISO 8583 listener: connections over the cap of {limit} closed")

    def enter(self, peer: str = "") -> bool:
        if self.open >= self.limit:
            self.refused.hit(peer)
            return False
        self.open += 1
        return True

    def leave(self) -> None:
        self.open -= 1


class TokenBucket:
    """Per-connection rate limit: ``rate`` messages/s sustained, ``burst`` at once. Excess is
    delayed (back-pressure on the sender's socket), never dropped: a switch that sends too
    fast gets slower answers, not lost transactions."""

    def __init__(self, rate: float, burst: int):
        self.rate, self.burst = rate, float(burst)
        self.tokens, self.t = float(burst), time.monotonic()
        self.delayed = 0

    def delay(self) -> float:
        """Take one token; return how long to wait before handling the message."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.t) * self.rate)
        self.t = now
        self.tokens -= 1.0
        if self.tokens >= 0:
            return 0.0
        self.delayed += 1
        return -self.tokens / self.rate

    async def take(self) -> None:
        d = self.delay()
        if d > 0:
            await asyncio.sleep(d)


async def read_frame(reader: asyncio.StreamReader, idle_timeout_s: float) -> bytes | None:
    """One 2-byte-length-prefixed frame, or None when the peer closed or stayed silent for
    ``idle_timeout_s`` (the whole frame must arrive within it: no slow-drip holding)."""
    try:
        async with asyncio.timeout(idle_timeout_s):
            head = await reader.readexactly(2)
            return await reader.readexactly(int.from_bytes(head, "big"))
    except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
        return None


class IsoGuard:
    """The ISO 8583 listener's bounds, shared by all its connections."""

    def __init__(self, max_connections: int = 256, idle_timeout_s: float = 60.0,
                 rate_per_s: float = 2000.0, burst: int = 4000):
        self.cap = ConnectionCap(max_connections)
        self.idle_timeout_s, self.rate_per_s, self.burst = idle_timeout_s, rate_per_s, burst
        self.idle_closed = 0

    @classmethod
    def from_settings(cls, sec) -> "IsoGuard":
        """From :class:`~tocsin.config.ingest_security.IngestSecurity`."""
        return cls(sec.iso_max_connections, sec.iso_idle_timeout_s, sec.iso_rate_per_s,
                   sec.iso_burst)

    def bucket(self) -> TokenBucket:
        return TokenBucket(self.rate_per_s, self.burst)

    async def frame(self, reader: asyncio.StreamReader) -> bytes | None:
        return await read_frame(reader, self.idle_timeout_s)
