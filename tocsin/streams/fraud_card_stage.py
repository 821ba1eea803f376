"""Fraud stage 1 of 2 (a runtime Operator): transactions keyed by card -> card features ->
``payments.by-terminal`` keyed by terminal; labels forwarded there by their terminal.

Card state (:mod:`tocsin.detectors.fraud_card`) is a :class:`KeyedState` per transactions
partition, key = card id, so it moves with its partition and comes back from the changelog.
After every batch the stage sends each source's event-time watermark (the largest event time
it has read from ``t<p>`` / ``l<p>``) to every partition of the through topic, so the terminal
stage can align sources that drain at different speeds (:mod:`tocsin.detectors.fraud_align`).
Poison rule: a record that fails is a dead letter (card numbers masked) and the batch goes on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from tocsin.config.worker import Settings
from tocsin.connectors.ingest_guard import Throttled
from tocsin.contracts import pan, topics
from tocsin.contracts.eventtime import TimeGuard
from tocsin.contracts.payments import FraudLabel, Transaction
from tocsin.detectors import fraud_through as thr
from tocsin.detectors.fraud_card import card_step, from_bytes, new_card, to_bytes
from tocsin.streams.deadletters import reason

log = logging.getLogger("tocsin.payments.card")
_CACHE_MAX = 200_000  # decoded card states kept per partition


def masked(record, why: str):
    """The record with card numbers masked, and the reason likewise (dead letters)."""
    key = None if record.key is None else pan.mask_pans(record.key)
    return (type(record)(record.topic, record.partition, record.offset, key,
                         pan.mask_pans(record.value or b""), record.timestamp_ms),
            pan.mask_text(why))


def mark_targets(out, topic: str, partitions: int, value: bytes) -> None:
    """A watermark record to every partition of ``topic``."""
    for j in range(partitions):
        out.send(topic, b"~wm", value, partition=j)


class CardStage:
    name = "fraud-card"

    def __init__(self, settings: Settings, pan_key: bytes):
        self.txn_topic = settings.topic(topics.TRANSACTIONS)
        self.label_topic = settings.topic(topics.PAY_LABELS)
        self.through = settings.topic(topics.PAY_BY_TERMINAL)
        self.through_partitions = settings.partitions
        self.pan_key = pan_key
        self.guard = TimeGuard(settings.max_future_skew_s, settings.min_event_year)
        self.pan_seen = Throttled("payments worker: card numbers in card_id tokenised (they "
                                  "are in clear on the input topic: fix the producer)")
        self.states: dict[int, object] = {}
        self.cache: dict[int, dict[bytes, dict]] = {}
        self.marks: dict[str, int] = {}  # source -> largest event time read

    def inputs(self) -> list[str]:
        return [self.txn_topic, self.label_topic]

    def restore_mode(self):
        from tocsin.streams.runtime.operator import Restore

        return Restore.changelog()

    def open(self, partition: int, state) -> None:
        self.states[partition] = state
        self.cache[partition] = {}

    def close(self, partition: int) -> None:
        self.states.pop(partition, None)
        self.cache.pop(partition, None)
        for s in (f"t{partition}", f"l{partition}"):
            self.marks.pop(s, None)

    def tick(self, now_ns: int, out) -> None:
        return None

    def _card(self, p: int, key: bytes) -> dict:
        cache = self.cache[p]
        st = cache.get(key)
        if st is None:
            raw = self.states[p].get(key)
            st = new_card() if raw is None else from_bytes(raw)
            if len(cache) > _CACHE_MAX:
                cache.clear()
            cache[key] = st
        return st

    def process(self, records: Sequence, out) -> None:
        now = time.time_ns()
        moved: dict[str, int] = {}
        changed: dict[int, set] = {}
        through, marks = self.through, self.marks
        for r in records:
            stage = "decode"
            try:
                if r.topic == self.label_topic:
                    lab = FraudLabel.decode(r.value)
                    src = f"l{r.partition}"
                    out.send(through, lab.terminal_id.encode(), thr.encode_label(src, lab))
                    ts = lab.reported_ts
                else:
                    t = Transaction.decode(r.value, now, self.guard)
                    if pan.looks_like_pan(t.card_id):
                        t.card_id = pan.tokenize(t.card_id.replace(" ", "").replace("-", ""),
                                                 self.pan_key)
                        self.pan_seen.hit(f"{r.topic}[{r.partition}]")
                    if not t.ingest_ts and r.timestamp_ms > 0:
                        t.ingest_ts = r.timestamp_ms * 1_000_000  # latency from Kafka's time
                    stage = "process"
                    key = t.card_id.encode()
                    card_row, toks, new = card_step(self._card(r.partition, key), t)
                    changed.setdefault(r.partition, set()).add(key)
                    src = f"t{r.partition}"
                    out.send(through, t.terminal_id.encode(),
                             thr.encode_txn(src, t, card_row, toks, new))
                    ts = t.ts
            except Exception as exc:
                rec, why = masked(r, reason(exc))
                out.dead_letter(rec, why, stage)
                continue
            if ts > marks.get(src, -1):
                marks[src] = moved[src] = ts
        for p, keys in changed.items():
            state, cache = self.states[p], self.cache[p]
            for key in keys:
                state[key] = to_bytes(cache[key])
        for src, ts in moved.items():
            mark_targets(out, through, self.through_partitions, thr.encode_mark(src, ts))
