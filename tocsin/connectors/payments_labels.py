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

Card numbers: a label's ``card_id`` must name the card as the transactions do, and those carry
a token (:func:`tocsin.contracts.pan.tokenize`, keyed with the PAN key), so a PAN sent as
``pan`` or as ``card_id`` is tokenised with the same key here (:func:`protect_label`) before
anything is published -- over HTTP and in the file import. A card number in another text
field is refused (422), as for transactions.
"""

from __future__ import annotations

import re
import time

import orjson

from tocsin.contracts.pan import looks_like_pan, tokenize
from tocsin.contracts.payments import LABEL, VERSION, FraudLabel
from tocsin.errors import SchemaError

MAX_FUTURE_NS = 300 * 10**9  # clock skew allowed on reported_ts
MIN_TS = 946_684_800 * 10**9  # 2000-01-01
_FIELD = re.compile(r"field '([^']+)'")
SOURCE = "ingest.http.labels"


def _digits(pan: str) -> str:
    return pan.replace(" ", "").replace("-", "")


def protect_obj(obj: dict, key: bytes) -> dict:
    """A copy of ``obj`` with a PAN in ``pan``/``card_id`` replaced by its token (the
    transactions' rule, :func:`tocsin.connectors.payments_ingest._protect_card`)."""
    obj = dict(obj)
    pan = obj.pop("pan", None)
    if isinstance(pan, str) and pan:
        if not looks_like_pan(pan):
            raise SchemaError(f"{LABEL}: field 'pan' is not a card number (12-19 digits)")
        obj["card_id"] = tokenize(_digits(pan), key)
    card = obj.get("card_id")
    if isinstance(card, str) and looks_like_pan(card):
        obj["card_id"] = tokenize(_digits(card), key)
    for f in ("txn_id", "terminal_id", "scenario"):
        v = obj.get(f)
        if isinstance(v, str) and looks_like_pan(v):
            raise SchemaError(f"{LABEL}: field '{f}' looks like a card number; send card "
                              "numbers only as 'pan' or 'card_id' (they are tokenised)")
    return obj


def protect_label(lab: FraudLabel, key: bytes) -> FraudLabel:
    """``lab`` with a PAN in ``card_id`` tokenised (a file's chargebacks)."""
    if looks_like_pan(lab.card_id):
        lab.card_id = tokenize(_digits(lab.card_id), key)
    for f in ("txn_id", "terminal_id", "scenario"):
        if looks_like_pan(getattr(lab, f) or ""):
            raise SchemaError(f"{LABEL}: field '{f}' looks like a card number (txn "
                              f"{lab.txn_id if f != 'txn_id' else '?'}); card numbers "
                              "belong in 'card_id' only")
    return lab


def label_from_obj(obj, now_ns: int, key: bytes | None = None) -> FraudLabel:
    """One label from a JSON object, validated; :class:`SchemaError` names the field.
    With ``key`` a PAN in ``pan``/``card_id`` becomes the card's token."""
    if not isinstance(obj, dict):
        raise SchemaError(f"{LABEL}: expected a JSON object, got {type(obj).__name__}")
    if key is not None:
        obj = protect_obj(obj, key)
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


def add_label_route(app, pub, label_topic: str, key: bytes) -> None:
    """``POST /v1/labels`` on the ingest's aiohttp app, publishing through ``pub``; PANs are
    tokenised with ``key``, the transactions' PAN key."""
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
                labels.append(label_from_obj(obj, now, key))
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
