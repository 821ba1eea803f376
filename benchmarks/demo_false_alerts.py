"""Ten fresh demo runs in a row: does any alert come before the injected fault?

Each run gets an empty model folder (``TOCSIN_MODEL_DIR``), so the demo trains its anomaly
models and fusion network afresh as on a new machine, then runs ``tocsin demo`` for
``--duration`` seconds and counts the alert events printed before the ``>>> injected fault``
line (false alerts) and after it. The score's return after the fault ends is read from the
demo's own before/after summary line.

NOT RUN in the session that wrote it (each run trains models and starts the whole slice:
too heavy for the shared 2-core machine). Usage:

    python -m benchmarks.demo_false_alerts [--runs 10] [--duration 240] [--broker HOST:PORT]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile

RAISED = re.compile(r"\bRAISED\b")  # tocsin.streams.tail.format_alert


def one_run(i: int, duration: float, broker: str | None) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"tocsin-demo-run{i}-") as models:
        env = dict(os.environ, TOCSIN_MODEL_DIR=models)
        cmd = [sys.executable, "-m", "tocsin.cli", "demo", "--duration", str(duration),
               "--no-history"] + (["--broker", broker] if broker else [])
        out = subprocess.run(cmd, env=env, capture_output=True, text=True,
                             timeout=duration + 1800).stdout
    before, after, injected = 0, 0, False
    for line in out.splitlines():
        if ">>> injected fault" in line:
            injected = True
        elif RAISED.search(line):
            if injected:
                after += 1
            else:
                before += 1
    return {"run": i, "false_alerts": before, "alerts_after_fault": after,
            "injected": injected}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--duration", type=float, default=240.0)
    ap.add_argument("--broker", default=None)
    a = ap.parse_args()
    rows = [one_run(i, a.duration, a.broker) for i in range(1, a.runs + 1)]
    for r in rows:
        print(r)
    total = sum(r["false_alerts"] for r in rows)
    print(f"{a.runs} fresh runs: {total} false alerts (raised before the fault); "
          f"{sum(r['alerts_after_fault'] > 0 for r in rows)} runs alerted after it")


if __name__ == "__main__":
    main()
