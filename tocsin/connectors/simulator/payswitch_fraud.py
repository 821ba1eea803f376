"""Spending and fraud behaviour of the simulated switch (:mod:`.payswitch`). Simulated data.

Legitimate behaviour is made to look like fraud now and then, so a model has to weigh
evidence instead of reading one flag:

- habits: a rate (0.5-4 a day), a log-normal amount scale, a handful of usual terminals
  (85 %), a share of e-commerce (0-40 %), and for one customer in eight a night-time rhythm;
- trips: about one every two months, 2-6 days of purchases at terminals the card never used,
  1.5x the amount;
- big legitimate purchases: 1.5 % of purchases at 3-10x the usual amount, electronics/travel.

Fraud scenarios (every fraudulent transaction is labelled; labels arrive late):

- ``compromised_terminal``: a terminal is compromised for 7-21 days; a quarter to a half of
  the purchases there are then fraudulent, at 1-2.5x the card's usual amount, from the
  terminal's own customers. Nothing about the card gives it away; the terminal's confirmed
  fraud history (late labels) does.
- ``card_testing``: a stolen card is tested with 2-10 small e-commerce payments (0.5-8)
  within minutes, then drained by 1-3 payments at 2-8x its usual amount.
- ``account_takeover``: for 1-5 days the card also spends at new e-commerce terminals, 1.5-6x
  its usual amount, at night half of the time, mixed with the customer's own purchases.
"""

from __future__ import annotations

import numpy as np

DAY = 86_400 * 10**9
HOUR = 3_600 * 10**9
_NIGHT = np.array([6, 7, 7, 6, 4, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 3, 4, 5, 6, 6],
                  float)
_NIGHT /= _NIGHT.sum()


def legit_rows(sw, days: int, rows: list) -> None:
    """The customers' own purchases (scenario ""), appended to ``rows``."""
    r = sw.rng
    for c in range(sw.n_cust):
        n = r.poisson(sw.cust_rate[c] * days)
        trips = []
        for _ in range(r.poisson(days / 60)):
            d0 = int(r.integers(0, days))
            trips.append((d0, d0 + int(r.integers(2, 7))))
        night = sw.cust_night[c]
        for d in r.integers(0, days, n):
            d = int(d)
            away = any(a <= d < b for a, b in trips)
            if away or r.random() >= 0.85:
                term = sw.random_terminal(ecom=r.random() < sw.cust_ecom[c])
            else:
                term = int(r.choice(sw.cust_terms[c]))
            factor = 1.5 if away else 1.0
            if r.random() < 0.015:
                term, factor = sw.random_terminal(ecom=True, big=True), r.uniform(3, 10)
            hour = r.choice(24, p=_NIGHT if night else sw.hour_p)
            ts = sw.start + d * DAY + int(hour) * HOUR + int(r.integers(0, HOUR))
            rows.append((ts, c, term, sw.amount(sw.cust_mu[c], term, factor), ""))


def compromised_terminal(sw, rows: list, day: int, days: int) -> None:
    r = sw.rng
    term = int(r.integers(sw.n_term))
    t0 = sw.start + day * DAY
    t1 = sw.start + min(days, day + int(r.integers(7, 22))) * DAY
    share = r.uniform(0.25, 0.5)
    regulars = [c for c in range(sw.n_cust) if term in sw.cust_terms[c]] or \
        list(r.integers(sw.n_cust, size=5))
    n = r.poisson(len(regulars) * 0.4 * share * (t1 - t0) / DAY)
    for _ in range(n):
        c = int(r.choice(regulars))
        ts = int(r.integers(t0, t1))
        rows.append((ts, c, term, sw.amount(sw.cust_mu[c], term, r.uniform(1.0, 2.5)),
                     "compromised_terminal"))


def card_testing(sw, rows: list, day: int) -> None:
    r = sw.rng
    c = int(r.integers(sw.n_cust))
    ts = sw.daytime(day)
    for _ in range(int(r.integers(2, 11))):
        ts += int(r.integers(5, 300)) * 10**9
        rows.append((ts, c, sw.random_terminal(ecom=True), round(float(r.uniform(0.5, 8)), 2),
                     "card_testing"))
    for _ in range(int(r.integers(1, 4))):
        ts += int(r.integers(60, 6 * 3600)) * 10**9
        term = sw.random_terminal(ecom=r.random() < 0.7)
        rows.append((ts, c, term, sw.amount(sw.cust_mu[c], term, r.uniform(2, 8)),
                     "card_testing"))


def account_takeover(sw, rows: list, day: int, days: int) -> None:
    r = sw.rng
    c = int(r.integers(sw.n_cust))
    span = int(min(days - day, r.integers(1, 6)))
    night = r.random() < 0.5
    for _ in range(int(r.integers(2, 9))):
        d = day + int(r.integers(0, max(span, 1)))
        hour = int(r.choice(24, p=_NIGHT if night else sw.hour_p))
        ts = sw.start + d * DAY + hour * HOUR + int(r.integers(0, HOUR))
        term = sw.random_terminal(ecom=True, big=r.random() < 0.5)
        rows.append((ts, c, term, sw.amount(sw.cust_mu[c], term, r.uniform(1.5, 6)),
                     "account_takeover"))


def fraud_rows(sw, days: int, rows: list) -> None:
    """Each day's fraud: Poisson counts per scenario, scaled by ``frauds_per_day``."""
    r, k = sw.rng, sw.fraud_rate
    for d in range(days):
        for _ in range(r.poisson(0.07 * k)):
            compromised_terminal(sw, rows, d, days)
        for _ in range(r.poisson(1.0 * k)):
            card_testing(sw, rows, d)
        for _ in range(r.poisson(0.8 * k)):
            account_takeover(sw, rows, d, days)
