"""Fixtures shared by unit and integration tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """Small but real models for the simulated pump, trained once per test session
    (6 minutes of simulated normal operation, short sequences, few epochs: seconds)."""
    from tocsin.config.plant import load_plant
    from tocsin.connectors.model_sources import simulated_frames
    from tocsin.models.training import TrainConfig, collect_ticks, train_asset_type

    plant = load_plant(None)
    root = tmp_path_factory.mktemp("models")
    cfg = TrainConfig(seq_len=10, score_steps=3, hidden=16, epochs=3, n_estimators=50,
                      seq_stride=1, threads=1)
    tags = plant.asset_tags()
    ticks = collect_ticks(simulated_frames(360, seed=1, assets=["pump-1"]), plant.features,
                          {"pump-1": tags["pump-1"]})
    art = train_asset_type("centrifugal-pump", ticks, plant.features, tags["pump-1"], cfg, root,
                           "simulated plant, 360 s, seed 1 (test fixture)")
    return root, art, cfg


def pytest_collection_modifyitems(config, items):
    """Every test under tests/integration is an integration test (needs real services), so
    `-m "not integration"` selects exactly the tests that start nothing."""
    for item in items:
        if "integration" in item.path.parts:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(autouse=True)
def _unit_tests_start_no_service(request, monkeypatch):
    """`-m "not integration"` starts no service: a test outside tests/integration that starts
    a service (Kafka, influxd) or a Python/`tocsin` process fails here, saying what it tried.
    (Peers inside the test process, e.g. the Source contract's servers, are not refused.)"""
    if request.node.get_closest_marker("integration"):
        return

    real_execute = subprocess.Popen._execute_child

    def no_service(self, args, *a, **k):
        # libraries may run short helper tools (platform runs `file -b` on the interpreter);
        # what a unit test must not start is a service or a Python/`tocsin` process
        argv = [args] if isinstance(args, (str, bytes)) else list(args)
        words = " ".join(map(str, argv))
        prog = Path(str(argv[0]).split()[0]).name if argv else ""
        if (prog.startswith("python") or prog in {"java", "influxd", "tocsin"}
                or Path(str(argv[0])) == Path(sys.executable) or "tocsin" in words
                or "kafka" in words):
            raise AssertionError(f"a unit test started a process ({args!r}); tests that need "
                                 "services or subprocesses go under tests/integration")
        return real_execute(self, args, *a, **k)

    monkeypatch.setattr(subprocess.Popen, "_execute_child", no_service)
