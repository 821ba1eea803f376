"""Fraud features do not depend on arrival order: the terminal state against shuffled
arrivals, and the two stages (card -> through topic -> terminal, with the event-time
alignment) against the offline feature code, over partitions drained far apart in event time,
with a restart of the terminal stage from its state midway."""

from __future__ import annotations

import random
import zlib

import numpy as np
import pytest

from tocsin.config.payments import FraudSettings
from tocsin.config.worker import Settings
from tocsin.connectors.simulator.payswitch import PaymentSwitch
from tocsin.contracts import topics
from tocsin.detectors.fraud_features import FEATURES, FraudFeatures
from tocsin.detectors.fraud_terminal import TermState, txn_hash
from tocsin.detectors.partitioner import partition_of
from tocsin.models.fraud_train import build_dataset
from tocsin.streams.fraud_card_stage import CardStage, LabelStage
from tocsin.streams.fraud_term_stage import TerminalStage
from tocsin.streams.runtime.operator import Record

P = 4
IDX = {n: i for i, n in enumerate(FEATURES)}
TERM_COLS = [i for n, i in IDX.items() if n.startswith("term_")]


@pytest.fixture(scope="module")
def sim():
    return PaymentSwitch(customers=150, terminals=25, seed=3, frauds_per_day=3.0).generate(12)


def test_terminal_state_is_the_same_whatever_the_arrival_order(sim):
    """All transactions and labels of the data in three random orders: every transaction's
    terminal features then equal those of the event-time replay (computed as it went)."""
    ff = FraudFeatures()
    labels = sorted(sim.labels, key=lambda x: x.reported_ts)
    j, ref = 0, {}
    for t in sim.transactions:  # the event-time replay (what offline does)
        while j < len(labels) and labels[j].reported_ts <= t.ts:
            ff.add_label(labels[j])
            j += 1
        ref[t.txn_id] = ff.one(t)[0]
    late = 40 * 86400 * 10**9  # the bound covers the whole data set
    for seed in range(3):
        items = [("t", t) for t in sim.transactions] + [("l", lab) for lab in sim.labels]
        random.Random(seed).shuffle(items)
        terms: dict[str, TermState] = {}
        for kind, x in items:
            st = terms.setdefault(x.terminal_id, TermState(late))
            if kind == "t":
                st.add(x.ts, txn_hash(x.txn_id), x.amount)
            elif x.fraud:
                st.add_label(x.txn_id, x.reported_ts, x.txn_ts)
        assert sum(1 for k, x in items if k == "l" and x.fraud) > 5
        for t in sim.transactions:
            row, exact = terms[t.terminal_id].features(t.ts, txn_hash(t.txn_id))
            assert exact
            want = [ref[t.txn_id][i] for i in TERM_COLS]
            assert row == pytest.approx(want, abs=1e-12), t.txn_id


def test_a_label_never_counts_before_its_report_time_in_any_order():
    st = TermState()
    t0 = 1_767_225_600 * 10**9
    day = 86400 * 10**9
    st.add(t0 + 5 * day, 1, 10.0)  # a later transaction arrives first ...
    st.add_label("x", t0 + 3 * day, t0)  # ... and the label reported at t0 + 3 d
    before, _ = st.features(t0 + 3 * day - 1, 2)  # an earlier one, read last
    at, _ = st.features(t0 + 3 * day, 3)
    assert before[IDX["term_frauds_known_30d"] - 18] == 0.0
    assert at[IDX["term_frauds_known_30d"] - 18] > 0.0


Rec = Record  # the runtime's own input record


class Out:
    """Collects sends; through-topic records go to their terminal's partition."""

    def __init__(self, through: str):
        self.through = through
        self.parts: list[list[Rec]] = [[] for _ in range(P)]
        self.sent: list[tuple] = []
        self.dead: list = []

    def send(self, topic, key, value):
        if topic == self.through:
            p = partition_of(key, P)
            q = self.parts[p]
            q.append(Rec(topic, p, len(q), key, value))
        else:
            self.sent.append((topic, key, value))

    def dead_letter(self, record, why, stage):
        self.dead.append((record, why, stage))


class RowScorer:
    """Stands in for the model: keeps each scored transaction's feature row."""

    def __init__(self):
        self.rows: dict[str, list] = {}
        self.count: dict[str, int] = {}

    def maybe_reload(self):
        pass

    def score(self, txns, tab, seq, pad, lag=0):
        for t, row in zip(txns, tab):
            self.rows[t.txn_id] = row.copy()
            self.count[t.txn_id] = self.count.get(t.txn_id, 0) + 1
        return []


def test_two_stages_over_skewed_partitions_equal_the_offline_features(sim, tmp_path):
    s = Settings(partitions=P, topic_prefix="u.")
    fs = FraudSettings(model_dir=tmp_path)
    txn_t, lab_t = s.topic(topics.TRANSACTIONS), s.topic(topics.PAY_LABELS)
    inputs: dict[tuple, list[Rec]] = {}
    for t in sim.transactions:
        q = inputs.setdefault((txn_t, zlib.crc32(t.card_id.encode()) % P), [])
        q.append(Rec(txn_t, q[0].partition if q else zlib.crc32(t.card_id.encode()) % P,
                     len(q), t.card_id.encode(), t.encode()))
    for lab in sorted(sim.labels, key=lambda x: x.reported_ts):
        p = zlib.crc32(lab.terminal_id.encode()) % P
        q = inputs.setdefault((lab_t, p), [])
        q.append(Rec(lab_t, p, len(q), lab.terminal_id.encode(), lab.encode()))
    card, labels = CardStage(s, b"k" * 32), LabelStage(s)
    out = Out(s.topic(topics.PAY_BY_TERMINAL))
    for p in range(P):
        card.open(p, {})
        labels.open(p, {})
    # drain far apart in event time: partition by partition, in uneven chunks
    rng = random.Random(7)
    order = list(inputs)
    rng.shuffle(order)
    queues = {k: list(v) for k, v in inputs.items()}
    while any(queues.values()):
        k = order[0] if queues[order[0]] else rng.choice([k for k in order if queues[k]])
        n = rng.randint(1, 300)
        batch, queues[k] = queues[k][:n], queues[k][n:]
        (card if k[0] == txn_t else labels).process(batch, out)
    clock = [0]
    scorer = RowScorer()
    term_states = {p: {} for p in range(P)}

    def terminal():
        st = TerminalStage(s, fs, scorer, idle_s=5.0, late_s=40 * 86400.0,
                           clock=lambda: clock[0])
        for p in range(P):
            st.open(p, term_states[p])
        return st

    term = terminal()
    pos = [0] * P
    restarted = False
    while any(pos[p] < len(out.parts[p]) for p in range(P)):
        p = rng.choice([p for p in range(P) if pos[p] < len(out.parts[p])])
        n = rng.randint(1, 400)
        term.process(out.parts[p][pos[p]:pos[p] + n], out)
        pos[p] += n
        clock[0] += 10**6  # 1 ms a batch: no source goes idle while data flows
        if not restarted and sum(pos) > sum(map(len, out.parts)) // 2:
            term, restarted = terminal(), True  # a restart: memory gone, state restored
    clock[0] += 10 * 10**9  # the sources went quiet: the rest is released
    term.tick(0, out)
    assert not out.dead
    ds = build_dataset(sim.transactions, sim.labels, sim.fraud)
    assert set(scorer.count) == {t.txn_id for t in sim.transactions}
    assert set(scorer.count.values()) == {1}  # one score per transaction
    want = dict(zip((t.txn_id for t in sim.transactions), ds.tab))
    worst = max(float(np.abs(scorer.rows[k] - want[k]).max()) for k in want)
    assert worst <= 1e-6
    assert term.inexact == 0
