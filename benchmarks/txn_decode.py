"""Decoding one payment transaction, the msgspec fast path beside the checked decoder.

  decode          Transaction.decode: the msgspec fast path (a full record as the feeds
                  write it, and a minimal one with only the required fields)
  checked         Transaction.decode_checked: the field-by-field orjson decoder
  refused decode  a record both refuse (``ts`` in seconds): the fast path's attempt plus
                  the checked decoder, i.e. what the fallback costs a bad record
  refused checked the same record through the checked decoder alone

CPU time per call (best of the repeats, robust on a shared machine).
Usage: python -m benchmarks.txn_decode [--rounds 3] [--number 5000]
"""

from __future__ import annotations

import argparse
import time
import timeit

import orjson

from benchmarks.report import Report, add_arguments
from tocsin.contracts.payments import Transaction
from tocsin.errors import SchemaError

NOW = time.time_ns()
FULL = Transaction("T0000123456", NOW - 10**9, "tok_3f9a1c0b5e", "TRM00042", 42.5, "978",
                   "MER00017", "cust-00123", 5411, "051", NOW, "iso8583").encode()
MINIMAL = orjson.dumps({"schema": "tocsin.transaction/1", "txn_id": "T1", "ts": NOW - 10**9,
                        "card_id": "tok_a", "terminal_id": "TRM1", "amount": 3})
REFUSED = orjson.dumps({**orjson.loads(FULL), "ts": NOW // 10**9})


def _us(fn, number: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=5, timer=time.process_time)) / number * 1e6


def _refusing(fn):
    def call():
        try:
            fn(REFUSED)
        except SchemaError:
            pass
    return call


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--number", type=int, default=5000)
    args = add_arguments(ap).parse_args()
    rep = Report("txn_decode", vars(args))
    T = Transaction
    for _ in range(args.rounds):
        for name, data in (("full", FULL), ("minimal", MINIMAL)):
            rep.add(f"decode {name}", us_per_record=_us(lambda d=data: T.decode(d), args.number))
            rep.add(f"checked {name}",
                    us_per_record=_us(lambda d=data: T.decode_checked(d), args.number))
        rep.add("refused decode", us_per_record=_us(_refusing(T.decode), args.number // 5))
        rep.add("refused checked", us_per_record=_us(_refusing(T.decode_checked),
                                                     args.number // 5))
    for name in ("full", "minimal"):
        rep.check(f"decode a {name} transaction, fast path vs checked decoder", "us_per_record",
                  f"decode {name}", peer=f"checked {name}")
    rep.check("a refused transaction: fast attempt + checked vs checked alone",
              "us_per_record", "refused decode", peer="refused checked")
    rep.finish(args)


if __name__ == "__main__":
    main()
