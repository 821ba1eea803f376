"""Kafka with TLS and SCRAM-SHA-512, end to end, on a broker of its own (free ports, started by
the project's tooling, never the shared plaintext one): a plaintext or wrong-password client is
refused; the plant path (simulator -> OPC UA connector -> worker -> alerts tail) and the
payments path (ISO 8583 + authenticated HTTP ingest -> scoring worker -> scores) run through it;
and no configured secret (SCRAM password, bearer token, PAN key) or PAN shows up in any topic or
log of the run."""

from __future__ import annotations

import asyncio
import signal
import time
import urllib.error
import urllib.request
import uuid

import orjson
import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient

from tests.fraud_helpers import train_tiny
from tests.integration.secure_helpers import Spawner, conf, dump_topics, env_for, find_secrets
from tests.integration.test_plant_to_alert import _opcua_config
from tocsin.config.ingest_security import new_token
from tocsin.connectors import iso8583_codec as iso
from tocsin.connectors.simulator.opcua_server import call_fault, endpoint_url
from tocsin.connectors.simulator.payswitch_live import IsoClient
from tocsin.contracts import topics
from tocsin.contracts.alerts import Alert
from tocsin.contracts.pan import tokenize
from tocsin.contracts.payments import FraudScore, Transaction
from tocsin.services.kafka import free_port
from tocsin.services.kafka_secure import SecureKafkaBroker

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def secure(tmp_path_factory):
    b = SecureKafkaBroker(tmp_path_factory.mktemp("kafka-secure"), port=free_port(),
                          controller_port=free_port(), heap="512m")
    b.start(timeout=150)
    yield b
    b.stop()


def _collect(c: dict, topic: str, until, timeout: float = 60.0, decode=lambda b: b) -> list:
    cons = Consumer({**c, "group.id": f"t-{uuid.uuid4().hex}", "auto.offset.reset": "earliest",
                     "enable.auto.commit": False})
    cons.subscribe([topic])
    items: list = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not until(items):
            m = cons.poll(0.2)
            if m is not None and not m.error():
                items.append((m.key(), decode(m.value())))
    finally:
        cons.close()
    return items


def test_plaintext_and_wrong_password_are_refused(secure):
    good = conf(secure.bootstrap, secure.client_file)
    assert AdminClient(good).list_topics(timeout=20).brokers  # the right credentials work
    plaintext = {"bootstrap.servers": secure.bootstrap}
    for bad in (plaintext, {**good, "sasl.password": "not-the-password"},
                {**good, "sasl.username": "mallory"}):
        with pytest.raises(KafkaException):
            AdminClient({**bad, "log_level": 0}).list_topics(timeout=3)
    for bad in (plaintext, {**good, "sasl.password": "not-the-password"}):
        reports: list = []
        p = Producer({**bad, "message.timeout.ms": 2000, "log_level": 0})
        p.produce("tocsin.refused", b"x", on_delivery=lambda err, _m, r=reports: r.append(err))
        p.flush(5)
        assert len(reports) == 1 and reports[0] is not None  # never acknowledged
    with open(secure.log_path, "rb") as f:
        assert b"Failed authentication" in f.read()


def _post(url: str, body: bytes, token: str | None) -> tuple[int, dict]:
    h = {"Content-Type": "application/json"}
    if token:
        h["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=body, method="POST", headers=h)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, orjson.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, orjson.loads(exc.read())



def test_plant_and_payments_paths_through_tls_and_scram(secure, tmp_path_factory, tmp_path):
    """Both paths at once (their start-ups overlap): simulator -> OPC UA connector -> worker
    -> alerts tail, and ISO 8583 + authenticated HTTP -> ingest -> scoring worker; then no
    secret and no PAN in any topic or log of the run, and no record of the 401 request."""
    model_dir = train_tiny(tmp_path_factory.mktemp("fraud-model"))
    prefix = f"s{uuid.uuid4().hex[:6]}."
    token, token_hash = new_token()
    pan_key = "pan-key-" + uuid.uuid4().hex
    run = Spawner(tmp_path, env_for(secure.bootstrap, secure.client_file, prefix,
                                    TOCSIN_PAN_TOKEN_KEY=pan_key,
                                    TOCSIN_INGEST_TOKEN_HASHES=token_hash))
    c = conf(secure.bootstrap, secure.client_file)
    try:
        port, iso_port, http_port = free_port(), free_port(), free_port()
        sim = run("sim", "opcua", "--port", str(port), name="sim")
        worker = run("worker", name="worker")
        pworker = run("payments", "worker", name="pworker",
                      TOCSIN_FRAUD_MODEL_DIR=str(model_dir))
        ing = run("payments", "ingest", "--iso-port", str(iso_port), "--http-port",
                  str(http_port), name="ingest")
        sim.wait_for("simulator: serving", 60)
        run("connect", "opcua", "--config", _opcua_config(tmp_path, port), name="connector")
        tail = run("alerts", "tail", "--from-beginning", name="tail")
        for p, ready in ((worker, "runtime: ready"), (pworker, "payments worker: ready")):
            p.wait_for(ready, timeout=150)
        ing.wait_for("ingest: ready", timeout=60)

        # plant: readings through TLS + SCRAM, a fault, its alert, seen by the CLI tail
        frames = _collect(c, prefix + topics.READINGS, lambda it: len(it) >= 5, timeout=60)
        assert len(frames) >= 5, run.logs()["connector.log"][-2000:]
        assert asyncio.run(call_fault(endpoint_url(port), "pump-1", "over_temperature"))

        # payments: three ISO 8583 requests, one HTTP request with the token, two without
        now = time.time_ns()
        pans = [f"41111111{i:08d}" for i in range(4)]

        async def switch():
            cl = IsoClient("127.0.0.1", iso_port)
            await cl.connect()
            out = [await cl.send(iso.request(pan=p, amount_minor=999, ts_ns=now, stan=i,
                                             rrn=f"{i:012d}", terminal="TRMSEC01",
                                             merchant="M", mcc=5411, pos_entry_mode="051"))
                   for i, p in enumerate(pans[:3])]
            await cl.close()
            return out

        assert [r["39"] for r in asyncio.run(switch())] == ["00"] * 3
        url = f"http://127.0.0.1:{http_port}/v1/transactions"
        txn = {"txn_id": "HS1", "ts": now, "card_id": pans[3], "terminal_id": "TRMH",
               "amount": 5.0}
        assert _post(url, orjson.dumps({**txn, "txn_id": "HS0"}), None)[0] == 401
        assert _post(url, orjson.dumps({**txn, "txn_id": "HS0"}), token + "x")[0] == 401
        assert _post(url, orjson.dumps(txn), token) == (202, {"accepted": 1})
        # a direct producer that puts a card number in card_id: the worker tokenises it (it
        # stays in clear on the input topic only: the producer's fault, logged by the worker)
        direct_pan = "4000001234567899"
        direct = Transaction("HD1", now, direct_pan, "TRMD", 7.0, "978", "M", "", 5411, "051",
                             now, "kafka")
        p = Producer({**c, "enable.idempotence": True})
        p.produce(prefix + topics.TRANSACTIONS, direct.encode(), key=b"TRMD")
        assert p.flush(20) == 0

        alerts = _collect(c, prefix + topics.ALERTS, lambda it: any(
            a.rule == "high" and a.tag == "bearing_temp" for _, a in it), 60, Alert.decode)
        assert any(a.rule == "high" and a.tag == "bearing_temp" and a.event.value == "raised"
                   for _, a in alerts)
        tail.wait_for("bearing_temp", timeout=30)  # the alert consumer (CLI) saw it
        scores = _collect(c, prefix + topics.PAY_SCORES, lambda it: len(it) >= 5, 90,
                          FraudScore.decode)
        assert {s.txn_id for _, s in scores} == {f"TRMSEC01-{i:012d}-{i:06d}" for i in
                                                  range(3)} | {"HS1", "HD1"}
        assert all(s.card_id.startswith("tok_") for _, s in scores)
        by_id = {s.txn_id: s.card_id for _, s in scores}
        assert by_id["HD1"] == tokenize(direct_pan, pan_key.encode())
        assert by_id["HS1"] == tokenize(pans[3], pan_key.encode())

        tail.p.send_signal(signal.SIGINT)
        time.sleep(1.0)
        dump = dump_topics(c, prefix)
        assert dump[prefix + topics.READINGS] and dump[prefix + topics.TRANSACTIONS]
        assert not any(b"HS0" in m for msgs in dump.values() for m in msgs)  # 401: no record
        logs = {**run.logs(), "broker log": secure.log_path.read_bytes()}
        hits = find_secrets({**logs, **dump}, {
            "SCRAM password": secure.client_password, "admin password": secure.admin_password,
            "bearer token": token, "PAN key": pan_key, **{f"PAN {p}": p for p in pans}})
        assert not hits, hits
        hits = find_secrets({**logs, **dump}, {"direct PAN": direct_pan})
        assert hits == [f"direct PAN in {prefix + topics.TRANSACTIONS}"], hits  # only there
    finally:
        run.stop()
