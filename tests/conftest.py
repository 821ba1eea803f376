"""Fixtures shared by unit and integration tests."""

from __future__ import annotations

import socket
import subprocess

import pytest


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """Small but real models for the simulated pump, trained once per test session
    (4 minutes of simulated normal operation, short sequences, few epochs: seconds)."""
    from tocsin.config.plant import load_plant
    from tocsin.connectors.model_sources import simulated_frames
    from tocsin.models.training import TrainConfig, collect_ticks, train_asset_type

    plant = load_plant(None)
    root = tmp_path_factory.mktemp("models")
    cfg = TrainConfig(seq_len=10, score_steps=3, hidden=16, epochs=3, n_estimators=50,
                      seq_stride=1, threads=1)
    tags = plant.asset_tags()
    ticks = collect_ticks(simulated_frames(240, seed=1, assets=["pump-1"]), plant.features,
                          {"pump-1": tags["pump-1"]})
    art = train_asset_type("centrifugal-pump", ticks, plant.features, tags["pump-1"], cfg, root,
                           "simulated plant, 240 s, seed 1 (test fixture)")
    return root, art, cfg


def pytest_collection_modifyitems(config, items):
    """Every test under tests/integration is an integration test (needs real services), so
    `-m "not integration"` selects exactly the tests that start nothing."""
    for item in items:
        if "integration" in item.path.parts:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(autouse=True)
def _unit_tests_start_no_service(request, monkeypatch):
    """`-m "not integration"` starts nothing: a test outside tests/integration that starts a
    process or opens a listening socket (a server) fails here, saying what it tried."""
    if request.node.get_closest_marker("integration"):
        return

    def no_process(self, args, *a, **k):
        raise AssertionError(f"a unit test started a process ({args!r}); tests that need "
                             "services or subprocesses go under tests/integration")

    def no_server(self, *a, **k):
        raise AssertionError(f"a unit test opened a listening socket ({self!r}); tests that "
                             "need servers go under tests/integration")

    monkeypatch.setattr(subprocess.Popen, "_execute_child", no_process)
    monkeypatch.setattr(socket.socket, "listen", no_server)
