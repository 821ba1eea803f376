"""Fraud stage 1 of 2 (runtime Operators): transactions keyed by card -> card features ->
``payments.by-terminal`` keyed by terminal (:class:`CardStage`); labels forwarded there by
their terminal (:class:`LabelStage`, stateless). Two operators, each with one input, because
the runtime's assignor does not keep partition p of two topics on one worker.

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
from tocsin.detectors.fraud_card import (
    SEQ_LEN,
    TOKEN_DIM,
    card_step,
    from_bytes,
    new_card,
    to_bytes,
)
from tocsin.detectors.partitioner import keys_for_partitions
from tocsin.streams.deadletters import reason

log = logging.getLogger("tocsin.payments.card")
_CACHE_MAX = 200_000  # decoded card states kept per partition
_TOK = 4 * TOKEN_DIM  # bytes of one float32 token


def masked(record, why: str):
    """The record with card numbers masked, and the reason likewise (dead letters)."""
    key = None if record.key is None else pan.mask_pans(record.key)
    return (type(record)(record.topic, record.partition, record.offset, key,
                         pan.mask_pans(record.value or b""), record.timestamp_ms),
            pan.mask_text(why))


class _Forward:
    """What both stage-1 operators share: the through topic and the watermarks."""

    name = ""
    prefix = ""

    def __init__(self, settings: Settings):
        self.through = settings.topic(topics.PAY_BY_TERMINAL)
        # a key per through partition (the producer's murmur2 partitioner sends it there)
        self.mark_keys = keys_for_partitions(b"~wm", settings.partitions)
        self.marks: dict[str, int] = {}  # source -> largest event time read
        self.states: dict[int, object] = {}

    def restore_mode(self):
        from tocsin.streams.runtime.operator import Restore

        return Restore.changelog()

    def open(self, partition: int, state) -> None:
        self.states[partition] = state

    def close(self, partition: int) -> None:
        self.states.pop(partition, None)
        self.marks.pop(f"{self.prefix}{partition}", None)

    def tick(self, now_ns: int, out) -> None:
        return None

    def send_marks(self, moved: dict[str, int], out) -> None:
        for src, ts in moved.items():
            value = thr.encode_mark(src, ts)
            for key in self.mark_keys:
                out.send(self.through, key, value)


class LabelStage(_Forward):
    """``payments.labels`` -> the through topic, by terminal, with their watermarks."""

    name = "fraud-labels"
    prefix = "l"

    def __init__(self, settings: Settings):
        super().__init__(settings)
        self.label_topic = settings.topic(topics.PAY_LABELS)

    def inputs(self) -> list[str]:
        return [self.label_topic]

    def process(self, records: Sequence, out) -> None:
        moved: dict[str, int] = {}
        for r in records:
            try:
                lab = FraudLabel.decode(r.value)
            except Exception as exc:
                rec, why = masked(r, reason(exc))
                out.dead_letter(rec, why, "decode")
                continue
            src = f"l{r.partition}"
            out.send(self.through, lab.terminal_id.encode(), thr.encode_label(src, lab))
            if lab.reported_ts > self.marks.get(src, -1):
                self.marks[src] = moved[src] = lab.reported_ts
        self.send_marks(moved, out)


class CardStage(_Forward):
    name = "fraud-card"
    prefix = "t"

    def __init__(self, settings: Settings, pan_key: bytes):
        super().__init__(settings)
        self.txn_topic = settings.topic(topics.TRANSACTIONS)
        self.pan_key = pan_key
        self.guard = TimeGuard(settings.max_future_skew_s, settings.min_event_year)
        self.pan_seen = Throttled("payments worker: card numbers in card_id tokenised (they "
                                  "are in clear on the input topic: fix the producer)")
        self.cache: dict[int, dict[bytes, dict]] = {}
        self.qcache: dict[int, dict[bytes, bytes]] = {}  # card -> its tokens, float32 bytes

    def inputs(self) -> list[str]:
        return [self.txn_topic]

    def open(self, partition: int, state) -> None:
        super().open(partition, state)
        self.cache[partition] = {}
        self.qcache[partition] = {}

    def close(self, partition: int) -> None:
        super().close(partition)
        self.cache.pop(partition, None)
        self.qcache.pop(partition, None)

    def _card(self, p: int, key: bytes) -> dict:
        cache = self.cache[p]
        st = cache.get(key)
        if st is None:
            raw = self.states[p].get(key)
            st = new_card() if raw is None else from_bytes(raw)
            if len(cache) > _CACHE_MAX:
                cache.clear()
                self.qcache[p].clear()
            cache[key] = st
        return st

    def _tokens(self, p: int, key: bytes, toks: list, new: bool) -> bytes:
        """``toks`` as float32 bytes: the card's previous tokens (kept in memory) plus the
        new last one, the oldest dropped past SEQ_LEN -- the same bytes as converting all of
        them (an element-wise cast). A redelivery (``new`` False) does not move the card's
        sequence on, so it is not kept."""
        qc = self.qcache[p]
        prev = qc.get(key)
        if prev is None or len(prev) // _TOK != len(toks) - (len(toks) < SEQ_LEN):
            q = thr.tokens_f32(toks)
        else:
            q = (prev + thr.f32(toks[-1]))[-SEQ_LEN * _TOK:]
        if new:
            qc[key] = q
        return q

    def process(self, records: Sequence, out) -> None:
        now = time.time_ns()
        moved: dict[str, int] = {}
        changed: dict[int, set] = {}
        through, marks = self.through, self.marks
        for r in records:
            stage = "decode"
            try:
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
                         thr.encode_txn(src, t, card_row, self._tokens(r.partition, key, toks,
                                                                       new), new))
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
        self.send_marks(moved, out)
