"""`tocsin payments` takes the data directory and app id as flags (issue 16 item 5): on the
group for every command, on a command for that command (which wins), and the demo hands them
to its worker. The worker's run is replaced here: this checks the settings it would get."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from tocsin.cli import main
from tocsin.demo.payments import demo_env


@pytest.fixture
def captured(monkeypatch):
    got = {}
    monkeypatch.setattr("tocsin.streams.payments_worker.run_payments",
                        lambda s, fs, key: got.update(settings=s, fraud=fs))
    monkeypatch.setattr("tocsin.streams.metrics.serve", lambda *a, **k: None)
    monkeypatch.delenv("TOCSIN_DATA_DIR", raising=False)
    monkeypatch.delenv("TOCSIN_APP_ID", raising=False)
    monkeypatch.setenv("TOCSIN_DEV", "1")  # a public PAN key: no real card data here
    return got


def _worker(args, tmp_path):
    return CliRunner().invoke(main, args + ["--model-dir", str(tmp_path / "m")])


def test_group_flags_reach_the_worker(captured, tmp_path):
    r = _worker(["payments", "--data-dir", str(tmp_path / "d"), "--app-id", "risk",
                 "worker"], tmp_path)
    assert r.exit_code == 0, r.output
    s = captured["settings"]
    assert (s.data_dir, s.app_id) == (tmp_path / "d", "risk")


def test_command_flags_win_over_the_group_and_env(captured, tmp_path, monkeypatch):
    monkeypatch.setenv("TOCSIN_APP_ID", "from-env")
    r = _worker(["payments", "--app-id", "group", "worker", "--app-id", "own",
                 "--data-dir", str(tmp_path / "own")], tmp_path)
    assert r.exit_code == 0, r.output
    assert (captured["settings"].app_id, captured["settings"].data_dir) == ("own",
                                                                           tmp_path / "own")
    r = _worker(["payments", "worker"], tmp_path)
    assert r.exit_code == 0 and captured["settings"].app_id == "from-env"


def test_every_kafka_command_takes_the_flags():
    for cmd in ("worker", "ingest", "sim", "demo", "tail", "models"):
        r = CliRunner().invoke(main, ["payments", "--data-dir", "/tmp/x", "--app-id", "a",
                                      cmd, "--help"])
        assert r.exit_code == 0, (cmd, r.output)
    for cmd in ("worker", "demo", "tail"):
        r = CliRunner().invoke(main, ["payments", cmd, "--help"])
        assert "--app-id" in r.output, cmd


def test_demo_hands_data_dir_and_app_id_to_its_worker(tmp_path):
    env = demo_env({"PATH": "/bin"}, broker="127.0.0.1:1", prefix="p.", model_dir=Path("/m"),
                   logs=tmp_path, app_id="risk")
    assert env["TOCSIN_DATA_DIR"] == str(tmp_path / "worker") and env["TOCSIN_APP_ID"] == "risk"
    assert env["PATH"] == "/bin" and env["TOCSIN_TOPIC_PREFIX"] == "p."
    assert "TOCSIN_APP_ID" not in demo_env({}, broker="b", prefix="p", model_dir=Path("/m"),
                                           logs=tmp_path)
