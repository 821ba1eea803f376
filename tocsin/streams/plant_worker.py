"""`tocsin worker`: the runtime operators of the plant path, and the Faust agents not yet ported.

Runtime operators (exactly once, tocsin/streams/runtime) run in threads of this process; when
the settings also name Faust agents, the Faust worker runs in the main thread beside them and
a watchdog ends the process if a runner fails (a fenced zombie, a lost broker), so a supervisor
restarts it rather than leave a half worker running. ``runtime: ready`` is logged once every
runner has its first assignment restored.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

log = logging.getLogger("tocsin.worker")

RUNTIME_AGENTS = {"thresholds"}


def runtime_runners(settings, plant) -> list:
    from tocsin.streams.runtime.runner import Runner
    from tocsin.streams.thresholds_op import ThresholdsOperator

    ops = []
    if "thresholds" in settings.agent_set:
        ops.append(ThresholdsOperator(settings, plant))
    return [Runner(op, settings) for op in ops]


def _announce(runners) -> None:
    for r in runners:
        while not r.ready.wait(0.5):
            if r.stopping.is_set():
                return
    log.warning("runtime: ready (%s; %s, worker %s)", ", ".join(r.op.name for r in runners),
                runners[0].s.processing_guarantee, runners[0].s.worker_name)


def _watchdog(runners) -> None:
    while True:
        for r in runners:
            if r.stopping.wait(0.5) and r.error is not None:
                log.error("runtime runner %s failed (%r): the worker exits", r.op.name, r.error)
                logging.shutdown()
                os._exit(3)


def run(settings, launch_faust: Callable[..., None]) -> None:
    from tocsin.config.plant import load_plant
    from tocsin.streams.runtime.worker import serve

    runners = runtime_runners(settings, load_plant(settings.plant_config))
    if runners:
        threading.Thread(target=_announce, args=(runners,), daemon=True).start()
    if not settings.agent_set - RUNTIME_AGENTS:
        logging.basicConfig(level=settings.log_level.upper(),
                            format="[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s")
        serve(runners)
        return
    from tocsin.streams.app import create_app

    app = create_app(settings)
    for r in runners:
        r.start()
    if runners:
        threading.Thread(target=_watchdog, args=(runners,), daemon=True).start()
    launch_faust(app, settings.log_level)
