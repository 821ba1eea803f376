"""Fraud labels (chargebacks) into ``payments.labels``: ``POST /v1/labels`` on the ingest's
HTTP server, and a file import (``tocsin payments labels import``).

A label says: transaction ``txn_id`` (card, terminal, ``txn_ts``) was fraud, and the
institution learnt it at ``reported_ts``. The worker parks it on the terminal and counts it
only for transactions at or after ``reported_ts`` (never earlier, whatever order the topics
are read in), so labels can be sent late, early or twice without leaking into earlier scores.

Validation is the transactions' (``tocsin.fraud_label/1``: types, ``reported_ts >=
txn_ts``) plus bounds: non-empty ids, times after 2000-01-01, and ``reported_ts`` not more
than :data:`MAX_FUTURE_NS` ahead of this clock. HTTP answers like the transaction endpoint:
202, or 400 (not JSON) / 422 (``{"error", "field", "index"}``; all or nothing), and the
rejected input goes to the dead-letter topic (source ``ingest.http.labels``).
"""

from __future__ import annotations

import re
import time

import orjson

from tocsin.contracts.payments import LABEL, VERSION, FraudLabel
from tocsin.errors import SchemaError

MAX_FUTURE_NS = 300 * 10**9  # clock skew allowed on reported_ts
MIN_TS = 946_684_800 * 10**9  # 2000-01-01
_FIELD = re.compile(r"field '([^']+)'")
SOURCE = "ingest.http.labels"


def label_from_obj(obj, now_ns: int) -> FraudLabel:
    """One label from a JSON object, validated; :class:`SchemaError` names the field."""
    if not isinstance(obj, dict):
        raise SchemaError(f"{LABEL}: expected a JSON object, got {type(obj).__name__}")
    obj = {"schema": f"{LABEL}/{VERSION}", "fraud": True, **obj}
    lab = FraudLabel.decode(orjson.dumps(obj))
    for key in ("txn_id", "card_id", "terminal_id"):
        if not getattr(lab, key):
            raise SchemaError(f"{LABEL}: field '{key}' must not be empty")
    for key in ("txn_ts", "reported_ts"):
        if getattr(lab, key) < MIN_TS:
            raise SchemaError(f"{LABEL}: field '{key}' must be ns since the epoch after 2000, "
                              f"got {getattr(lab, key)}")
    if lab.reported_ts > now_ns + MAX_FUTURE_NS:
        raise SchemaError(f"{LABEL}: field 'reported_ts' is in the future "
                          f"({(lab.reported_ts - now_ns) / 1e9:.0f} s ahead of this clock)")
    return lab


def add_label_route(app, pub, label_topic: str) -> None:
    """``POST /v1/labels`` on the ingest's aiohttp app, publishing through ``pub``."""
    from aiohttp import web

    from tocsin.connectors.http_replies import json_error

    async def post(request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            await pub.dead_letter(SOURCE, raw, f"not valid JSON: {exc}")
            return json_error(400, f"not valid JSON: {exc}")
        items = body if isinstance(body, list) else [body]
        now = time.time_ns()
        labels = []
        for i, obj in enumerate(items):
            try:
                labels.append(label_from_obj(obj, now))
            except SchemaError as exc:
                m = _FIELD.search(str(exc))
                await pub.dead_letter(SOURCE, orjson.dumps(obj), str(exc))
                return json_error(422, str(exc), m.group(1) if m else None,
                              i if isinstance(body, list) else None)
        try:
            import asyncio

            await asyncio.gather(*(pub._produce(label_topic, lab.terminal_id.encode(),
                                                lab.encode()) for lab in labels))
        except Exception as exc:
            return json_error(503, f"Kafka did not acknowledge: {exc}")
        return web.Response(status=202, body=orjson.dumps({"accepted": len(labels)}),
                            content_type="application/json")

    app.router.add_post("/v1/labels", post)


def publish_labels(bootstrap: str, topic: str, labels: list[FraudLabel]) -> int:
    """Produce ``labels`` (keyed by terminal, acks=all); raises if Kafka refused any."""
    from confluent_kafka import Producer

    from tocsin.errors import ConnectorError

    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
                  "linger.ms": 5, "client.id": "tocsin-labels-import"})
    errors: list[str] = []
    for lab in labels:
        p.produce(topic, lab.encode(), key=lab.terminal_id.encode(),
                  on_delivery=lambda err, _m: err and errors.append(str(err)))
        p.poll(0)
    left = p.flush(30)
    if errors or left:
        raise ConnectorError(f"Kafka at {bootstrap} did not take {len(errors) + left} of "
                             f"{len(labels)} labels: {errors[:1]}")
    return len(labels)
