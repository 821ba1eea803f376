"""Child processes of the demos (`tocsin demo`, `payments demo`, `imaging demo`): one
`tocsin ...` per service, its output in a log file, and a wait for its ready line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path


def spawn(args: list[str], log: Path, env: dict) -> subprocess.Popen:
    """`python -m tocsin.cli ARGS` in its own session (so a demo can stop its whole group),
    writing a fresh ``log`` (a ready line left from the last run must not count)."""
    return subprocess.Popen([sys.executable, "-m", "tocsin.cli", *args], env=env,
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def wait_log(log: Path, marker: str, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    """Until ``marker`` shows in ``log``; raise naming the command and the log if the process
    exits first or the timeout passes."""
    deadline = time.monotonic() + timeout
    while marker not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            what = " ".join(str(a) for a in proc.args[3:5])
            raise RuntimeError(f"`tocsin {what}` did not get ready ({marker!r} not seen); "
                               f"see {log}")
        time.sleep(0.2)


def stop_all(procs: Iterable[subprocess.Popen], timeout: float = 20.0) -> None:
    """SIGTERM to every process group still running, then wait for each; a group still there
    after ``timeout`` gets SIGKILL."""
    procs = list(procs)
    for p in procs:
        if p.poll() is None:
            _signal_group(p, signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            _signal_group(p, signal.SIGKILL)
            p.wait()


def _signal_group(p: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(p.pid, sig)
    except ProcessLookupError:  # already gone
        pass
