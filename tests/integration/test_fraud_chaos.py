"""Fraud chaos: the payments worker on the runtime, several workers, SIGKILLed at random
moments, one added and one removed while a simulated switch with chargebacks streams in; a
read_committed consumer sees exactly one score per transaction, and every score equals
`tocsin eval fraud`'s offline score of the same data (1e-4). Prints the kills survived."""

from __future__ import annotations

import random
import threading
import time
import uuid

import pytest
from confluent_kafka import Consumer, Producer

from tests.fraud_helpers import train_tiny
from tocsin.connectors.kafka_admin import ensure_topics
from tocsin.connectors.simulator.payswitch import PaymentSwitch
from tocsin.contracts import topics
from tocsin.contracts.payments import FraudScore
from tocsin.models.fraud_serving import FraudModel
from tocsin.offline.fraud_eval import evaluate

pytestmark = pytest.mark.integration
P = 4
N_TXNS = 2400
FLOW_S = 60.0  # the transactions are streamed over about this long


class Committed:
    """payments.scores as a read_committed consumer sees it, in a thread."""

    def __init__(self, kafka: str, topic: str):
        self.c = Consumer({"bootstrap.servers": kafka, "group.id": f"chaos-{uuid.uuid4().hex}",
                           "auto.offset.reset": "earliest", "enable.auto.commit": False,
                           "isolation.level": "read_committed"})
        self.c.subscribe([topic])
        self.items: list[FraudScore] = []
        self.go = True
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self) -> None:
        while self.go:
            for m in self.c.consume(500, 0.2):
                if not m.error():
                    self.items.append(FraudScore.decode(m.value()))

    def close(self) -> None:
        self.go = False
        self.t.join(10)
        self.c.close()


def test_fraud_scores_exactly_once_and_offline_equal_across_kill_9(kafka, prefix, spawn,
                                                                    tmp_path):
    model_dir = train_tiny(tmp_path / "model")
    sim = PaymentSwitch(customers=200, terminals=30, seed=11, frauds_per_day=4).generate(10)
    txns = sim.transactions[:N_TXNS]
    labels = [lab for lab in sim.labels if lab.reported_ts <= txns[-1].ts]
    assert len(labels) >= 10
    ensure_topics(kafka, [prefix + t for t in topics.PAYMENTS], P)
    env = {"TOCSIN_PARTITIONS": str(P), "TOCSIN_FRAUD_MODEL_DIR": str(model_dir),
           "TOCSIN_FRAUD_FORCE_BRANCH": "full",
           # a killed worker's sources are waited for until it is back (or its partitions
           # moved): longer than a restart or a session timeout on this machine
           "TOCSIN_FRAUD_ALIGN_IDLE_S": "30", "TOCSIN_LOG_LEVEL": "warning"}
    gen = {"n": 0}

    def start(name: str):
        gen["n"] += 1
        p = spawn("payments", "worker", name=f"{name}-{gen['n']}", TOCSIN_WORKER_NAME=name,
                  **env)
        return p

    workers = {n: start(n) for n in ("w1", "w2")}
    for w in workers.values():
        w.wait_for("payments worker: ready", timeout=180)
    scores = Committed(kafka, prefix + topics.PAY_SCORES)

    prod = Producer({"bootstrap.servers": kafka, "linger.ms": 5, "enable.idempotence": True,
                     "partitioner": "murmur2_random"})
    for lab in labels:  # chargebacks: keyed by terminal, counted from their report time
        prod.produce(prefix + topics.PAY_LABELS, lab.encode(), key=lab.terminal_id.encode())
    assert prod.flush(30) == 0

    def feed() -> None:  # the switch: in event-time order, paced over FLOW_S
        for i, t in enumerate(txns):
            prod.produce(prefix + topics.TRANSACTIONS, t.encode(), key=t.card_id.encode())
            if i % 40 == 0:
                prod.poll(0)
                time.sleep(FLOW_S * 40 / N_TXNS)
        prod.flush(30)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    rng = random.Random(2026)
    kills = rebalances = 0
    t_end = time.monotonic() + FLOW_S
    plan = ["kill", "kill", "add", "kill", "remove", "kill", "kill"]
    for step in plan:
        time.sleep(rng.uniform(3.0, 8.0))
        if time.monotonic() > t_end and kills >= 3:
            break
        if step == "kill":
            name = rng.choice(sorted(workers))
            workers[name].p.kill()  # SIGKILL, at a random moment of its batch
            kills += 1
            time.sleep(rng.uniform(0.5, 2.0))
            workers[name] = start(name)  # same name: its static membership comes back
        elif step == "add":
            workers["w3"] = start("w3")
            rebalances += 1
        elif step == "remove" and "w3" in workers:
            workers.pop("w3").p.kill()
            kills += 1
            rebalances += 1
    feeder.join(120)
    want = {t.txn_id for t in txns}
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline and {s.txn_id for s in scores.items} != want:
        time.sleep(0.5)
    time.sleep(3.0)  # anything duplicated late would show up now
    scores.close()
    got: dict[str, list[float]] = {}
    for s in scores.items:
        got.setdefault(s.txn_id, []).append(s.score)
    print(f"\nfraud chaos: {kills} kill -9 survived, {rebalances} worker added/removed, "
          f"{len(txns)} transactions, {len(labels)} chargebacks, {len(scores.items)} scores")
    missing = want - set(got)
    assert not missing, f"{len(missing)} transactions never scored"
    dup = {k: v for k, v in got.items() if len(v) > 1}
    assert not dup, f"{len(dup)} transactions scored more than once: {list(dup.items())[:5]}"
    assert set(got) == want
    res = evaluate(txns, labels, [t.txn_id in {x.txn_id for x in labels} for t in txns],
                   {"m": FraudModel(model_dir)}, test_from=txns[0].ts, random_forest=False,
                   log=lambda m: None)
    offline = dict(zip(res.txn_ids, res.scores["m"]))
    worst = max(abs(offline[k] - v[0]) for k, v in got.items())
    print(f"fraud chaos: largest |stream - offline| score difference {worst:.2e}")
    assert worst < 1e-4, worst
    assert kills >= 4
