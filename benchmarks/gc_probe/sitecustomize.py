"""Time Python's cyclic GC in a worker process (benchmarks only; self-contained, so it works
for a baseline tree too). Activated by ``PYTHONPATH=benchmarks/gc_probe`` and
``TOCSIN_GC_PROBE_DIR=DIR``: at exit the process writes ``DIR/<pid>.json`` with, per
generation, the collections, the seconds spent in them, the objects collected and the longest
pause, counted apart from the moment the runtime's runner threads (``runtime-*``) started
(``gc_running``: the batches, not the imports and model loading before them), the RSS then,
every 10 s and at exit, and the worker's topic prefix (to tell contenders apart). Processes
without ``TOCSIN_GC_PROBE_DIR`` are left alone."""

import os

if os.environ.get("TOCSIN_GC_PROBE_DIR"):
    import atexit
    import gc
    import json
    import resource
    import sys
    import time

    # count, seconds, collected, longest, CPU seconds of the collecting thread, longest CPU
    _stats = {g: [0, 0.0, 0, 0.0, 0.0, 0.0] for g in range(3)}
    _running = {g: [0, 0.0, 0, 0.0, 0.0, 0.0] for g in range(3)}  # once the runners started
    _started = [False]
    _t0 = [0.0]
    _c0 = [0.0]
    _clock = time.perf_counter

    def _cb(phase, info):
        if phase == "start":
            _t0[0] = _clock()
            _c0[0] = time.thread_time()
        else:
            dt = _clock() - _t0[0]
            dc = time.thread_time() - _c0[0]
            for s in (_stats[info["generation"]],) + \
                    ((_running[info["generation"]],) if _started[0] else ()):
                s[0] += 1
                s[1] += dt
                s[2] += info.get("collected", 0)
                s[3] = max(s[3], dt)
                s[4] += dc
                s[5] = max(s[5], dc)

    gc.callbacks.append(_cb)

    def _rss_kb():
        try:
            with open("/proc/self/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            pass
        return 0

    _start = {"rss_kb": _rss_kb(), "t": time.time()}

    def _write():
        out = {"pid": os.getpid(), "argv": sys.argv,
               "prefix": os.environ.get("TOCSIN_TOPIC_PREFIX", ""),
               "cwd": os.getcwd(), "wall_s": time.time() - _start["t"],
               "cpu_s": sum(os.times()[:2]), "rss_kb_end": _rss_kb(),
               "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
               "gc": {str(g): {"collections": v[0], "seconds": v[1], "collected": v[2],
                               "longest_s": v[3], "cpu_s": v[4], "longest_cpu_s": v[5]}
                for g, v in _stats.items()},
               "gc_running": {str(g): {"collections": v[0], "seconds": v[1],
                                       "collected": v[2], "longest_s": v[3],
                                       "cpu_s": v[4], "longest_cpu_s": v[5]}
                              for g, v in _running.items()},
               "threshold": gc.get_threshold(), "frozen": gc.get_freeze_count(),
               "marks": _marks}
        path = os.path.join(os.environ["TOCSIN_GC_PROBE_DIR"], f"{os.getpid()}.json")
        with open(path, "w") as fh:
            json.dump(out, fh, indent=1)

    _marks = []

    def mark(name):  # RSS, process CPU and GC CPU so far
        _marks.append({"name": name, "t": time.time(), "rss_kb": _rss_kb(),
                       "cpu_s": sum(os.times()[:2]),
                       "gc_cpu_s": sum(v[4] for v in _stats.values())})

    def _periodic():  # RSS and GC time every 10 s: memory stays bounded or it does not
        while not _started[0]:
            time.sleep(0.005)
            if any(t.name.startswith("runtime-") for t in threading.enumerate()):
                _started[0] = True
                mark("runners started")
        while True:
            time.sleep(10)
            mark("tick")

    import threading

    threading.Thread(target=_periodic, daemon=True, name="gc-probe").start()
    atexit.register(_write)
