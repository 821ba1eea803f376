"""Decoding and encoding a readings frame (50 and 100 samples), side by side in one run.

  decode     ReadingsFrame.decode: the msgspec fast path (falls back to the checked decoder
             only for documents it refuses)
  checked    ReadingsFrame.decode_checked: the field-by-field orjson decoder
  baseline   with --baseline-tree DIR: that tree's tocsin/contracts/readings.py (for
             instance main before #20), loaded beside this one

CPU time per call (best of the repeats, robust on a shared machine).
Usage: python -m benchmarks.readings_codec [--rounds 3] [--baseline-tree DIR]
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
import timeit

import numpy as np

from benchmarks.report import Report, add_arguments
from tocsin.contracts import readings


def _frame(mod, n: int):
    rng = np.random.default_rng(n)
    return mod.ReadingsFrame("pump-1", [f"tag_{i}" for i in range(n)],
                             np.arange(n, dtype=np.int64) + 1_767_225_600_000_000_000,
                             rng.normal(size=n), np.zeros(n, np.uint8),
                             source="modbus://127.0.0.1:5020/1", seq=12345)


def _us(fn, number: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=5, timer=time.process_time)) / number * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--number", type=int, default=500)
    args = add_arguments(ap).parse_args()
    rep = Report("readings_codec", vars(args))
    base = None
    if args.baseline_tree:
        spec = importlib.util.spec_from_file_location(
            "baseline_readings", args.baseline_tree / "tocsin/contracts/readings.py")
        base = importlib.util.module_from_spec(spec)
        sys.modules["baseline_readings"] = base  # dataclasses look their module up
        spec.loader.exec_module(base)
    RF = readings.ReadingsFrame
    for _ in range(args.rounds):
        for n in (50, 100):
            data = _frame(readings, n).encode()
            rep.add(f"decode {n}", us_per_frame=_us(lambda d=data: RF.decode(d), args.number))
            rep.add(f"checked {n}", us_per_frame=_us(lambda d=data: RF.decode_checked(d),
                                                     args.number))
            rep.add(f"encode {n}", us_per_frame=_us(_frame(readings, n).encode, args.number))
            if base is not None:
                old = base.ReadingsFrame
                rep.add(f"baseline decode {n}",
                        us_per_frame=_us(lambda d=data, o=old: o.decode(d), args.number))
                rep.add(f"baseline encode {n}",
                        us_per_frame=_us(_frame(base, n).encode, args.number))
    for n in (50, 100):
        rep.check(f"decode {n} samples, fast path vs checked decoder", "us_per_frame",
                  f"decode {n}", peer=f"checked {n}")
        if base is not None:
            rep.check(f"decode {n} samples vs the baseline tree (target: half)", "us_per_frame",
                      f"decode {n}", peer=f"baseline decode {n}", op="<=", target=0.5)
            rep.check(f"encode {n} samples vs the baseline tree", "us_per_frame",
                      f"encode {n}", peer=f"baseline encode {n}")
    rep.finish(args)


if __name__ == "__main__":
    main()
