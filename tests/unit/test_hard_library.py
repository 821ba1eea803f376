"""The harder fault library: reproducible scenarios, labels where the faults are, mode changes
that are label 0, each sensor fault doing what its name says, and the CSVs eval csv reads."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from tocsin.connectors.simulator import hard
from tocsin.connectors.simulator.plant import Plant


def test_same_seed_same_rows_other_seed_other_rows():
    a = hard.run(hard.random_scenario("pump", "ramp_leak", 3))
    b = hard.run(hard.random_scenario("pump", "ramp_leak", 3))
    c = hard.run(hard.random_scenario("pump", "ramp_leak", 4))
    assert np.array_equal(a.values, b.values) and np.array_equal(a.labels, b.labels)
    assert not np.allclose(a.values, c.values)


def test_default_plant_is_unchanged_by_load_and_ramps():
    """Load 1 and no ramp add nothing: the demo's and the old library's readings stay."""
    p, q = Plant(seed=5), Plant(seed=5)
    for a in q.assets.values():
        a.load = 1.0
    for i in range(1, 50):
        assert p.step(i * 0.1, 0.1) == q.step(i * 0.1, 0.1)


def test_every_case_has_labels_only_on_its_fault_and_modes_are_normal():
    for kind in hard.KINDS:
        for case in hard.cases(kind):
            sc = hard.random_scenario(kind, case, 1)
            r = hard.run(sc)
            assert r.labels[:sc.train_rows].sum() == 0
            assert len(sc.mode_changes) >= 2
            if case == "mode_only":
                assert r.labels.sum() == 0
                assert np.ptp(r.load[sc.train_rows:]) > 0.1  # the load really moves
            else:
                assert 150 < r.labels.sum() < 400


def test_gradual_onset_grows_and_sensor_faults_act_on_their_tag():
    sc = hard.random_scenario("pump", "ramp_leak", 2)
    f = sc.faults[0]
    r = hard.run(sc)
    flow = r.columns.index("flow")
    t0 = int(f.start)
    early = r.values[t0:t0 + 5, flow].mean() - r.values[t0 - 30:t0, flow].mean()
    late = r.values[t0 + int(f.ramp_s):t0 + int(f.ramp_s) + 20, flow].mean() \
        - r.values[t0 - 30:t0, flow].mean()
    assert late < early - 5  # the leak takes flow away, more once the ramp is done
    for kind, check in [("missing", lambda v: np.isnan(v).all()),
                        ("flatline", lambda v: (v == 0).all()),
                        ("stuck", lambda v: np.ptp(v) == 0)]:
        sc = hard.random_scenario("motor", kind, 1)
        r = hard.run(sc)
        s = sc.sensor_faults[0]
        j = r.columns.index(s.tag)
        on = r.labels.astype(bool)
        assert check(r.values[on, j]), kind
        assert np.isfinite(r.values[~on, j]).all() and np.ptp(r.values[~on, j]) > 0


def test_scenarios_validate_and_unknown_cases_are_named():
    with pytest.raises(ValueError, match="unknown case"):
        hard.random_scenario("pump", "nope", 1)
    with pytest.raises(ValueError, match="unknown asset kind"):
        hard.random_scenario("boiler", "drift", 1)
    with pytest.raises(ValueError):
        hard.SensorFault(asset="pump-1", tag="flow", kind="wobble", start=1, end=2)


def test_library_csvs_round_trip_through_eval_csv(tmp_path):
    from tocsin.cli import main as cli

    res = CliRunner().invoke(cli, ["eval", "library", "--kinds", "press", "--seeds", "1",
                                   "--cases", "flatline,mode_only", "--write", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "total (2 files, pooled)" in res.output
    assert (tmp_path / "scenarios.json").exists()
    files = sorted(p.name for p in (tmp_path / "press").glob("*.csv"))
    assert files == ["flatline-s1.csv", "mode_only-s1.csv"]
    res = CliRunner().invoke(cli, ["eval", "library", "--kinds", "pump", "--cases", "wobble"])
    assert res.exit_code != 0 and "wobble" in res.output
    res = CliRunner().invoke(cli, ["eval", "csv", str(tmp_path / "press" / "flatline-s1.csv"),
                                   "--timestamp-col", "timestamp", "--label-col", "label",
                                   "--train-rows", "400"])
    assert res.exit_code == 0, res.output
    assert "recall 9" in res.output or "recall 100" in res.output  # a flatline is found
