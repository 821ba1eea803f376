"""A simulated payment switch: customers with cards, terminals at merchants, realistic spending
and three documented fraud scenarios with ground-truth labels that arrive late.

Everything here is simulated and deterministic for a seed. Spending: each customer has a
transaction rate (0.5-4 a day), a daytime rhythm, a log-normal amount scale, and a handful of
usual terminals (90 % of purchases). Fraud scenarios (``SCENARIOS``):

- ``compromised_terminal``: a terminal is compromised for 5-14 days; about half of its
  transactions in that window are fraudulent cash-outs with stolen cards, at 2-4x the amount.
  Only the terminal's confirmed-fraud history (late labels) gives this away.
- ``card_testing``: a stolen card is tested with 5-20 small e-commerce payments (0.5-3) within
  minutes at unusual terminals, then drained by 1-2 large ones.
- ``account_takeover``: for 1-4 days the card spends differently: new e-commerce terminals,
  electronics and travel MCCs, 3-8x the customer's usual amount, at night, mixed with the
  customer's own legitimate purchases.

Every fraudulent transaction gets a label whose ``reported_ts`` is the transaction time plus a
log-normal chargeback delay (median 3 days, 2 hours to 30 days).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tocsin.contracts.payments import FraudLabel, Transaction

EPOCH_2026_NS = 1_767_225_600 * 10**9  # 2026-01-01T00:00:00Z: stable simulated data
DAY = 86_400 * 10**9
HOUR = 3_600 * 10**9
MINUTE = 60 * 10**9
SCENARIOS = ("compromised_terminal", "card_testing", "account_takeover")
# (mcc, amount factor, card-present?) per terminal kind
_KINDS = [(5411, 1.0, True), (5812, 0.8, True), (5541, 1.2, True), (5912, 0.6, True),
          (5999, 1.1, False), (5732, 3.0, False), (4511, 6.0, False)]
_KIND_P = np.array([0.3, 0.2, 0.12, 0.1, 0.18, 0.06, 0.04])
_ECOM = [i for i, k in enumerate(_KINDS) if not k[2]]
_HOUR_P = np.array([1, 0.5, 0.3, 0.2, 0.2, 0.4, 1, 3, 5, 6, 7, 8, 10, 9, 7, 7, 8, 9, 10, 9,
                    7, 5, 3, 2], float)
_HOUR_P /= _HOUR_P.sum()


@dataclass
class Simulated:
    transactions: list[Transaction]  # sorted by ts
    labels: list[FraudLabel]  # sorted by reported_ts
    fraud: np.ndarray  # bool per transaction (ground truth, same order)
    scenario: list[str]  # "" or the scenario name per transaction


class PaymentSwitch:
    """Generates ``days`` of simulated traffic; ``frauds_per_day`` scales each scenario."""

    def __init__(self, *, customers: int = 2000, terminals: int = 400, seed: int = 7,
                 start_ns: int = EPOCH_2026_NS, frauds_per_day: float = 1.0):
        self.rng = np.random.default_rng(seed)
        self.n_cust, self.n_term = customers, terminals
        self.start = start_ns
        self.fraud_rate = frauds_per_day
        r = self.rng
        self.term_kind = r.choice(len(_KINDS), size=terminals, p=_KIND_P)
        self.cust_rate = r.uniform(0.5, 4.0, customers)
        self.cust_mu = r.normal(3.2, 0.5, customers)  # log of the typical amount
        self.cust_terms = [r.choice(terminals, size=r.integers(3, 9), replace=False)
                           for _ in range(customers)]

    # -- helpers -------------------------------------------------------------------------
    def _amount(self, mu: float, term: int, factor: float = 1.0) -> float:
        base = np.exp(self.rng.normal(mu, 0.6)) * _KINDS[self.term_kind[term]][1] * factor
        return round(float(min(base, 50_000.0)), 2)

    def _row(self, rows, ts, cust, term, amount, scen):
        rows.append((int(ts), int(cust), int(term), float(amount), scen))

    def _daytime(self, day: int) -> int:
        hour = self.rng.choice(24, p=_HOUR_P)
        return self.start + day * DAY + hour * HOUR + int(self.rng.integers(0, HOUR))

    # -- generation ----------------------------------------------------------------------
    def generate(self, days: int) -> Simulated:
        r, rows = self.rng, []
        for c in range(self.n_cust):
            n = r.poisson(self.cust_rate[c] * days)
            day = r.integers(0, days, n)
            for d in day:
                usual = r.random() < 0.9
                term = r.choice(self.cust_terms[c]) if usual else r.integers(self.n_term)
                self._row(rows, self._daytime(int(d)), c, term,
                          self._amount(self.cust_mu[c], term), "")
        for d in range(days):
            k = r.poisson(0.15 * self.fraud_rate)
            for _ in range(k):
                self._compromise(rows, d, days)
            for _ in range(r.poisson(1.2 * self.fraud_rate)):
                self._card_testing(rows, d)
            for _ in range(r.poisson(0.8 * self.fraud_rate)):
                self._takeover(rows, d, days)
        rows.sort(key=lambda x: x[0])
        return self._finish(rows)

    def _compromise(self, rows, day: int, days: int) -> None:
        r, term = self.rng, int(self.rng.integers(self.n_term))
        t0, t1 = self.start + day * DAY, self.start + min(days, day + r.integers(5, 15)) * DAY
        # cash-outs with stolen cards (existing customers' cards, not their usual terminals)
        n = r.poisson(3.0 * (t1 - t0) / DAY)
        for _ in range(n):
            c = int(r.integers(self.n_cust))
            ts = int(r.integers(t0, t1))
            self._row(rows, ts, c, term, self._amount(self.cust_mu[c], term, r.uniform(2, 4)),
                      "compromised_terminal")

    def _card_testing(self, rows, day: int) -> None:
        r, c = self.rng, int(self.rng.integers(self.n_cust))
        ts = self._daytime(day)
        for _ in range(r.integers(5, 21)):
            ts += int(r.integers(5, 90)) * 10**9
            term = int(r.integers(self.n_term))
            self._row(rows, ts, c, term, round(float(r.uniform(0.5, 3.0)), 2), "card_testing")
        for _ in range(r.integers(1, 3)):
            ts += int(r.integers(60, 1800)) * 10**9
            term = int(r.integers(self.n_term))
            self._row(rows, ts, c, term, round(float(r.uniform(200, 2000)), 2), "card_testing")

    def _takeover(self, rows, day: int, days: int) -> None:
        r, c = self.rng, int(self.rng.integers(self.n_cust))
        ecom = np.flatnonzero(np.isin(self.term_kind, _ECOM))
        span = int(min(days - day, r.integers(1, 5)))
        for _ in range(r.integers(2, 7)):
            d = day + int(r.integers(0, max(span, 1)))
            ts = self.start + d * DAY + int(r.integers(0, 6)) * HOUR + int(r.integers(0, HOUR))
            term = int(r.choice(ecom)) if len(ecom) else int(r.integers(self.n_term))
            self._row(rows, ts, c, term,
                      self._amount(self.cust_mu[c], term, r.uniform(3, 8)), "account_takeover")

    def _finish(self, rows) -> Simulated:
        r = self.rng
        txns, labels = [], []
        fraud = np.zeros(len(rows), bool)
        scen = []
        for i, (ts, c, term, amount, s) in enumerate(rows):
            mcc, _, present = _KINDS[self.term_kind[term]]
            pem = ("051" if r.random() < 0.6 else "071") if present else "812"
            t = Transaction(txn_id=f"S{i:08d}", ts=ts, card_id=f"card-{c:06d}",
                            terminal_id=f"TRM{term:05d}", amount=amount, currency="978",
                            merchant_id=f"MER{term:012d}", customer_id=f"cust-{c:06d}",
                            mcc=mcc, pos_entry_mode=pem, source="sim")
            txns.append(t)
            scen.append(s)
            if s:
                fraud[i] = True
                delay = int(np.clip(np.exp(r.normal(np.log(3 * DAY), 1.0)), 2 * HOUR, 30 * DAY))
                labels.append(FraudLabel(t.txn_id, t.card_id, t.terminal_id, ts, ts + delay,
                                         True, s))
        labels.sort(key=lambda x: x.reported_ts)
        return Simulated(txns, labels, fraud, scen)
