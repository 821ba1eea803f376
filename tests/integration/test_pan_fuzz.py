"""No card number in clear, anywhere: a seeded fuzz of ISO 8583 messages and HTTP requests,
each carrying a fresh PAN (valid, malformed, mutated, truncated, in the wrong place), through the
real listener and HTTP ingest (production mode: a PAN key and a bearer token configured) into
the real broker; then every message of every topic of the run (dead letters decoded) and the
ingest's log are searched for every PAN sent, the PAN key and the bearer token."""

from __future__ import annotations

import asyncio
import random
import struct
import urllib.error
import urllib.request
import uuid

import iso8583
import orjson
import pytest

from tests.integration.secure_helpers import Spawner, conf, dump_topics, env_for, find_secrets
from tocsin.config.ingest_security import new_token
from tocsin.connectors import iso8583_codec as iso
from tocsin.connectors.kafka_admin import ensure_topics
from tocsin.contracts import topics
from tocsin.contracts.deadletter import DeadLetter
from tocsin.services.kafka import free_port

pytestmark = pytest.mark.integration
_LEN = struct.Struct(">H")
N_ISO, N_HTTP = 240, 120


def _luhn_pan(rng: random.Random) -> str:
    n = rng.choice((13, 15, 16, 16, 16, 19))
    body = [rng.choice("3456")] + [rng.choice("0123456789") for _ in range(n - 2)]
    total = 0
    for i, d in enumerate(reversed(body)):
        v = int(d) * (2 if i % 2 == 0 else 1)
        total += v - 9 if v > 9 else v
    return "".join(body) + str((10 - total % 10) % 10)


def _iso_case(rng: random.Random, i: int, now: int) -> tuple[str, bytes]:
    pan = _luhn_pan(rng)
    raw = iso.request(pan=pan, amount_minor=rng.randint(1, 10**6), ts_ns=now, stan=i,
                      rrn=f"{i:012d}", terminal="TRMFUZZ1", merchant="MFUZZ", mcc=5411,
                      pos_entry_mode="051")
    kind = rng.randrange(9)
    if kind == 0:
        return pan, raw  # valid: accepted and tokenised
    doc, _ = iso8583.decode(raw, iso.SPEC)
    if kind == 1:
        doc["4"] = "00000ABC1200"
    elif kind == 2:
        doc["t"] = rng.choice(["0800", "0400", "9999"])
    elif kind == 3:
        doc["49"] = "EU€"[:3]
    elif kind == 4:
        doc.pop("41")
    if kind <= 4:
        try:
            return pan, bytes(iso8583.encode(doc, iso.SPEC)[0])
        except iso8583.EncodeError:
            return pan, raw[:-3]
    b = bytearray(raw)
    if kind == 5:  # random byte flips
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(len(b))] = rng.randrange(256)
    elif kind == 6:  # truncated
        b = b[:rng.randrange(4, len(b))]
    elif kind == 7:  # a PAN too long to be one, or with a letter in it
        bad = pan + "12345" if rng.random() < 0.5 else pan[:6] + "X" + pan[6:]
        doc["2"] = bad[:19] if "X" in bad else bad
        try:
            b = bytearray(iso8583.encode(doc, iso.SPEC)[0])
        except iso8583.EncodeError:
            b = bytearray(raw.replace(pan.encode(), bad.encode()))
    else:  # the bitmap broken: the PAN lands where other elements are expected
        b[4 + rng.randrange(16)] = ord(rng.choice("0123456789ABCDEF"))
    return pan, bytes(b)


async def _send_iso(port: int, msgs: list[bytes]) -> int:
    """Send each message framed; count the answers (reconnect if the listener hung up)."""
    answered = 0
    r = w = None
    for raw in msgs:
        try:
            if w is None:
                r, w = await asyncio.open_connection("127.0.0.1", port)
            w.write(_LEN.pack(len(raw)) + raw)
            await w.drain()
            n = _LEN.unpack(await asyncio.wait_for(r.readexactly(2), 10))[0]
            await asyncio.wait_for(r.readexactly(n), 10)
            answered += 1
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
            if w is not None:
                w.close()
            r = w = None
    if w is not None:
        w.close()
    return answered


def _http_case(rng: random.Random, i: int, now: int) -> tuple[str, bytes]:
    pan = _luhn_pan(rng)
    base = {"txn_id": f"HF{i}", "ts": now + i, "card_id": pan, "terminal_id": "TRMHF",
            "amount": round(rng.uniform(1, 500), 2), "mcc": 5812}
    kind = rng.randrange(8)
    if kind == 0:
        obj = base
    elif kind == 1:
        obj = {**base, "card_id": None, "pan": pan}
    elif kind == 2:
        obj = {**base, "card_id": " ".join(pan[j:j + 4] for j in range(0, len(pan), 4))}
    elif kind == 3:
        obj = {**base, "amount": "lots"}
    elif kind == 4:
        obj = {**base, "card_id": int(pan)}
    elif kind == 5:
        obj = [base, {**base, "txn_id": f"HF{i}b", "ts": -1}]
    elif kind == 6:
        obj = {**base, "merchant_id": pan}
    else:
        return pan, orjson.dumps(base)[:rng.randrange(10, 60)]  # not JSON any more
    return pan, orjson.dumps(obj)


def _post(url: str, body: bytes, token: str) -> int:
    req = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_no_pan_in_any_topic_or_log_after_a_fuzz(kafka, tmp_path):
    import time

    prefix = f"f{uuid.uuid4().hex[:6]}."
    ensure_topics(kafka, [prefix + t for t in topics.PAYMENTS], 2)
    token, token_hash = new_token()
    pan_key = "fuzz-pan-key-" + uuid.uuid4().hex
    run = Spawner(tmp_path, env_for(kafka, None, prefix, TOCSIN_PAN_TOKEN_KEY=pan_key,
                                    TOCSIN_INGEST_TOKEN_HASHES=token_hash))
    try:
        iso_port, http_port = free_port(), free_port()
        ing = run("payments", "ingest", "--iso-port", str(iso_port), "--http-port",
                  str(http_port), name="ingest")
        ing.wait_for("ingest: ready", timeout=60)
        rng, now = random.Random(8583), time.time_ns()
        iso_cases = [_iso_case(rng, i, now) for i in range(N_ISO)]
        answered = asyncio.run(_send_iso(iso_port, [m for _, m in iso_cases]))
        assert answered >= N_ISO * 0.9, f"only {answered} of {N_ISO} messages answered"
        url = f"http://127.0.0.1:{http_port}/v1/transactions"
        http_cases = [_http_case(rng, i, now) for i in range(N_HTTP)]
        codes = [_post(url, body, token) for _, body in http_cases]
        assert 202 in codes and 422 in codes and 400 in codes and 500 not in codes, codes
        time.sleep(1.0)
        dump = dump_topics(conf(kafka, None), prefix)
        txns = dump.get(prefix + topics.TRANSACTIONS, [])
        dls = [DeadLetter.decode(m.split(b"\x00", 1)[1])
               for m in dump.get(prefix + topics.DEADLETTER, []) if m.startswith(b"ingest")]
        assert len(txns) >= 30 and len(dls) >= 100, (len(txns), len(dls))  # test has power
        assert any(b"DE4" in d.error.encode() for d in dls)
        pans = {f"PAN {p}": p for p, _ in iso_cases + http_cases}
        hits = find_secrets({**run.logs(), **dump},
                            {**pans, "PAN key": pan_key, "bearer token": token})
        assert not hits, hits[:20]
    finally:
        run.stop()
