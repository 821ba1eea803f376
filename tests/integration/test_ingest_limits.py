"""The ISO 8583 listener's bounds and TLS on real sockets (the listener in this process, its
producer on the real broker): connections over the cap are closed, a silent connection is
closed after the idle timeout, a fast sender is slowed to the rate limit, and with TLS a
client that trusts the local CA is served while a plaintext client is not."""

from __future__ import annotations

import asyncio
import ssl
import struct
import time

import iso8583
import pytest

from tocsin.connectors import iso8583_codec as iso
from tocsin.connectors.ingest_guard import IsoGuard
from tocsin.connectors.payments_ingest import TxnPublisher, serve_iso
from tocsin.contracts import topics
from tocsin.services.certs import ensure_certs
from tocsin.services.kafka import free_port

pytestmark = pytest.mark.integration
_LEN = struct.Struct(">H")


def _msg(i: int) -> bytes:
    return iso.request(pan="4000000000000002", amount_minor=100 + i, ts_ns=time.time_ns(),
                       stan=i, rrn=f"{i:012d}", terminal="TRMLIM01", merchant="M", mcc=5411,
                       pos_entry_mode="051")


async def _ask(r, w, raw: bytes) -> dict:
    w.write(_LEN.pack(len(raw)) + raw)
    await w.drain()
    n = _LEN.unpack(await asyncio.wait_for(r.readexactly(2), 10))[0]
    return iso8583.decode(await r.readexactly(n), iso.SPEC)[0]


async def _closed(r, within: float) -> bool:
    try:
        return await asyncio.wait_for(r.read(1), within) == b""
    except (ConnectionError, ssl.SSLError):
        return True
    except TimeoutError:
        return False


def _listener(kafka: str, prefix: str, guard: IsoGuard, ssl_ctx=None):
    async def start():
        pub = TxnPublisher(kafka, prefix + topics.TRANSACTIONS, prefix + topics.DEADLETTER)
        await pub.start()
        port = free_port()
        srv = await serve_iso(pub, "127.0.0.1", port, b"test-key-0123456789", guard=guard,
                              ssl=ssl_ctx)
        return pub, srv, port
    return start


def test_cap_idle_timeout_and_rate_limit(kafka, prefix):
    guard = IsoGuard(max_connections=3, idle_timeout_s=1.0, rate_per_s=20.0, burst=5)

    async def main():
        pub, srv, port = await _listener(kafka, prefix, guard)()
        try:
            conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(4)]
            assert (await _ask(*conns[0], _msg(0)))["39"] == "00"
            # the fourth is over the cap: closed at once; the first three stay usable
            assert await _closed(conns[3][0], 2.0)
            assert guard.cap.refused.total == 1
            for _, wr in conns:
                wr.close()
            await asyncio.sleep(0.3)
            # idle: a silent connection is closed after ~1 s, not kept forever (and the
            # slots freed above are usable again: the cap counts open connections)
            r, w = await asyncio.open_connection("127.0.0.1", port)
            t0 = time.monotonic()
            assert await _closed(r, 5.0)
            assert 0.8 <= time.monotonic() - t0 < 4.0
            w.close()
            # rate: 15 requests at 20/s with a burst of 5 take at least (15 - 5) / 20 s
            r, w = await asyncio.open_connection("127.0.0.1", port)
            t0 = time.monotonic()
            codes = [(await _ask(r, w, _msg(10 + i)))["39"] for i in range(15)]
            assert codes == ["00"] * 15 and time.monotonic() - t0 >= 0.45
            w.close()
        finally:
            srv.close()
            await pub.close()

    asyncio.run(main())


def test_tls_listener(kafka, prefix, tmp_path):
    cs = ensure_certs(tmp_path / "certs", "ingest")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cs.cert, cs.key)
    client_ctx = ssl.create_default_context(cafile=str(cs.ca))

    async def main():
        pub, srv, port = await _listener(kafka, prefix, IsoGuard(), server_ctx)()
        try:
            r, w = await asyncio.open_connection("127.0.0.1", port, ssl=client_ctx)
            assert (await _ask(r, w, _msg(1)))["39"] == "00"
            w.close()
            r, w = await asyncio.open_connection("127.0.0.1", port)  # no TLS
            w.write(_LEN.pack(len(_msg(2))) + _msg(2))
            await w.drain()
            assert await _closed(r, 5.0)  # no ISO answer to a plaintext client
            w.close()
        finally:
            srv.close()
            await pub.close()

    asyncio.run(main())
