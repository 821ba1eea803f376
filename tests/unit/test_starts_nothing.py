"""The rule `-m "not integration"` starts no service is enforced (tests/conftest.py): a unit
test that starts a service or a Python/`tocsin` process fails, naming what it tried."""

from __future__ import annotations

import subprocess
import sys

import pytest


def test_a_unit_test_cannot_start_a_python_or_tocsin_process():
    with pytest.raises(AssertionError, match="started a process"):
        subprocess.run([sys.executable, "-c", "pass"])
    with pytest.raises(AssertionError, match="started a process"):
        subprocess.run(["tocsin", "services", "up"])
    with pytest.raises(AssertionError, match="started a process"):
        subprocess.run("java -cp kafka.jar kafka.Kafka", shell=True)


def test_short_helper_tools_still_run():  # e.g. platform.architecture() runs `file -b`
    assert subprocess.run(["true"]).returncode == 0
