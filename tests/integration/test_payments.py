"""Fraud scoring end to end on a real broker: ISO 8583 and HTTP ingest -> worker ->
payments.scores; bad input of every feed in the dead-letter topic; features that survive a
worker restart (state from the changelogs); late labels that never leak into earlier scores; the load-aware switch moving
to the light branch under injected load and back."""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request

import iso8583
import orjson
import pytest
from confluent_kafka import Producer

from tests.fraud_helpers import train_tiny
from tests.integration.kafka_helpers import collect, produce, wait_committed
from tocsin.connectors import iso8583_codec as iso
from tocsin.connectors.simulator.hostile import hostile_variants, refused_by
from tocsin.connectors.simulator.payswitch_live import IsoClient
from tocsin.contracts import topics
from tocsin.contracts.alerts import Alert
from tocsin.contracts.deadletter import DeadLetter
from tocsin.contracts.payments import FraudLabel, FraudScore, Transaction
from tocsin.detectors.fraud_features import FraudFeatures
from tocsin.models.fraud_serving import FraudModel
from tocsin.services.kafka import free_port

pytestmark = pytest.mark.integration
DAY = 86_400 * 10**9


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return train_tiny(tmp_path_factory.mktemp("fraud-model") / "fraud")


@pytest.fixture
def pay_worker(spawn, model_dir):
    def start(name: str = "pworker", **env: str):
        w = spawn("payments", "worker", name=name, TOCSIN_FRAUD_MODEL_DIR=str(model_dir), **env)
        w.wait_for("payments worker: ready", timeout=120)
        return w
    return start


def _scores(kafka, prefix, n, timeout=60):
    items = collect(kafka, prefix + topics.PAY_SCORES, lambda it: len(it) >= n,
                    timeout=timeout, decode=FraudScore.decode)
    return [s for _, s in items]


def _post(url: str, body: bytes) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, orjson.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, orjson.loads(exc.read())


def _txn(i: int, ts: int, card="card-1", term="TRM1", amount=20.0) -> Transaction:
    return Transaction(f"k{i}", ts, card, term, amount, "978", "M1", "", 5411, "051",
                       time.time_ns(), "kafka")


def test_iso8583_and_http_ingest_with_bad_input_dead_lettered(kafka, prefix, spawn, pay_worker,
                                                              model_dir):
    iso_port, http_port = free_port(), free_port()
    ing = spawn("payments", "ingest", "--iso-port", str(iso_port), "--http-port",
                str(http_port), name="ingest", TOCSIN_PAN_TOKEN_KEY="k")
    ing.wait_for("ingest: ready", timeout=60)
    # review threshold 0: every transaction is at least "review" and alerted as such
    pay_worker(TOCSIN_FRAUD_REVIEW_THRESHOLD="0", TOCSIN_FRAUD_ALERT_ON="review")
    now = time.time_ns()

    async def switch_side():
        c = IsoClient("127.0.0.1", iso_port)
        await c.connect()
        out = []
        for i in range(4):
            out.append(await c.send(iso.request(
                pan=f"400000000000{i:04d}", amount_minor=1000 + i, ts_ns=now, stan=i,
                rrn=f"{i:012d}", terminal="TRMISO01", merchant="MERISO", mcc=5411,
                pos_entry_mode="051")))
        good = iso.request(pan="4000000000009999", amount_minor=1, ts_ns=now, stan=9,
                           rrn="9", terminal="TRMISO01", merchant="M", mcc=5411,
                           pos_entry_mode="051")
        doc, _ = iso8583.decode(good, iso.SPEC)
        doc["4"] = "0000000ABC12"  # not digits
        bad, _ = iso8583.encode(doc, iso.SPEC)
        out.append(await c.send(bytes(bad)))
        await c.close()
        return out

    resp = asyncio.run(switch_side())
    assert [r["39"] for r in resp] == ["00"] * 4 + ["30"]
    assert resp[-1]["44"] == "DE4"

    url = f"http://127.0.0.1:{http_port}/v1/transactions"
    good = [{"txn_id": f"H{i}", "ts": now + i, "card_id": f"card-h{i}", "terminal_id": "TRMH",
             "amount": 12.5 + i, "mcc": 5812} for i in range(3)]
    assert _post(url, orjson.dumps(good)) == (202, {"accepted": 3})
    code, body = _post(url, orjson.dumps({**good[0], "txn_id": "Hbad", "amount": "lots"}))
    assert code == 422 and body["field"] == "amount" and "amount" in body["error"]
    code, body = _post(url, b"{not json")
    assert code == 400 and "JSON" in body["error"]
    # a direct producer's garbage, hostile transactions (booleans, empty and control-character
    # ids, ragged arrays, huge numbers, null; issue 14) and a label that cannot be read
    hostile = refused_by(Transaction.decode, hostile_variants(orjson.loads(
        _txn(99, now).encode())))
    produce(kafka, prefix + topics.TRANSACTIONS, [(b"x", b"\xffgarbage")]
            + [(b"x", v) for _, v in hostile])
    produce(kafka, prefix + topics.PAY_LABELS, [(b"TRM1", b'{"schema": "tocsin.fraud_label/1"}')])

    scores = _scores(kafka, prefix, 7)
    assert {s.txn_id for s in scores} == {f"TRMISO01-{i:012d}-{i:06d}" for i in range(4)} | {
        "H0", "H1", "H2"}
    version = orjson.loads((model_dir / "meta.json").read_bytes())["version"]
    for s in scores:
        assert s.model_version == version and s.branch in ("full", "light")
        assert s.decision in ("review", "decline") and 0 <= s.score <= 1
        assert s.latency_ms > 0 and s.emitted_ts > s.ingest_ts > 0
    assert all(s.card_id.startswith("tok_") for s in scores if s.txn_id.startswith("TRMISO"))

    alerts = collect(kafka, prefix + topics.PAY_ALERTS, lambda it: len(it) >= 7, timeout=30,
                     decode=Alert.decode)
    by_txn = {a.details["txn_id"]: a for _, a in alerts}
    assert set(by_txn) == {s.txn_id for s in scores}
    for s in scores:
        a = by_txn[s.txn_id]
        assert a.kind == "fraud" and a.asset == s.card_id and a.rule == s.decision
        assert a.event.value == "raised" and a.value == pytest.approx(s.score)
        assert a.severity.value == ("critical" if s.decision == "decline" else "warning")

    dls = collect(kafka, prefix + topics.DEADLETTER, lambda it: len(it) >= 5 + len(hostile),
                  timeout=60, decode=DeadLetter.decode)
    by_source = {}
    for _, d in dls:
        by_source.setdefault(d.source_topic, []).append(d)
    assert "DE4" in by_source["ingest.iso8583"][0].error
    assert sorted(("amount" in d.error, "JSON" in d.error) for d in by_source["ingest.http"]) == [
        (False, True), (True, False)]
    from_kafka = by_source[prefix + topics.TRANSACTIONS]
    assert from_kafka[0].raw_payload() == b"\xffgarbage"
    # (compared by count: the payments dead letters mask digit runs that look like card
    # numbers, and a 19-digit ns timestamp is one of them)
    assert len(from_kafka) == 1 + len(hostile)
    assert all("field '" in d.error for d in from_kafka[1:] if d.raw_payload()[:1] == b"{")
    assert "txn_id" in by_source[prefix + topics.PAY_LABELS][0].error


def test_features_survive_a_worker_restart(kafka, prefix, pay_worker, model_dir):
    t0 = time.time_ns() - DAY
    txns = [_txn(i, t0 + i * 60 * 10**9, amount=10.0 + i) for i in range(21)]
    w1 = pay_worker("w1", TOCSIN_FRAUD_FORCE_BRANCH="full")
    produce(kafka, prefix + topics.TRANSACTIONS, [(t.card_id.encode(), t.encode())
                                                  for t in txns[:20]])
    assert len(_scores(kafka, prefix, 20)) >= 20
    # committed: the card stage's state, outputs and offsets are one Kafka transaction
    wait_committed(kafka, f"tocsin-{prefix}fraud-card", prefix + topics.TRANSACTIONS)
    w1.stop()
    # a fresh data dir: the state can only come back from the table's changelog
    pay_worker("w2", TOCSIN_FRAUD_FORCE_BRANCH="full")
    produce(kafka, prefix + topics.TRANSACTIONS, [(b"card-1", txns[20].encode())])
    last = [s for s in _scores(kafka, prefix, 21) if s.txn_id == "k20"]
    assert len(last) == 1

    model = FraudModel(model_dir)
    tab, seq, pad, _ = FraudFeatures().transform(txns)
    expected = model.score(tab[20:], seq[20:], pad[20:], "full")[0][0]
    tab0, seq0, pad0, _ = FraudFeatures().transform(txns[20:])  # as if the state were lost
    amnesiac = model.score(tab0, seq0, pad0, "full")[0][0]
    assert abs(expected - amnesiac) > 1e-3, "test has no power: history does not matter"
    assert last[0].score == pytest.approx(expected, abs=1e-4)


def test_late_label_does_not_leak_into_earlier_scores(kafka, prefix, pay_worker, model_dir):
    pay_worker(TOCSIN_FRAUD_FORCE_BRANCH="full")
    t0 = time.time_ns() - 10 * DAY
    label = FraudLabel("old", "card-x", "TRML", t0, t0 + 3 * DAY, True)
    # one card: one partition, so the worker sees them in this order (as offline below)
    history = [_txn(i, t0 + i * 3_600 * 10**9, card="cL", term="TRML") for i in range(5)]
    produce(kafka, prefix + topics.PAY_LABELS, [(b"TRML", label.encode())])
    # the label is known to the worker (in wall time) before any transaction
    wait_committed(kafka, f"tocsin-{prefix}fraud-labels", prefix + topics.PAY_LABELS)
    probe = [_txn(10, t0 + 2 * DAY, card="cL", term="TRML"),
             _txn(11, t0 + 4 * DAY, card="cL", term="TRML")]
    seq_in = history + probe
    produce(kafka, prefix + topics.TRANSACTIONS, [(t.card_id.encode(), t.encode())
                                                  for t in seq_in])
    got = {s.txn_id: s.score for s in _scores(kafka, prefix, 7)}

    model = FraudModel(model_dir)

    def offline(reported_ts: int):
        ff = FraudFeatures()
        ff.add_label(FraudLabel("old", "card-x", "TRML", t0, reported_ts, True))
        tab, seq, pad, _ = ff.transform(seq_in)
        return model.score(tab, seq, pad, "full")[0]

    honest, leaky = offline(t0 + 3 * DAY), offline(t0)
    assert abs(honest[5] - leaky[5]) > 1e-4, "test has no power: the label changes nothing"
    assert got["k10"] == pytest.approx(honest[5], abs=1e-4)  # before its arrival: unseen
    assert got["k11"] == pytest.approx(honest[6], abs=1e-4)  # after: counted
    assert abs(got["k11"] - offline(t0 + 100 * DAY)[6]) > 1e-4  # and it did count


def test_switch_goes_light_under_load_and_back(kafka, prefix, pay_worker):
    now = time.time_ns()
    backlog = [_txn(i, now - DAY + i * 10**7, card=f"card-{i % 300}", term=f"T{i % 40}")
               for i in range(3000)]
    # injected load: 3,000 transactions already waiting when the worker starts
    produce(kafka, prefix + topics.TRANSACTIONS, [(t.card_id.encode(), t.encode())
                                                  for t in backlog])
    # budget 1 s: far above this shared machine's idle latency, far below the backlog's
    pay_worker(TOCSIN_FRAUD_BUDGET_MS="1000", TOCSIN_FRAUD_RECOVER_S="1",
               TOCSIN_FRAUD_STATUS_EVERY_S="0.5")
    first = _scores(kafka, prefix, 3000, timeout=120)
    assert len(first) >= 3000
    trickle = []
    p = Producer({"bootstrap.servers": kafka, "linger.ms": 0})
    for i in range(40):  # then light traffic: one transaction every 100 ms
        t = _txn(5000 + i, now + i * 10**8, card=f"card-{i}", term="T1")
        trickle.append(t)
        p.produce(prefix + topics.TRANSACTIONS, t.encode(), key=t.card_id.encode())
        p.poll(0)
        time.sleep(0.1)  # the scenario: pacing the producer (light traffic), not a wait
    assert p.flush(10) == 0
    scores = sorted(_scores(kafka, prefix, 3040, timeout=60), key=lambda s: s.emitted_ts)
    branch = [s.branch for s in scores]
    assert "light" in branch[:3000]
    # boosted trees (the default kind) have no gate; the hybrid's full branch has one
    assert all(s.gate is None for s in scores)
    tail = [(s.branch, round(s.latency_ms, 1)) for s in scores
            if s.txn_id in {t.txn_id for t in trickle[-10:]}]
    assert [b for b, _ in tail] == ["full"] * 10, tail
    changes = sum(a != b for a, b in zip(branch, branch[1:]))
    assert changes <= 4, f"switch flapped {changes} times"
