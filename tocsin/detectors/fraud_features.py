"""Online fraud features: per card and per terminal, over explicit state and event time.

The stream (two stages: card, then terminal) and training / ``tocsin eval fraud`` (this class,
in one process) run the same code, so a model is trained and evaluated on exactly the features
it is served:

- :mod:`tocsin.detectors.fraud_card` -- the card's history, in its partition's order;
- :mod:`tocsin.detectors.fraud_terminal` -- the terminal's, from event time, whatever order
  transactions and labels arrive in.

Labels (chargebacks) arrive late. A label is kept on its terminal with its ``reported_ts`` and
counts only for transactions whose event time is at or after it -- never earlier, whatever
order the topics are read in.
"""

from __future__ import annotations

import numpy as np

from tocsin.contracts.payments import FraudLabel, Transaction
from tocsin.detectors.fraud_card import (
    CARD_FEATURES,
    DAY,
    HOUR,
    SEQ_LEN,
    TOKEN_DIM,
    WINDOWS,
    card_step,
    hour_parts,
    new_card,
    pem,
)
from tocsin.detectors.fraud_terminal import TERM_FEATURES, TermState, txn_hash

__all__ = ["DAY", "FEATURES", "HOUR", "N_FEATURES", "SEQ_LEN", "TOKEN_DIM", "WINDOWS",
           "FraudFeatures", "join_row", "new_card"]

FEATURES = tuple(CARD_FEATURES + TERM_FEATURES + [
    "pem_chip", "pem_contactless", "pem_remote", "hour_sin", "hour_cos"])
N_FEATURES = len(FEATURES)


def join_row(card_row: list, term_row: list, t_ts: int, pos_entry_mode: str) -> list:
    """The full feature row from its card and terminal parts, in FEATURES order (the
    stream's terminal stage builds the same columns for a whole batch:
    ``fraud_term_stage.batch_arrays``)."""
    return [*card_row, *term_row, *pem(pos_entry_mode), *hour_parts(t_ts)]


class FraudFeatures:
    """Feature state for cards and terminals in one process; ``cards`` maps card id -> card
    state dict, ``terms`` terminal id -> :class:`TermState`."""

    def __init__(self, cards: dict | None = None, terms: dict | None = None,
                 late_ns: int | None = None):
        self.cards = cards if cards is not None else {}
        self.terms = terms if terms is not None else {}
        self.late_ns = late_ns
        self.inexact = 0  # transactions late beyond the terminal's bound

    def _term(self, terminal_id: str) -> TermState:
        st = self.terms.get(terminal_id)
        if st is None:
            st = self.terms[terminal_id] = (TermState() if self.late_ns is None
                                            else TermState(self.late_ns))
        return st

    def add_label(self, label: FraudLabel) -> None:
        if label.fraud:
            self._term(label.terminal_id).add_label(label.txn_id, label.reported_ts,
                                                    label.txn_ts)

    def transform(self, txns: list[Transaction]
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[tuple[int, str]]]:
        """Features of each transaction (in order), then its effect on the state.

        Returns tab [n, F], seq [n, SEQ_LEN, TOKEN_DIM], pad [n, SEQ_LEN] (1.0 = no
        transaction there) and the (index, reason) of transactions that failed; their rows
        stay zero and the caller must not score them.
        """
        n = len(txns)
        tab = np.zeros((n, N_FEATURES), np.float32)
        seq = np.zeros((n, SEQ_LEN, TOKEN_DIM), np.float32)
        pad = np.ones((n, SEQ_LEN), np.float32)
        errors: list[tuple[int, str]] = []
        for i, t in enumerate(txns):
            try:
                row, toks = self.one(t)
            except Exception as exc:  # a bug or a poisoned state must not stop the batch
                errors.append((i, f"{type(exc).__name__}: {exc}"))
                continue
            tab[i] = row
            k = len(toks)
            seq[i, SEQ_LEN - k:] = toks
            pad[i, SEQ_LEN - k:] = 0.0
        return tab, seq, pad, errors

    def one(self, t: Transaction) -> tuple[list, list]:
        card = self.cards.get(t.card_id)
        if card is None:
            card = self.cards[t.card_id] = new_card()
        card_row, toks, new = card_step(card, t)
        term = self._term(t.terminal_id)
        h = txn_hash(t.txn_id)
        term_row, exact = term.features(t.ts, h)
        if not exact:
            self.inexact += 1
        if new:
            term.add(t.ts, h, t.amount)
        return join_row(card_row, term_row, t.ts, t.pos_entry_mode), toks
