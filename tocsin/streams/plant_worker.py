"""`tocsin worker`: the operators of the plant path on the exactly-once runtime.

thresholds (tocsin/streams/thresholds_op.py), features and anomaly
(tocsin/streams/plant_ops.py) run in threads of this process, one runner each; if a runner
fails (a fenced zombie, a lost broker) the process exits non-zero, so a supervisor restarts it
rather than leave a half worker running. ``runtime: ready`` is logged once every runner has
its first assignment restored.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger("tocsin.worker")

RUNTIME_AGENTS = {"thresholds", "features", "anomaly"}


def runtime_runners(settings, plant) -> list:
    from tocsin.streams.plant_ops import plant_operators
    from tocsin.streams.runtime.runner import Runner
    from tocsin.streams.thresholds_op import ThresholdsOperator

    ops = []
    if "thresholds" in settings.agent_set:
        ops.append(ThresholdsOperator(settings, plant))
    ops += plant_operators(settings, plant)
    return [Runner(op, settings) for op in ops]


def _announce(runners) -> None:
    for r in runners:
        while not r.ready.wait(0.5):
            if r.stopping.is_set():
                return
    log.warning("runtime: ready (%s; %s, worker %s)", ", ".join(r.op.name for r in runners),
                runners[0].s.processing_guarantee, runners[0].s.worker_name)


def run(settings, launch_faust: Callable[..., None] | None = None) -> None:
    """Serve the runners until SIGTERM/SIGINT (``launch_faust``: unused since every plant
    agent is on the runtime; kept for callers)."""
    from tocsin.config.plant import load_plant
    from tocsin.streams.runtime.worker import serve

    logging.basicConfig(level=settings.log_level.upper(),
                        format="[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s")
    runners = runtime_runners(settings, load_plant(settings.plant_config))
    if runners:
        threading.Thread(target=_announce, args=(runners,), daemon=True).start()
    serve(runners)
