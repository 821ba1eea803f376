"""Running several runners in one process until SIGTERM/SIGINT, or until one fails."""

from __future__ import annotations

import logging
import signal
import threading
import time

from tocsin.connectors.health import HEALTH
from tocsin.errors import ServiceError

log = logging.getLogger("tocsin.runtime")


def serve(runners, install_signals: bool = True) -> None:
    """Start each runner in its thread; on a signal stop them all and wait. A runner that
    fails (fenced, broker gone for good) stops the others and raises here, so the process
    exits non-zero and its supervisor restarts it. Python's GC is set up first (after the
    operators were built, before any runner starts): :mod:`tocsin.streams.runtime.gc_setup`."""
    from tocsin.streams.runtime import gc_setup

    if runners:  # the operators (models, config) are built; nothing runs yet
        gc_setup.prepare(runners[0].s)
    stop = threading.Event()
    if install_signals:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    threads = [r.start() for r in runners]
    # /healthz beats while every runner's loop turns (a loop stuck longer than half the
    # liveness window stops the beat); /readyz once every runner has its partitions restored
    HEALTH.add_check("runtime", lambda: all(r.ready.is_set() for r in runners)
                     or "joining the group / restoring state")
    try:
        while not stop.wait(0.2):
            if any(r.error is not None or not t.is_alive() for r, t in zip(runners, threads)):
                break
            now = time.monotonic()
            if all(now - r.last_step < HEALTH.stale_s / 2 for r in runners):
                HEALTH.beat()
    finally:
        for r in runners:
            r.stop()
        for t in threads:
            t.join(60)
    failed = [r for r in runners if r.error is not None]
    if failed:
        raise ServiceError("; ".join(f"{r.op.name}: {r.error}" for r in failed)) from \
            failed[0].error
    log.info("runtime stopped")
