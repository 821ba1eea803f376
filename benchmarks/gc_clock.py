"""Python's cyclic GC in the in-process harnesses (benchmarks/plant_ops_profile.py,
benchmarks/fraud_stages.py): the time spent in collections, and the set-ups compared.

``python``: Python's defaults (nothing frozen, gen0 threshold 700); ``runtime@N``: the
worker's start-up step (:func:`tocsin.streams.runtime.gc_setup.prepare`: ``gc.collect()``,
``gc.freeze()``, gen0 threshold N), applied after the operators are built, as the runtime
does."""

from __future__ import annotations

import gc
import time
from types import SimpleNamespace


class GcClock:
    """Seconds spent in collections (wall, and the collecting thread's CPU), collections per
    generation, the longest one (CPU) and the objects they freed (cyclic garbage), from
    ``gc.callbacks``."""

    def __init__(self):
        self.seconds = self.cpu_s = self.longest_s = 0.0
        self.counts = [0, 0, 0]
        self.collected = 0
        self._t0 = self._c0 = 0.0
        gc.callbacks.append(self._cb)

    def _cb(self, phase, info):
        if phase == "start":
            self._t0, self._c0 = time.perf_counter(), time.thread_time()
        else:
            self.seconds += time.perf_counter() - self._t0
            dt = time.thread_time() - self._c0
            self.cpu_s += dt
            self.longest_s = max(self.longest_s, dt)
            self.counts[info["generation"]] += 1
            self.collected += info["collected"]

    def take(self) -> tuple[float, float, list[int]]:
        out = (self.seconds, self.cpu_s, self.counts)
        self.seconds = self.cpu_s = self.longest_s = 0.0
        self.counts = [0, 0, 0]
        self.collected = 0
        return out


def setups(modes: str, gen0s: str) -> list[tuple[str, int]]:
    """``--gc python,runtime --gc-gen0 700,20000`` -> [("python", 0), ("runtime", 700), ...]"""
    out: list[tuple[str, int]] = []
    for mode in modes.split(","):
        out += [(mode, 0)] if mode == "python" else [(mode, int(g)) for g in gen0s.split(",")]
    return out


def label(mode: str, gen0: int) -> str:
    return f"{mode}@{gen0}" if gen0 else mode


def apply(mode: str, gen0: int) -> None:
    """Python's defaults, then (``runtime``) the worker's start-up step."""
    gc.unfreeze()
    gc.set_threshold(700, 10, 10)
    if mode == "runtime":
        from tocsin.streams.runtime import gc_setup

        gc_setup.prepare(SimpleNamespace(runtime_gc_freeze=True, runtime_gc_gen0=gen0))
    else:
        gc.collect()
