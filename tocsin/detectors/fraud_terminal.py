"""Terminal features computed from event time, whatever order transactions and labels arrive.

A terminal sees transactions of many cards, so from many partitions, and under a backlog those
partitions drain far apart in event time. The state therefore keeps *sets*, not a running
history: each transaction's features count only the terminal's transactions ordered before it
by ``(ts, txn hash)`` and only the labels whose ``reported_ts`` <= its ``ts`` -- so a chargeback
never counts for a transaction that happened before it was reported, and any arrival order
within the lateness bound gives the same features as an event-time replay.

How (exact within ``late_ns`` of the newest transaction): hourly and daily buckets hold integer
sums (amounts in 1e-4 units, so sums do not depend on the order they were added in), and the
transactions of the last ``late_ns`` + 1 h are kept exactly; a transaction's windows are the
buckets minus the kept transactions ordered after it in its own hour/day. Labels are kept with
their report time (one per labelled txn_id, the earliest report). A transaction older than
``exact_from`` (late beyond the bound, or the exact list hit its cap) still gets features, from
what is left, and :meth:`TermState.features` says so (the stage counts it).
"""

from __future__ import annotations

import bisect
import hashlib
import math

import orjson

from tocsin.detectors.fraud_card import DAY, HOUR, emit_window, window_names

UNIT = 10_000  # amounts summed as integers of 1e-4
LATE_NS = 6 * HOUR  # default lateness bound
_EXACT_CAP = 20_000
_LABEL_CAP = 2_000
_MAXH = 2**63

TERM_FEATURES = window_names("term") + [
    "term_frauds_known_30d", "term_fraud_ratio_30d", "term_days_since_known_fraud"]


def txn_hash(txn_id: str) -> int:
    """A stable 63-bit tie-breaker for transactions with the same ``ts``."""
    return int.from_bytes(hashlib.blake2b(txn_id.encode(), digest_size=8).digest(),
                          "big") >> 1


def units(amount: float) -> int:
    return round(amount * UNIT)


class TermState:
    """One terminal; ``to_bytes``/``from_bytes`` for the changelog."""

    __slots__ = ("exact", "hb", "db", "labels", "newest", "exact_from", "late_ns")

    def __init__(self, late_ns: int = LATE_NS):
        self.exact: list[tuple[int, int, int]] = []  # sorted (ts, hash, units)
        self.hb: dict[int, list[int]] = {}  # hour idx -> [n, units]
        self.db: dict[int, list[int]] = {}  # day idx -> [n, units]
        self.labels: dict[str, tuple[int, int]] = {}  # txn_id -> (reported_ts, txn_ts)
        self.newest = 0
        self.exact_from = 0
        self.late_ns = late_ns

    # -- labels -------------------------------------------------------------------------
    def add_label(self, txn_id: str, reported_ts: int, txn_ts: int) -> None:
        old = self.labels.get(txn_id)
        if old is None or reported_ts < old[0]:
            self.labels[txn_id] = (reported_ts, txn_ts)
            if len(self.labels) > _LABEL_CAP:  # the label of the oldest transaction goes
                del self.labels[min(self.labels, key=lambda k: self.labels[k][1])]

    def _label_features(self, ts: int, n30: float, out: list) -> None:
        di = ts // DAY
        frauds = 0
        lastf = 0
        for rep, txn_ts in self.labels.values():
            if rep <= ts:
                if di - 30 < txn_ts // DAY <= di:
                    frauds += 1
                if txn_ts > lastf:
                    lastf = txn_ts
        days_since = (ts - lastf) / DAY if lastf else 30.0
        out += [math.log1p(frauds), frauds / max(n30, 1.0), min(max(days_since, 0.0), 30.0)]

    # -- transactions -------------------------------------------------------------------
    def features(self, ts: int, h: int) -> tuple[list, bool]:
        """The terminal part of the features of transaction ``(ts, h)`` and whether they are
        exact (``ts`` within the lateness bound)."""
        ex = self.exact
        at = bisect.bisect_left(ex, (ts, h, -_MAXH))  # everything before it: [.., at)
        lo = bisect.bisect_right(ex, (ts - HOUR, _MAXH, _MAXH))
        n1 = at - lo
        s1 = 0
        for j in range(lo, at):
            s1 += ex[j][2]
        hi, di = ts // HOUR, ts // DAY
        # kept transactions at or after it, in its own hour / day, are in the buckets too
        nh = sh = nd = sd = 0
        for j in range(at, len(ex)):
            t, _, u = ex[j]
            if t // DAY != di:
                break
            nd += 1
            sd += u
            if t // HOUR == hi:
                nh += 1
                sh += u
        # integer sums, so the order buckets are visited in does not matter: the non-empty
        # ones where there are fewer than the window has hours / days (most terminals)
        n24, s24 = -nh, -sh
        hb = self.hb
        hours = hb.items() if len(hb) <= 24 else (
            (i, hb[i]) for i in range(hi - 23, hi + 1) if i in hb)
        for idx, b in hours:
            if hi - 24 < idx <= hi:
                n24 += b[0]
                s24 += b[1]
        n7 = n30 = -nd
        s7 = s30 = -sd
        db = self.db
        days = db.items() if len(db) <= 30 else (
            (i, db[i]) for i in range(di - 29, di + 1) if i in db)
        d7 = di - 7
        for idx, b in days:
            if di - 30 < idx <= di:
                n30 += b[0]
                s30 += b[1]
                if idx > d7:
                    n7 += b[0]
                    s7 += b[1]
        row: list = []
        for n, total in ((n1, s1), (n24, s24), (n7, s7), (n30, s30)):
            emit_window(row, n, total / UNIT)
        self._label_features(ts, float(n30), row)
        return row, ts >= self.exact_from

    def add(self, ts: int, h: int, amount: float) -> bool:
        """Count a transaction (once: a known ``(ts, h)`` is not added again)."""
        ex = self.exact
        i = bisect.bisect_left(ex, (ts, h, -_MAXH))
        if i < len(ex) and ex[i][0] == ts and ex[i][1] == h:
            return False
        u = units(amount)
        ex.insert(i, (ts, h, u))
        for buckets, idx in ((self.hb, ts // HOUR), (self.db, ts // DAY)):
            b = buckets.get(idx)
            if b is None:
                buckets[idx] = [1, u]
            else:
                b[0] += 1
                b[1] += u
        if ts > self.newest:
            self.newest = ts
            self._expire()
        elif len(ex) > _EXACT_CAP:
            self._expire()
        return True

    def _expire(self) -> None:
        xf = max(self.exact_from, self.newest - self.late_ns)
        ex = self.exact
        cut = bisect.bisect_right(ex, (xf - HOUR, _MAXH, _MAXH))
        if len(ex) - cut > _EXACT_CAP:
            cut = len(ex) - _EXACT_CAP
            xf = max(xf, ex[cut - 1][0] + HOUR + 1)
        if cut:
            del ex[:cut]
        self.exact_from = xf
        h0, d0 = xf // HOUR - 24, xf // DAY - 30
        for buckets, first in ((self.hb, h0), (self.db, d0)):
            if buckets and min(buckets) <= first:
                for idx in [i for i in buckets if i <= first]:
                    del buckets[idx]
        if self.labels:
            old = xf - 31 * DAY
            for k in [k for k, (_, tt) in self.labels.items() if tt < old]:
                del self.labels[k]

    # -- bytes ----------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        return orjson.dumps({"e": self.exact, "h": list(self.hb.items()),
                             "d": list(self.db.items()),
                             "l": [[k, r, t] for k, (r, t) in self.labels.items()],
                             "n": self.newest, "x": self.exact_from, "b": self.late_ns})

    @classmethod
    def from_bytes(cls, raw: bytes) -> "TermState":
        o = orjson.loads(raw)
        st = cls(o["b"])
        st.exact = [tuple(e) for e in o["e"]]
        st.hb = {i: b for i, b in o["h"]}
        st.db = {i: b for i, b in o["d"]}
        st.labels = {k: (r, t) for k, r, t in o["l"]}
        st.newest, st.exact_from = o["n"], o["x"]
        return st
