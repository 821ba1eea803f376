"""Online fraud features: per card and per terminal, over explicit state and event time.

The stream (Faust tables) and training (`tocsin train fraud`) run this same code, so a model
is trained on exactly the features it is served. State is plain dicts and lists (JSON), so a
Faust table can keep it in its changelog and a restarted worker carries on where it stopped.

Windows: 1 h is exact (the last hour of transactions is kept), 1 d sums hourly buckets
(hour-aligned), 7 d and 30 d sum daily buckets (UTC-day aligned). Velocity features describe
the history *before* the transaction; the amount features compare it with that history.

Labels (chargebacks) arrive late. A label is parked on its terminal as pending and counts
towards the terminal's risk only for transactions whose event time is at or after the label's
``reported_ts`` -- never earlier, whatever order the topics are read in.
"""

from __future__ import annotations

import bisect
import math

import numpy as np

from tocsin.contracts.payments import FraudLabel, Transaction

S = 10**9
HOUR, DAY = 3600 * S, 86400 * S
WINDOWS = ("1h", "1d", "7d", "30d")
SEQ_LEN = 16  # transactions of the card the sequence tower sees (15 before + this one)
TOKEN_DIM = 8
_RECENT_CAP = 512
_TERMS_CAP = 32
_PEM = {"051": 0, "05": 0, "071": 1, "07": 1}  # chip, contactless; anything else: remote/manual


def _window_names(prefix: str) -> list[str]:
    return [f"{prefix}_{k}_{w}" for w in WINDOWS for k in ("count", "log_sum", "log_mean")]


FEATURES = (_window_names("card") + [
    "log_amount", "log_secs_since_prev", "log_amount_over_mean30d", "amount_z",
    "terminal_new_for_card", "log_card_history"] + _window_names("term") + [
    "term_frauds_known_30d", "term_fraud_ratio_30d", "term_days_since_known_fraud",
    "pem_chip", "pem_contactless", "pem_remote", "hour_sin", "hour_cos"])
N_FEATURES = len(FEATURES)


def new_state() -> dict:
    # r: exact [ts, amount] of the last hour; h: hourly [idx, n, sum]; d: daily [idx, n, sum]
    return {"r": [], "h": [], "d": [], "last": 0, "n": 0, "m": 0.0, "s2": 0.0,
            "seq": [], "terms": [], "ids": [], "fl": [], "pend": [], "lastf": 0}


def _add_bucket(buckets: list, idx: int, amount: float, span: int) -> None:
    """Add to bucket ``idx`` (buckets stay sorted, a late transaction lands in its own
    bucket), then drop buckets older than ``span`` before the newest."""
    if buckets and buckets[-1][0] == idx:
        buckets[-1][1] += 1
        buckets[-1][2] += amount
    elif not buckets or buckets[-1][0] < idx:
        buckets.append([idx, 1, amount])
    else:
        for b in reversed(buckets):
            if b[0] == idx:
                b[1] += 1
                b[2] += amount
                break
        else:
            bisect.insort(buckets, [idx, 1, amount])
    keep_from = buckets[-1][0] - span
    while buckets and buckets[0][0] < keep_from:
        buckets.pop(0)


def _windows(st: dict, ts: int, out: list) -> None:
    """Count, log sum, log mean over 1 h, 1 d, 7 d, 30 d of the history before ``ts``.

    Lists are in time order, so each is walked backwards and left at the window's start.
    """
    lo = ts - HOUR
    n1 = 0
    s1 = 0.0
    for t, a in reversed(st["r"]):
        if t <= lo:
            break
        if t <= ts:
            n1 += 1
            s1 += a
    hi = ts // HOUR
    n24 = 0
    s24 = 0.0
    for idx, c, a in reversed(st["h"]):
        if idx <= hi - 24:
            break
        if idx <= hi:
            n24 += c
            s24 += a
    di = ts // DAY
    n7 = n30 = 0
    s7 = s30 = 0.0
    for idx, c, a in reversed(st["d"]):
        if idx <= di - 30:
            break
        if idx <= di:
            n30 += c
            s30 += a
            if idx > di - 7:
                n7 += c
                s7 += a
    log1p = math.log1p
    for n, total in ((n1, s1), (n24, s24), (n7, s7), (n30, s30)):
        out.append(float(n))
        out.append(log1p(total))
        out.append(log1p(total / n) if n else 0.0)


def _update(st: dict, ts: int, amount: float) -> None:
    r = st["r"]
    if not r or r[-1][0] <= ts:
        r.append([ts, amount])
    else:  # arrived late: keep the list in event-time order
        bisect.insort(r, [ts, amount])
    cut = max(ts, st["last"]) - HOUR
    while r and (r[0][0] <= cut or len(r) > _RECENT_CAP):
        r.pop(0)
    _add_bucket(st["h"], ts // HOUR, amount, 24)
    _add_bucket(st["d"], ts // DAY, amount, 30)
    la = math.log1p(amount)  # Welford over log amounts: the card's usual spending
    st["n"] += 1
    delta = la - st["m"]
    st["m"] += delta / st["n"]
    st["s2"] += delta * (la - st["m"])
    st["last"] = max(st["last"], ts)


def add_label(term_state: dict, label: FraudLabel) -> None:
    """Park a label on its terminal; it counts only from ``reported_ts`` on."""
    if label.fraud:
        term_state["pend"].append([label.reported_ts, label.txn_ts])


def _apply_due_labels(st: dict, now: int) -> None:
    pend = st["pend"]
    if not pend:
        return
    keep = []
    for rep, txn_ts in pend:
        if rep <= now:
            _add_bucket_sorted(st["fl"], txn_ts // DAY)
            st["lastf"] = max(st["lastf"], txn_ts)
        else:
            keep.append([rep, txn_ts])
    st["pend"] = keep


def _add_bucket_sorted(buckets: list, idx: int) -> None:
    for b in buckets:
        if b[0] == idx:
            b[1] += 1
            return
    buckets.append([idx, 1])
    buckets.sort()
    while len(buckets) > 60:
        buckets.pop(0)


def _hour_parts(ts: int) -> tuple[float, float]:
    ang = 2 * math.pi * ((ts % DAY) / DAY)
    return math.sin(ang), math.cos(ang)


def _pem(code: str) -> tuple[float, float, float]:
    k = _PEM.get(code[:3], _PEM.get(code[:2], 2))
    return (float(k == 0), float(k == 1), float(k == 2))


def _token(ts: int, prev_ts: int, amount: float, pem: str, new_term: bool) -> list:
    s, c = _hour_parts(ts)
    dt = (ts - prev_ts) / S if prev_ts else 30 * 86400.0
    return [math.log1p(amount) / 5.0, math.log1p(max(dt, 0.0)) / 10.0, s, c, *_pem(pem),
            float(new_term)]


class FraudFeatures:
    """Feature state for cards and terminals; ``cards``/``terms`` are mutable mappings of
    id -> state dict (plain dicts in training, loaded from Faust tables in the stream)."""

    def __init__(self, cards: dict | None = None, terms: dict | None = None):
        self.cards = cards if cards is not None else {}
        self.terms = terms if terms is not None else {}

    def add_label(self, label: FraudLabel) -> None:
        st = self.terms.get(label.terminal_id)
        if st is None:
            st = self.terms[label.terminal_id] = new_state()
        add_label(st, label)

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
            card = self.cards[t.card_id] = new_state()
        term = self.terms.get(t.terminal_id)
        if term is None:
            term = self.terms[t.terminal_id] = new_state()
        ts, amount = t.ts, t.amount
        row: list = []
        _windows(card, ts, row)
        la = math.log1p(amount)
        since = (ts - card["last"]) / S if card["last"] else 30 * 86400.0
        mean30 = math.expm1(row[11]) if row[9] else 0.0  # 30 d log_mean -> mean
        std = math.sqrt(card["s2"] / (card["n"] - 1)) if card["n"] > 1 else 1.0
        z = (la - card["m"]) / max(std, 0.25) if card["n"] else 0.0
        new_term = t.terminal_id not in card["terms"]
        row += [la, math.log1p(max(since, 0.0)),
                math.log((amount + 1) / (mean30 + 1)) if mean30 else 0.0,
                max(-10.0, min(10.0, z)), float(new_term), math.log1p(card["n"])]
        _windows(term, ts, row)
        _apply_due_labels(term, ts)
        di = ts // DAY
        frauds = sum(c for idx, c in term["fl"] if di - 30 < idx <= di)
        n30 = row[-3]  # terminal 30 d count
        days_since = (ts - term["lastf"]) / DAY if term["lastf"] else 30.0
        row += [math.log1p(frauds), frauds / max(n30, 1.0), min(max(days_since, 0.0), 30.0),
                *_pem(t.pos_entry_mode), *_hour_parts(ts)]
        tok = _token(ts, card["last"], amount, t.pos_entry_mode, new_term)
        ids = card.setdefault("ids", [])
        if t.txn_id and t.txn_id in ids:
            # redelivered (at-least-once after a crash): score it, but count it only once
            return row, card["seq"][-(SEQ_LEN - 1):] + [tok]
        ids.append(t.txn_id)
        if len(ids) > SEQ_LEN:
            del ids[0]
        seq = card["seq"]
        seq.append(tok)
        if len(seq) > SEQ_LEN:
            del seq[0]
        toks = list(seq)
        # the state moves on only after the features were read
        _update(card, ts, amount)
        _update(term, ts, amount)
        terms = card["terms"]
        if new_term:
            terms.append(t.terminal_id)
            if len(terms) > _TERMS_CAP:
                del terms[0]
        return row, toks
