"""`tocsin eval fraud` and the stream agree: the same simulated transactions (a backlog on two
partitions written far apart in event time) scored by the
worker on a real broker and offline give the same score for every transaction (1e-4), with
chargebacks sent through both ways in (POST /v1/labels and `tocsin payments labels import`),
counted only from their report time on in both. A chargeback that carries a card number (a
PAN) reaches payments.labels with the card's token, by either way in."""

from __future__ import annotations

import csv
import subprocess
import sys
import urllib.error
import urllib.request

import orjson
import pytest
from confluent_kafka import Producer

from tests.fraud_helpers import train_tiny
from tests.integration.kafka_helpers import collect
from tocsin.config.ingest_security import DEV_PAN_KEY
from tocsin.connectors.simulator.payswitch import PaymentSwitch
from tocsin.contracts import topics
from tocsin.contracts.pan import tokenize
from tocsin.contracts.payments import FraudLabel, FraudScore
from tocsin.detectors.partitioner import partition_of
from tocsin.models.fraud_serving import FraudModel
from tocsin.models.fraud_train import build_dataset
from tocsin.offline.fraud_eval import evaluate
from tocsin.services.kafka import free_port

pytestmark = pytest.mark.integration


def _post(url: str, body: bytes) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, orjson.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, orjson.loads(exc.read())


def test_stream_and_offline_eval_agree_with_chargebacks(kafka, prefix, spawn, tmp_path):
    # the deployed kind of model: trees stacked with a forest (`--stack auto` picks it when it
    # is better on validation), so both tree ensembles of the graph are checked in the stream
    model_dir = train_tiny(tmp_path / "model" / "fraud", stack=True, stack_trees=20)
    assert "stack" in FraudModel(model_dir).meta
    sim = PaymentSwitch(customers=80, terminals=10, seed=21, frauds_per_day=4).generate(6)
    txns = sim.transactions[:900]
    labels = [lab for lab in sim.labels if lab.reported_ts <= txns[-1].ts]
    assert len(labels) >= 6
    half = len(labels) // 2

    port = free_port()
    ing = spawn("payments", "ingest", "--iso-port", "-1", "--http-port", str(port), name="ing")
    ing.wait_for("ingest: ready", timeout=60)

    url = f"http://127.0.0.1:{port}/v1/labels"
    body = [orjson.loads(lab.encode()) for lab in labels[:half]]
    bad = {**body[0], "reported_ts": body[0]["txn_ts"] - 1}
    code, err = _post(url, orjson.dumps(body[:1] + [bad]))
    assert code == 422 and err["field"] == "reported_ts" and err["index"] == 1
    assert _post(url, orjson.dumps(body)) == (202, {"accepted": half})
    # card numbers in chargebacks: on a terminal no transaction uses, so scores are unchanged
    pan_http, pan_file = "4111111111111111", "5500 0000 0000 0004"
    one = {"txn_id": "pan-http", "pan": pan_http, "terminal_id": "TPAN",
           "txn_ts": txns[0].ts, "reported_ts": txns[0].ts + 1}
    assert _post(url, orjson.dumps(one)) == (202, {"accepted": 1})
    path = tmp_path / "chargebacks.csv"
    with open(path, "w", newline="") as fh:
        wr = csv.writer(fh)
        wr.writerow(["txn_id", "card_id", "terminal_id", "txn_ts", "reported_ts"])
        for lab in labels[half:]:
            wr.writerow([lab.txn_id, lab.card_id, lab.terminal_id, lab.txn_ts, lab.reported_ts])
        wr.writerow(["pan-file", pan_file, "TPAN", txns[0].ts, txns[0].ts + 1])
    out = subprocess.run([sys.executable, "-m", "tocsin.cli", "payments", "labels", "import",
                          str(path)], env=w_env(kafka, prefix), capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert f"{len(labels) - half + 1} labels" in out.stdout
    on_topic = {lab.txn_id: lab for _, lab in collect(
        kafka, prefix + topics.PAY_LABELS, lambda it: len(it) >= len(labels) + 2, timeout=60,
        decode=FraudLabel.decode)}
    assert on_topic["pan-http"].card_id == tokenize(pan_http, DEV_PAN_KEY)
    assert on_topic["pan-file"].card_id == tokenize(pan_file.replace(" ", ""), DEV_PAN_KEY)

    # a backlog keyed by card over both partitions, partition 1 written only after all of
    # partition 0: the stages drain them at their own pace and the terminal stage must align
    # them (labels count by their report time, whenever they are read)
    p = Producer({"bootstrap.servers": kafka, "linger.ms": 5})
    by_part = [[t for t in txns if hash_part(t.card_id) == k] for k in (0, 1)]
    assert all(len(b) > 100 for b in by_part)
    for k, part in enumerate(by_part):
        for t in part:
            p.produce(prefix + topics.TRANSACTIONS, t.encode(), key=t.card_id.encode(),
                      partition=k)
        assert p.flush(30) == 0
    spawn("payments", "worker", "--data-dir", str(tmp_path / "wdata"), "--app-id", "agree",
          name="pw", TOCSIN_FRAUD_MODEL_DIR=str(model_dir), TOCSIN_FRAUD_FORCE_BRANCH="full")
    got = {s.txn_id: s.score for _, s in collect(
        kafka, prefix + topics.PAY_SCORES, lambda it: len(it) >= len(txns), timeout=180,
        decode=FraudScore.decode)}
    assert len(got) == len(txns)

    model = FraudModel(model_dir)
    res = evaluate(txns, labels, [t.txn_id in {x.txn_id for x in labels} for t in txns],
                   {"m": model}, test_from=txns[0].ts, random_forest=False, log=lambda m: None)
    offline = dict(zip(res.txn_ids, res.scores["m"]))
    assert set(offline) == set(got)
    worst = max(abs(offline[k] - got[k]) for k in got)
    assert worst < 1e-4, worst
    # the chargebacks mattered to the features (else this test could not see a leak)
    with_l = build_dataset(txns, labels, [0] * len(txns)).tab
    without = build_dataset(txns, [], [0] * len(txns)).tab
    assert (abs(with_l - without) > 1e-6).any()


def hash_part(card_id: str) -> int:
    return partition_of(card_id.encode(), 2)


def w_env(kafka: str, prefix: str) -> dict:
    import os

    return dict(os.environ, TOCSIN_BROKER=kafka, TOCSIN_TOPIC_PREFIX=prefix, TOCSIN_DEV="1")
