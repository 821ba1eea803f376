"""Transaction feeds into ``payments.transactions``: an ISO 8583 TCP listener and an HTTP
JSON endpoint, one process, one idempotent producer.

Every message is answered: ISO 8583 with DE39 ``00`` (accepted) or ``30`` (format error, DE44
names the data element), HTTP with 202 or 4xx and ``{"error", "field"}``. Malformed input also
goes to ``tocsin.deadletter`` (source ``ingest.iso8583`` / ``ingest.http``, whole payload,
the reason), so nothing vanishes. A request is acknowledged only after Kafka acknowledged the
transaction (acks=all), so an accepted transaction is never lost.

HTTP: ``POST /v1/transactions`` with one transaction object or a list (all or nothing: one bad
item rejects the request, 422, naming the index and field); ``GET /healthz``. The body is the
``tocsin.transaction/1`` schema; ``schema`` may be left out, ``ingest_ts`` is set here.

Security (docs/security.md): PANs are tokenised before Kafka (DE2; over HTTP a ``pan`` field or
a card number in ``card_id``), dead letters and their log lines are masked
(:mod:`tocsin.contracts.pan`); HTTP needs a bearer token whose SHA-256 is configured (401
otherwise, nothing produced); the ISO 8583 listener has a connection cap, an idle timeout and a
per-connection rate limit (:mod:`tocsin.connectors.ingest_guard`); TLS on both is an option.
"""

from __future__ import annotations

import asyncio
import logging
import re
import struct
import time

import orjson
from confluent_kafka import Producer

from tocsin.config.ingest_security import DEV_PAN_KEY, dev_mode, load_ingest_security, load_pan_key
from tocsin.config.kafka_security import client_conf
from tocsin.connectors import iso8583_codec as iso
from tocsin.connectors.http_replies import json_error
from tocsin.connectors.ingest_guard import IsoGuard, bearer_middleware
from tocsin.contracts.deadletter import PAYLOAD_LIMIT, Origin, envelope
from tocsin.contracts.eventtime import TimeGuard
from tocsin.contracts.pan import looks_like_pan, mask_pans, mask_text, tokenize
from tocsin.contracts.payments import TXN, VERSION, Transaction
from tocsin.detectors.bounds import Throttled
from tocsin.errors import ConfigError, SchemaError

log = logging.getLogger("tocsin.ingest")
_LEN = struct.Struct(">H")
_FIELD = re.compile(r"field '([^']+)'")
MAX_BODY = 1 << 20  # an HTTP body over this is answered 413 (and dead-lettered, truncated)
_DRAIN_MAX = 64 << 20  # an oversized body is read and dropped up to this, then cut off


def token_key(dev: bool | None = None) -> bytes:
    """The PAN token key; outside development mode a missing key stops start-up."""
    return load_pan_key(dev=dev)


class TxnPublisher:
    """Produces transactions (keyed by card) and dead letters; awaits Kafka's acks."""

    def __init__(self, bootstrap: str, txn_topic: str, dl_topic: str,
                 deadletter_max_payload: int = PAYLOAD_LIMIT, report_interval_s: float = 60.0):
        self.p = Producer(client_conf(bootstrap, {"enable.idempotence": True,
                           "acks": "all", "linger.ms": 1, "client.id": "tocsin-ingest"}))
        self.txn_topic, self.dl_topic = txn_topic, dl_topic
        self.dl_limit = deadletter_max_payload
        self.report = Throttled(log, "ingest: input rejected", report_interval_s)
        self.accepted = self.rejected = 0
        self._poller: asyncio.Task | None = None

    async def start(self) -> None:
        self._poller = asyncio.get_running_loop().create_task(self._poll())

    async def _poll(self) -> None:
        while True:
            self.p.poll(0)
            await asyncio.sleep(0.001)

    def _produce(self, topic: str, key: bytes, value: bytes) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()

        def done(err, _msg):
            loop.call_soon_threadsafe(
                lambda: fut.done() or (fut.set_exception(RuntimeError(str(err))) if err
                                       else fut.set_result(None)))
        self.p.produce(topic, value, key=key, on_delivery=done)
        return fut

    async def publish(self, txns: list[Transaction]) -> None:
        futs = [self._produce(self.txn_topic, t.card_id.encode(), t.encode()) for t in txns]
        await asyncio.gather(*futs)
        self.accepted += len(txns)

    async def dead_letter(self, source: str, payload: bytes, error: str) -> None:
        """Dead-letter rejected input (mask what must not be stored before calling this: the
        envelope keeps the first bytes and hashes what it is given). Never raises: the
        sender gets its answer even when Kafka does not take the dead letter."""
        self.rejected += 1
        payload, error = mask_pans(payload), mask_text(error)  # no PAN in clear, ever
        try:
            dl = envelope(payload, error, Origin(source, timestamp_ns=time.time_ns()),
                          stage="decode", worker="ingest", ts=time.time_ns(),
                          limit=self.dl_limit)
            await self._produce(self.dl_topic, source.encode(), dl.encode())
        except Exception as exc:
            log.error("dead letter for rejected %s input not stored: %r", source, exc)
        self.report.note(source, example=error[:300])

    async def close(self) -> None:
        if self._poller:
            self._poller.cancel()
        self.p.flush(10)


# ------------------------------------------------------------------ ISO 8583 over TCP
async def serve_iso(pub: TxnPublisher, host: str, port: int, key: bytes,
                    guard: IsoGuard | None = None, ssl=None) -> asyncio.Server:
    guard = guard or IsoGuard()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not guard.cap.enter(_peer(writer)):
            writer.close()
            return
        bucket = guard.bucket()
        try:
            while True:
                raw = await guard.frame(reader)
                if raw is None:  # closed, or silent past the idle timeout
                    return
                await bucket.take()
                doc = None
                try:
                    txn, doc = iso.decode(raw, key, time.time_ns())
                except iso.IsoFieldError as exc:
                    await pub.dead_letter("ingest.iso8583", raw, str(exc))
                    out = iso.response(_partial(raw), "30", exc.field)
                else:
                    try:
                        await pub.publish([txn])
                        out = iso.response(doc, "00")
                    except Exception as exc:  # Kafka refused: tell the switch to retry
                        log.error("kafka did not take %s: %s", txn.txn_id, exc)
                        out = iso.response(doc, "96")  # system malfunction
                writer.write(_LEN.pack(len(out)) + out)
                await writer.drain()
        except (ConnectionResetError, BrokenPipeError):
            pass
        finally:
            guard.cap.leave()
            writer.close()

    return await asyncio.start_server(handle, host, port, ssl=ssl)


def _peer(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "?"


def _partial(raw: bytes) -> dict:
    try:
        return {"t": raw[:4].decode("ascii")}
    except UnicodeDecodeError:
        return {}


# ------------------------------------------------------------------ HTTP JSON


def _protect_card(obj: dict, key: bytes) -> None:
    """Tokenise a PAN sent as ``pan`` or as ``card_id``; refuse one in another text field."""
    pan = obj.pop("pan", None)
    if isinstance(pan, str) and pan:
        obj["card_id"] = tokenize(pan.replace(" ", "").replace("-", ""), key)
    card = obj.get("card_id")
    if isinstance(card, str) and looks_like_pan(card):
        obj["card_id"] = tokenize(card.replace(" ", "").replace("-", ""), key)
    for f in ("terminal_id", "merchant_id", "customer_id", "currency", "pos_entry_mode",
              "source"):
        v = obj.get(f)
        if isinstance(v, str) and looks_like_pan(v):
            raise SchemaError(f"{TXN}: field '{f}' looks like a card number; send card "
                              f"numbers only as 'pan' or 'card_id' (they are tokenised)")


async def _read_bounded(request, max_body: int) -> tuple[bytes, int | None]:
    """-> (body, None) or, when it is over ``max_body``, (its first 64 KiB, its length).
    Never holds more than ``max_body`` + 64 KiB: the rest of an oversized body is read and
    dropped (up to _DRAIN_MAX, so the client can read the 413 instead of a reset)."""
    chunks, n, head = [], 0, b""
    while True:
        chunk = await request.content.read(64 * 1024)
        if not chunk:
            break
        n += len(chunk)
        if n > max_body:
            if not head:
                head = b"".join(chunks)[:64 * 1024] or chunk[:64 * 1024]
                chunks = []
            if n > _DRAIN_MAX:
                break
            continue
        chunks.append(chunk)
    if head or n > max_body:
        return head, max(n, request.content_length or 0)
    return b"".join(chunks), None


def http_app(pub: TxnPublisher, key: bytes = DEV_PAN_KEY, token_hashes: list[str] | None = None,
             max_body: int = MAX_BODY, guard: TimeGuard = TimeGuard()):
    from aiohttp import web

    async def post(request: web.Request) -> web.Response:
        raw, over = await _read_bounded(request, max_body)
        if over is not None or len(raw) > max_body:
            why = f"request body of {over} bytes is over the limit of {max_body} bytes"
            await pub.dead_letter("ingest.http", raw, why + " (first bytes kept)")
            return json_error(413, why)
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            await pub.dead_letter("ingest.http", raw, f"not valid JSON: {exc}")
            return json_error(400, f"not valid JSON: {exc}")
        items = body if isinstance(body, list) else [body]
        now = time.time_ns()
        txns = []
        for i, obj in enumerate(items):
            try:
                if not isinstance(obj, dict):
                    raise SchemaError(f"{TXN}: expected a JSON object, got "
                                      f"{type(obj).__name__}")
                obj.setdefault("schema", f"{TXN}/{VERSION}")
                _protect_card(obj, key)
                t = Transaction.from_obj(obj, now, guard)
            except SchemaError as exc:
                m = _FIELD.search(str(exc))
                await pub.dead_letter("ingest.http", orjson.dumps(obj), str(exc))
                return json_error(422, str(exc), m.group(1) if m else None,
                              i if isinstance(body, list) else None)
            t.ingest_ts, t.source = now, t.source or "http"
            txns.append(t)
        try:
            await pub.publish(txns)
        except Exception as exc:
            return json_error(503, f"Kafka did not acknowledge: {exc}")
        return web.Response(status=202, body=orjson.dumps({"accepted": len(txns)}),
                            content_type="application/json")

    async def health(_request):
        return web.Response(body=orjson.dumps({"accepted": pub.accepted,
                                               "rejected": pub.rejected}),
                            content_type="application/json")

    mw = [bearer_middleware(token_hashes)] if token_hashes else []
    app = web.Application(client_max_size=max_body + 1, middlewares=mw)
    app.router.add_post("/v1/transactions", post)
    app.router.add_get("/healthz", health)
    return app


def ingest_secrets(http: bool, dev: bool | None = None):
    """Key, token hashes and settings, checked before anything listens: outside development
    mode a missing PAN key, or an HTTP ingest without tokens, stops start-up."""
    dev = dev_mode(dev)
    sec = load_ingest_security()
    key, hashes = load_pan_key(dev=dev), sec.hashes()
    if http and not hashes:
        if not dev:
            raise ConfigError("TOCSIN_INGEST_TOKEN_HASHES (or TOCSIN_INGEST_TOKEN_HASHES_FILE) "
                              "is not set: the HTTP ingest needs at least one bearer token "
                              "outside development mode (`tocsin secrets ingest-token` makes one)")
        log.warning("development mode: the HTTP ingest accepts requests WITHOUT a token")
    return key, hashes, sec


async def run_ingest(bootstrap: str, txn_topic: str, dl_topic: str, *, host: str = "127.0.0.1",
                     iso_port: int | None = 8583, http_port: int | None = 8080,
                     stop: asyncio.Event | None = None, dev: bool | None = None,
                     label_topic: str | None = None, max_body: int = MAX_BODY,
                     deadletter_max_payload: int = PAYLOAD_LIMIT,
                     guard: TimeGuard = TimeGuard()) -> None:
    from aiohttp import web

    key, hashes, sec = ingest_secrets(http_port is not None, dev)
    tls = sec.ssl_context()
    pub = TxnPublisher(bootstrap, txn_topic, dl_topic, deadletter_max_payload)
    await pub.start()
    servers, runner = [], None
    if iso_port is not None:
        servers.append(await serve_iso(pub, host, iso_port, key, IsoGuard.from_settings(sec),
                                       ssl=tls))
        print(f"ingest: ISO 8583 on {host}:{iso_port}{' (TLS)' if tls else ''}", flush=True)
    if http_port is not None:
        app = http_app(pub, key, hashes, max_body, guard)
        if label_topic:  # chargebacks: POST /v1/labels (tocsin/connectors/payments_labels.py)
            from tocsin.connectors.payments_labels import add_label_route

            add_label_route(app, pub, label_topic, key)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, host, http_port, ssl_context=tls).start()
        scheme = "https" if tls else "http"
        print(f"ingest: HTTP on {scheme}://{host}:{http_port}/v1/transactions "
              f"({len(hashes)} bearer token(s))", flush=True)
    print(f"ingest: ready -> {txn_topic}", flush=True)
    try:
        await (stop or asyncio.Event()).wait()
    finally:
        for s in servers:
            s.close()
        if runner:
            await runner.cleanup()
        await pub.close()
