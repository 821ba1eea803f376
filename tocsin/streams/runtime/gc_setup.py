"""Python's cyclic garbage collector for a stream worker, set once at start-up.

A worker loads its models, plant config and operators once and then processes batches that
allocate many short-lived objects (records, decoded messages, outputs) and free nearly all of
them by reference counting before the next batch. With Python's defaults (a young collection
every 700 net allocations) the collector runs many times per batch and each full collection
walks every start-up object again (imported modules, model objects), freeing nothing: 12 % of
the payments worker's CPU, 16 % of the fraud stages' and 6 % of the features harness's
(docs/runtime.md, "Python's garbage collector"). :func:`prepare`,
called by :func:`tocsin.streams.runtime.worker.serve` after the operators are built and before
any runner starts (so every worker kind the runtime starts gets it):

- ``gc.collect()`` then ``gc.freeze()`` (``runtime_gc_freeze``): the objects alive now move to
  the permanent generation, which no collection visits. They are still freed by reference
  counting; only a cycle among them would wait for ``gc.unfreeze()``.
- ``gc.set_threshold(runtime_gc_gen0, 10, 10)`` (``runtime_gc_gen0``; 0 keeps Python's
  threshold): fewer, larger young collections; the older generations keep their ratios.

Neither changes what is freed: cycles are still collected, only less often.
"""

from __future__ import annotations

import gc
import logging

log = logging.getLogger("tocsin.runtime")


def prepare(settings) -> str:
    """Apply the worker's GC settings; returns (and logs) what was done."""
    done = []
    if getattr(settings, "runtime_gc_freeze", False):
        gc.collect()
        gc.freeze()
        done.append(f"froze {gc.get_freeze_count():,} start-up objects")
    gen0 = getattr(settings, "runtime_gc_gen0", 0)
    if gen0:
        _, g1, g2 = gc.get_threshold()
        gc.set_threshold(gen0, g1, g2)
    done.append("thresholds {}".format(gc.get_threshold()))
    text = "gc: " + ", ".join(done)
    log.info(text)
    return text
