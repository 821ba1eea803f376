"""Card features: the card's own history, in the order its transactions arrive.

Transactions are keyed by card, so one card's transactions are in one partition and the
stream reads them in the order the feed sent them -- the same order an offline replay of the
file uses. Cross-partition order never reaches this state, so the card stage does not need
event-time alignment (the terminal stage does: :mod:`tocsin.detectors.fraud_terminal`).

Windows: 1 h is exact (the last hour of transactions is kept), 1 d sums hourly buckets
(hour-aligned), 7 d and 30 d sum daily buckets (UTC-day aligned). Velocity features describe
the history *before* the transaction; the amount features compare it with that history.
State is a plain dict (JSON): :func:`to_bytes` / :func:`from_bytes` for a changelog.
"""

from __future__ import annotations

import bisect
import math

import orjson

from tocsin.contracts.payments import Transaction

S = 10**9
HOUR, DAY = 3600 * S, 86400 * S
WINDOWS = ("1h", "1d", "7d", "30d")
SEQ_LEN = 16  # transactions of the card the sequence tower sees (15 before + this one)
TOKEN_DIM = 8
_RECENT_CAP = 512
_TERMS_CAP = 32
_PEM = {"051": 0, "05": 0, "071": 1, "07": 1}  # chip, contactless; anything else: remote/manual


def window_names(prefix: str) -> list[str]:
    return [f"{prefix}_{k}_{w}" for w in WINDOWS for k in ("count", "log_sum", "log_mean")]


CARD_FEATURES = window_names("card") + [
    "log_amount", "log_secs_since_prev", "log_amount_over_mean30d", "amount_z",
    "terminal_new_for_card", "log_card_history"]


def new_card() -> dict:
    # r: exact [ts, amount] of the last hour; h: hourly [idx, n, sum]; d: daily [idx, n, sum]
    return {"r": [], "h": [], "d": [], "last": 0, "n": 0, "m": 0.0, "s2": 0.0,
            "seq": [], "terms": [], "ids": []}


def to_bytes(card: dict) -> bytes:
    return orjson.dumps(card)


def from_bytes(raw: bytes) -> dict:
    return orjson.loads(raw)


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


def emit_window(out: list, n: int, total: float) -> None:
    out.append(float(n))
    out.append(math.log1p(total))
    out.append(math.log1p(total / n) if n else 0.0)


def _windows(st: dict, ts: int, out: list) -> None:
    """Count, log sum, log mean over 1 h, 1 d, 7 d, 30 d of the history before ``ts``."""
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
    for n, total in ((n1, s1), (n24, s24), (n7, s7), (n30, s30)):
        emit_window(out, n, total)


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


def hour_parts(ts: int) -> tuple[float, float]:
    ang = 2 * math.pi * ((ts % DAY) / DAY)
    return math.sin(ang), math.cos(ang)


def pem(code: str) -> tuple[float, float, float]:
    k = _PEM.get(code[:3], _PEM.get(code[:2], 2))
    return (float(k == 0), float(k == 1), float(k == 2))


def _token(ts: int, prev_ts: int, amount: float, pem_code: str, new_term: bool) -> list:
    s, c = hour_parts(ts)
    dt = (ts - prev_ts) / S if prev_ts else 30 * 86400.0
    return [math.log1p(amount) / 5.0, math.log1p(max(dt, 0.0)) / 10.0, s, c, *pem(pem_code),
            float(new_term)]


def card_step(card: dict, t: Transaction) -> tuple[list, list, bool]:
    """The card part of ``t``'s features, its sequence tokens (oldest first, this one
    last), and whether it is new (a redelivered ``txn_id`` is scored but counted once, here
    and at its terminal); then ``t``'s effect on the card state."""
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
    tok = _token(ts, card["last"], amount, t.pos_entry_mode, new_term)
    ids = card.setdefault("ids", [])
    if t.txn_id and t.txn_id in ids:
        return row, card["seq"][-(SEQ_LEN - 1):] + [tok], False
    ids.append(t.txn_id)
    if len(ids) > SEQ_LEN:
        del ids[0]
    seq = card["seq"]
    seq.append(tok)
    if len(seq) > SEQ_LEN:
        del seq[0]
    toks = list(seq)
    _update(card, ts, amount)  # the state moves on only after the features were read
    terms = card["terms"]
    if new_term:
        terms.append(t.terminal_id)
        if len(terms) > _TERMS_CAP:
            del terms[0]
    return row, toks, True
