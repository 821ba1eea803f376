"""The chaos test as a soak: the same scenario, faults and exact assertions as
tests/integration/test_chaos.py, for longer (default 600 s of plant time, about 40 kills).

    python benchmarks/chaos_soak.py [--seconds 600] [--broker HOST:PORT]
Without --broker the test's own fixtures decide (TOCSIN_TEST_BROKER or a private broker)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=600.0)
    ap.add_argument("--broker")
    args = ap.parse_args()
    env = dict(os.environ, TOCSIN_CHAOS_SECONDS=str(args.seconds))
    if args.broker:
        env["TOCSIN_TEST_BROKER"] = args.broker
    sys.exit(subprocess.call([sys.executable, "-m", "pytest", "-x", "-q", "-s",
                              "tests/integration/test_chaos.py"], cwd=ROOT, env=env))


if __name__ == "__main__":
    main()
