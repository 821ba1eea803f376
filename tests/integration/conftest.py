"""Real services for the integration tests, started by the project's own tooling.

Kafka: when ``TOCSIN_TEST_BROKER`` is set (``.ci/run`` starts one with `tocsin services up`
and sets it), the tests use that broker; otherwise they start a private broker on free ports
through :mod:`tocsin.services.kafka`, the same code `tocsin services up` runs.
Each test gets its own topic prefix, so tests never see each other's messages.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.integration.cluster_helpers import (  # noqa: F401 - opt-in 3-node cluster
    kafka_cluster,
    kafka_cluster_session,
)
from tests.waiting import wait_for
from tocsin.connectors import kafka_admin
from tocsin.contracts import topics
from tocsin.services.kafka import KafkaBroker, free_port


@pytest.fixture(scope="session")
def kafka(tmp_path_factory) -> str:
    env_broker = os.environ.get("TOCSIN_TEST_BROKER")
    if env_broker:
        yield env_broker
        return
    broker = KafkaBroker(tmp_path_factory.mktemp("kafka"), port=free_port(),
                         controller_port=free_port(), heap="512m")
    broker.start(timeout=120)
    yield broker.bootstrap
    broker.stop()


@pytest.fixture
def prefix(kafka) -> str:
    p = f"t{uuid.uuid4().hex[:8]}."
    kafka_admin.ensure_topics(kafka, [p + t for t in topics.ALL], 2)
    return p


class Proc:
    """A `tocsin ...` subprocess with its output in a log file."""

    def __init__(self, args: list[str], log: Path, env: dict):
        self.log = log
        self.fh = open(log, "wb")
        self.p = subprocess.Popen([sys.executable, "-m", "tocsin.cli", *args], env=env,
                                  stdout=self.fh, stderr=subprocess.STDOUT)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, marker: str, timeout: float = 60.0) -> None:
        def seen() -> bool:
            if marker in self.text():
                return True
            if self.p.poll() is not None:
                raise AssertionError(f"process exited ({self.p.returncode}):\n{self.text()[-3000:]}")
            return False

        wait_for(seen, timeout, f"{marker!r} in {self.log.name}",
                 seen=lambda: "\n" + self.text()[-3000:], interval=0.2)

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(20)
            except subprocess.TimeoutExpired:
                self.p.kill()
        self.fh.close()


@pytest.fixture
def spawn(kafka, prefix, tmp_path):
    procs: list[Proc] = []
    # development mode: these tests are about streams, not secrets (tests/integration/
    # test_secure_broker.py and test_pan_fuzz.py run the production rules)
    env = dict(os.environ, TOCSIN_BROKER=kafka, TOCSIN_TOPIC_PREFIX=prefix,
               TOCSIN_PARTITIONS="2", PYTHONUNBUFFERED="1", TOCSIN_DEV="1")

    def _spawn(*args: str, name: str | None = None, **extra_env: str) -> Proc:
        name = name or args[0]
        e = dict(env, TOCSIN_DATA_DIR=str(tmp_path / f"{name}-data"), **extra_env)
        p = Proc(list(args), tmp_path / f"{name}.log", e)
        procs.append(p)
        return p

    yield _spawn
    for p in procs:
        p.stop()


@pytest.fixture
def worker(spawn) -> Proc:
    w = spawn("worker")
    w.wait_for("runtime: ready", timeout=90)
    return w
