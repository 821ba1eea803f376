"""A simulated payment switch: customers with cards, terminals at merchants, spending habits
and three documented fraud scenarios with ground-truth labels that arrive late.

Everything here is simulated and deterministic for a seed; the behaviour (habits, trips, big
legitimate purchases, and the fraud scenarios in ``SCENARIOS``) is described in
:mod:`.payswitch_fraud`. Legitimate traffic is made to look like fraud now and then (new
terminals on trips, large purchases, night owls), so that a model has to weigh evidence.

Every fraudulent transaction gets a label whose ``reported_ts`` is the transaction time plus a
log-normal chargeback delay (median 3 days, 2 hours to 30 days).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tocsin.connectors.simulator.payswitch_fraud import fraud_rows, legit_rows
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
_BIG = [5, 6]  # electronics and travel: the large purchases
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
        self.hour_p = _HOUR_P
        r = self.rng
        self.term_kind = r.choice(len(_KINDS), size=terminals, p=_KIND_P)
        self.cust_rate = r.uniform(0.5, 4.0, customers)
        self.cust_mu = r.normal(3.2, 0.5, customers)  # log of the typical amount
        self.cust_terms = [r.choice(terminals, size=r.integers(3, 9), replace=False)
                           for _ in range(customers)]
        self.cust_ecom = r.uniform(0.0, 0.4, customers)  # share of purchases online
        self.cust_night = r.random(customers) < 0.125  # night-time rhythm
        ecom = np.flatnonzero(np.isin(self.term_kind, _ECOM))
        big = np.flatnonzero(np.isin(self.term_kind, _BIG))
        self._ecom = ecom if len(ecom) else np.arange(terminals)
        self._big = big if len(big) else self._ecom

    # -- helpers used by the behaviour module ---------------------------------------------
    def amount(self, mu: float, term: int, factor: float = 1.0) -> float:
        base = np.exp(self.rng.normal(mu, 0.6)) * _KINDS[self.term_kind[term]][1] * factor
        return round(float(min(base, 50_000.0)), 2)

    def daytime(self, day: int) -> int:
        hour = self.rng.choice(24, p=_HOUR_P)
        return self.start + day * DAY + hour * HOUR + int(self.rng.integers(0, HOUR))

    def random_terminal(self, ecom: bool = False, big: bool = False) -> int:
        pool = self._big if big else self._ecom if ecom else None
        return int(self.rng.choice(pool)) if pool is not None else \
            int(self.rng.integers(self.n_term))

    # -- generation ----------------------------------------------------------------------
    def generate(self, days: int) -> Simulated:
        rows: list = []
        legit_rows(self, days, rows)
        fraud_rows(self, days, rows)
        rows.sort(key=lambda x: x[0])
        return self._finish(rows)

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
