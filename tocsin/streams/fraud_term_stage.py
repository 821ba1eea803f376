"""Fraud stage 2 of 2 (a runtime Operator): ``payments.by-terminal`` -> terminal features ->
the model -> ``payments.scores`` (+ ``payments.alerts``).

Per through-topic partition, a :class:`KeyedState` holds:

- ``T:<terminal>`` -- the terminal's :class:`~tocsin.detectors.fraud_terminal.TermState`;
- ``W:<source>`` -- each card-stage source's watermark (8 bytes, big-endian);
- ``B:<ts><tie>`` -- a transaction held by the event-time alignment (its through record).

Labels go into the terminal state on arrival (they count by report time, so early is safe);
transactions wait in the :class:`~tocsin.detectors.fraud_align.Aligner` until every active
source has passed their event time, then go, in event-time order, through the terminal
features and the model as one batch. A held transaction is written to the state only if it is
still held at the end of the batch, so the usual case (released in the batch it came in) costs
no changelog record. Exactly-once comes from the runner: state, scores and input offsets are
one transaction.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from itertools import chain

import numpy as np

from tocsin.config.payments import FraudSettings
from tocsin.config.worker import Settings
from tocsin.contracts import topics
from tocsin.detectors import fraud_through as thr
from tocsin.detectors.fraud_align import Aligner
from tocsin.detectors.fraud_card import CARD_FEATURES, SEQ_LEN, TOKEN_DIM, hour_parts, pem
from tocsin.detectors.fraud_features import N_FEATURES
from tocsin.detectors.fraud_terminal import TermState, txn_hash
from tocsin.errors import SchemaError
from tocsin.streams.deadletters import reason

log = logging.getLogger("tocsin.payments.terminal")
_CACHE_MAX = 100_000
N_CARD = len(CARD_FEATURES)
_CARD_BYTES = 4 * N_CARD
_TOK_BYTES = 4 * TOKEN_DIM


class _Part:
    """What one partition keeps in memory."""

    def __init__(self, state, aligner: Aligner):
        self.state, self.aligner = state, aligner
        self.terms: dict[bytes, TermState] = {}
        self.persisted: set[bytes] = set()  # B: keys in the state
        self.fresh: list = []  # pushed in this batch


def _bkey(ts: int, tie: int) -> bytes:
    return b"B:" + ts.to_bytes(8, "big", signed=True) + tie.to_bytes(8, "big")


class TerminalStage:
    name = "fraud-terminal"

    def __init__(self, settings: Settings, fs: FraudSettings, scorer=None, *,
                 sources: list[str] | None = None, idle_s: float = 5.0,
                 max_skew_s: float | None = None, late_s: float = 6 * 3600.0,
                 batch_max: int | None = None, clock=time.monotonic_ns):
        self.through = settings.topic(topics.PAY_BY_TERMINAL)
        if scorer is None:
            from tocsin.streams.fraud_scoring import Scorer

            scorer = Scorer(fs, settings.topic(topics.PAY_SCORES),
                            settings.topic(topics.PAY_ALERTS))
        self.scorer = scorer
        P = settings.partitions
        self.sources = sources if sources is not None else (
            [f"t{p}" for p in range(P)] + [f"l{p}" for p in range(P)])
        self.idle_ns = int(idle_s * 1e9)
        self.max_skew_ns = None if max_skew_s is None else int(max_skew_s * 1e9)
        self.late_ns = int(late_s * 1e9)
        self.batch_max = batch_max or fs.batch_max
        self.parts: dict[int, _Part] = {}
        self.clock = clock  # wall time of the idle bound (monotonic ns)
        self.inexact = 0  # scored later than the terminal state's lateness bound

    def inputs(self) -> list[str]:
        return [self.through]

    def restore_mode(self):
        from tocsin.streams.runtime.operator import Restore

        return Restore.changelog()

    def open(self, partition: int, state) -> None:
        al = Aligner(self.sources, idle_ns=self.idle_ns, max_skew_ns=self.max_skew_ns)
        part = _Part(state, al)
        marks = {}
        for key in list(state):
            if key.startswith(b"W:"):
                marks[key[2:].decode()] = int.from_bytes(state[key], "big", signed=True)
            elif key.startswith(b"B:"):
                rec = thr.decode(state[key])
                al.push(rec.ts, txn_hash(rec.txn.txn_id), rec)
                part.persisted.add(key)
        al.open(self.clock(), marks)
        self.parts[partition] = part

    def close(self, partition: int) -> None:
        self.parts.pop(partition, None)

    def _term(self, part: _Part, tid: bytes) -> TermState:
        st = part.terms.get(tid)
        if st is None:
            raw = part.state.get(b"T:" + tid)
            st = TermState(self.late_ns) if raw is None else TermState.from_bytes(raw)
            if len(part.terms) > _CACHE_MAX:
                part.terms.clear()
            part.terms[tid] = st
        return st

    def process(self, records: Sequence, out) -> None:
        now = self.clock()
        touched: dict[int, set] = {}
        marks: dict[int, dict[str, int]] = {}
        for r in records:
            part = self.parts[r.partition]
            try:
                rec = thr.decode(r.value)
                if rec.kind == thr.LABEL:
                    lab = rec.label
                    if lab.fraud:
                        tid = lab.terminal_id.encode()
                        self._term(part, tid).add_label(lab.txn_id, lab.reported_ts,
                                                        lab.txn_ts)
                        touched.setdefault(r.partition, set()).add(tid)
                elif rec.kind == thr.TXN:
                    tie = txn_hash(rec.txn.txn_id)
                    part.aligner.push(rec.ts, tie, rec)
                    part.fresh.append((rec.ts, tie, rec))
            except Exception as exc:
                out.dead_letter(r, reason(exc), "decode")
                continue
            if part.aligner.watermark(rec.source, rec.ts, now):
                marks.setdefault(r.partition, {})[rec.source] = rec.ts
        rows = _Rows()
        for p, part in self.parts.items():
            self._release(part, now, out, touched.get(p, set()), marks.get(p, {}), rows)
        self._model(rows, out)

    def tick(self, now_ns: int, out) -> None:
        now = self.clock()
        rows = _Rows()
        for part in self.parts.values():
            if len(part.aligner):
                self._release(part, now, out, set(), {}, rows)
        self._model(rows, out)

    def _release(self, part: _Part, now: int, out, touched: set, marks: dict,
                 rows: "_Rows") -> None:
        state = part.state
        for src, ts in marks.items():
            state[b"W:" + src.encode()] = ts.to_bytes(8, "big", signed=True)
        items = part.aligner.release(now)
        rows.held += len(part.aligner)
        for i in range(0, len(items), self.batch_max):
            self._features(part, items[i:i + self.batch_max], out, touched, rows)
        for tid in touched:
            state[b"T:" + tid] = part.terms[tid].to_bytes()
        # held transactions: persisted if still held, removed if released
        gone = set()
        for ts, tie, _, _rec in items:
            k = _bkey(ts, tie)
            gone.add(k)
            if k in part.persisted:
                part.persisted.discard(k)
                del state[k]
        for ts, tie, rec in part.fresh:
            k = _bkey(ts, tie)
            if k not in gone and k not in part.persisted:
                state[k] = rec.raw
                part.persisted.add(k)
        part.fresh.clear()

    def _features(self, part: _Part, items: list, out, touched: set, rows: "_Rows") -> None:
        """Terminal features of one partition's released transactions, in event-time order
        (each sees the ones before it), added to ``rows``: the model is called once for the
        rows of every partition (:meth:`_model`), not once per partition -- a model call
        costs the same for 1 row as for 50 (measured: docs/fraud-stream.md)."""
        txns, cards, rests, toks, bad = rows.txns, rows.cards, rows.rests, rows.toks, []
        for ts, tie, _, rec in items:
            t = rec.txn
            try:
                tid = t.terminal_id.encode()
                term = self._term(part, tid)
                term_row, exact = term.features(ts, tie)
                if rec.count:
                    term.add(ts, tie, t.amount)
                touched.add(tid)
                if len(rec.card_row) != _CARD_BYTES or len(rec.toks) % _TOK_BYTES \
                        or len(rec.toks) > SEQ_LEN * _TOK_BYTES:
                    raise SchemaError("card features or tokens of the wrong size")
                term_row += [*pem(t.pos_entry_mode), *hour_parts(ts)]
            except Exception as exc:  # poison rule: this transaction only
                bad.append((rec, exc))
                continue
            if not exact:
                self.inexact += 1
            txns.append(t)
            cards.append(rec.card_row)
            rests.append(term_row)
            toks.append(rec.toks)
        for rec, exc in bad:
            out.dead_letter(_as_record(self.through, rec), reason(exc), "process")

    def _model(self, rows: "_Rows", out) -> None:
        """The batch's arrays in a few numpy calls (the card features and tokens arrive as
        float32 bytes and are joined, not copied a float at a time) and one model call per
        ``batch_max`` rows; scores in the order the rows were added."""
        if not rows.txns:
            return
        self.scorer.maybe_reload()
        n, step = len(rows.txns), self.batch_max
        for i in range(0, n, step):
            j = i + step
            tab, seq, pad = batch_arrays(rows.cards[i:j], rows.rests[i:j], rows.toks[i:j])
            for topic, key, value in self.scorer.score(rows.txns[i:j], tab, seq, pad,
                                                       rows.held):
                out.send(topic, key, value)


class _Rows:
    """The model inputs of one batch, over all partitions; ``held``: what the aligners still
    hold (the switch's lag)."""

    __slots__ = ("txns", "cards", "rests", "toks", "held")

    def __init__(self):
        self.txns, self.cards, self.rests, self.toks = [], [], [], []
        self.held = 0


def batch_arrays(cards: list[bytes], rests: list[list], toks: list[bytes]):
    """tab [n, F], seq [n, SEQ_LEN, TOKEN_DIM], pad [n, SEQ_LEN] (1.0 = no transaction)."""
    n = len(cards)
    tab = np.empty((n, N_FEATURES), np.float32)
    tab[:, :N_CARD] = np.frombuffer(b"".join(cards), np.float32).reshape(n, N_CARD)
    tab[:, N_CARD:] = np.fromiter(chain.from_iterable(rests), np.float64,
                                  n * (N_FEATURES - N_CARD)).reshape(n, -1)
    seq = np.zeros((n, SEQ_LEN, TOKEN_DIM), np.float32)
    pad = np.ones((n, SEQ_LEN), np.float32)
    full = SEQ_LEN * _TOK_BYTES
    if all(len(q) == full for q in toks):  # the usual case: cards with a full history
        seq[:] = np.frombuffer(b"".join(toks), np.float32).reshape(n, SEQ_LEN, TOKEN_DIM)
        pad[:] = 0.0
        return tab, seq, pad
    for i, q in enumerate(toks):
        k = len(q) // _TOK_BYTES
        if k:
            seq[i, SEQ_LEN - k:] = np.frombuffer(q, np.float32).reshape(k, TOKEN_DIM)
            pad[i, SEQ_LEN - k:] = 0.0
    return tab, seq, pad


def _as_record(topic: str, rec: thr.Through):
    """A dead letter's origin for a released transaction (its offset is long committed)."""
    from tocsin.streams.runtime.operator import Record

    return Record(topic, -1, -1, rec.txn.terminal_id.encode(), rec.raw)
