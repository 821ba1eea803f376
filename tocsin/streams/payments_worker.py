"""The payments worker on Tocsin's runtime: three operators, each its own consumer group and
transactional producer, so any number of workers can run and share the partitions.

    payments.transactions --(card)--> payments.by-terminal --(terminal)--> payments.scores
    payments.labels ----(labels)----^                                  \\-> payments.alerts

(:mod:`tocsin.streams.fraud_card_stage`, :mod:`tocsin.streams.fraud_term_stage`.) Batching is
the runner's: each transaction takes what is queued, up to ``batch_max`` records, waiting at
most ``batch_wait_ms`` when nothing is -- so batches are one record when the load is light and
grow with the backlog. ``naive`` (the benchmark's per-transaction peer) calls the model once
per transaction with the full branch.
"""

from __future__ import annotations

import logging
import threading

from tocsin.config.payments import FraudSettings
from tocsin.config.worker import Settings

log = logging.getLogger("tocsin.payments")


def runtime_settings(s: Settings, fs: FraudSettings) -> Settings:
    """The worker settings with the fraud batch knobs applied to the runner."""
    return s.model_copy(update={"batch_max": fs.batch_max,
                                "runtime_idle_wait_s": max(fs.batch_wait_ms / 1e3, 0.001)})


def operators(s: Settings, fs: FraudSettings, pan_key: bytes, scorer=None) -> list:
    from tocsin.streams.fraud_card_stage import CardStage, LabelStage
    from tocsin.streams.fraud_term_stage import TerminalStage

    term = TerminalStage(s, fs, scorer, idle_s=fs.align_idle_s,
                         max_skew_s=fs.align_max_skew_s, late_s=fs.late_bound_s,
                         batch_max=1 if fs.naive else max(fs.batch_max, 1))
    return [CardStage(s, pan_key), LabelStage(s), term]


def run_payments(s: Settings, fs: FraudSettings, pan_key: bytes) -> None:
    """Run the three operators until SIGTERM/SIGINT (raises if one fails: exit non-zero)."""
    from tocsin.connectors import kafka_admin
    from tocsin.contracts import topics
    from tocsin.streams.runtime import Runner, serve

    rs = runtime_settings(s, fs)
    kafka_admin.ensure_topics(rs.broker, [rs.topic(t) for t in topics.PAYMENTS], rs.partitions,
                              replication=rs.replication)
    runners = [Runner(op, rs) for op in operators(rs, fs, pan_key)]

    def ready() -> None:  # every stage has its first partitions (and their state) back
        for r in runners:
            while not r.ready.wait(1.0):
                if r.stopping.is_set():
                    return
        print("payments worker: ready", flush=True)  # at any log level: tests and scripts

    threading.Thread(target=ready, name="payments-ready", daemon=True).start()
    serve(runners)
