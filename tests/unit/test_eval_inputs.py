"""`tocsin eval csv`: inputs, output names, the data's clock, training part, hints, and the
metrics it reports (event-wise, threshold-free, pooled)."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from tocsin.connectors.csv_import import CsvSpec
from tocsin.connectors.model_sources import NS, load_table
from tocsin.detectors.evaluation import (
    event_metrics,
    events,
    full_metrics,
    pooled,
    ranking_metrics,
)
from tocsin.errors import DataError
from tocsin.offline import table_eval as te


def _tree(tmp_path):
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "0.csv").write_text("t,x\n0,1\n")
    (tmp_path / "a" / "notes.txt").write_text("-")
    return tmp_path


def test_folders_and_globs_expand_and_outputs_are_keyed_by_path(tmp_path):
    root = _tree(tmp_path)
    paths = te.expand_inputs([str(root)])
    assert [p.relative_to(root).as_posix() for p in paths] == ["a/0.csv", "b/0.csv"]
    assert te.expand_inputs([str(root / "*" / "0.csv"), str(root / "a" / "0.csv")]) == paths
    names = te.output_names(paths)
    assert sorted(names.values()) == ["a__0.csv.scores.csv", "b__0.csv.scores.csv"]
    with pytest.raises(DataError, match="matches no file"):
        te.expand_inputs([str(root / "*.parquet")])
    with pytest.raises(DataError, match="no such file"):
        te.expand_inputs([str(root / "missing.csv")])
    with pytest.raises(DataError, match="--pattern"):
        te.expand_inputs([str(root / "a")], "*.tsv")


def test_clock_reports_gaps_and_backwards_rows():
    ts = (np.array([0, 1, 2, 3, 10, 11, 11, 9, 10]) * NS).astype(np.int64)
    c = te.clock(ts)
    assert c.period_s == 1.0 and c.gaps == 1 and c.largest_gap_s == 7.0
    assert (c.repeated, c.backwards) == (1, 1)
    w = " ".join(c.warnings("f.csv"))
    assert "1 time gaps" in w and "backwards" in w and "late" in w
    assert te.clock(np.arange(5) * NS).warnings("f") == []


def test_default_windows_follow_the_sampling_period():
    assert [n for n, _, _ in te.default_windows(1.0)] == ["1s", "10s", "60s"]
    five_min = te.default_windows(300.0)
    assert [n for n, _, _ in five_min] == ["5m", "50m", "5h"]
    assert five_min[2][1:] == (18000.0, 3000.0)


def test_training_part_by_rows_or_fraction():
    assert te.train_count(1000, 400, None, "f") == 400
    assert te.train_count(1000, None, 0.15, "f") == 150
    assert te.train_count(1000, None, None, "f") == 0
    with pytest.raises(DataError, match="nothing left"):
        te.train_count(300, 400, None, "f")
    with pytest.raises(DataError, match="train-fraction"):
        te.train_count(300, None, 1.5, "f")


def test_hints_name_the_option_that_fixes_the_error(tmp_path):
    semi = tmp_path / "semi.csv"
    semi.write_text("t;x;y\n0;1;2\n1;1;2\n")
    with pytest.raises(DataError) as e:
        load_table(semi, CsvSpec(asset="a", timestamp_col="t"))
    assert "--sep" in te.hint(e.value, ",", "t")
    dated = tmp_path / "dated.csv"
    dated.write_text("when,x\n2026-01-01T00:00:00,1\n2026-01-01T00:00:01,2\n")
    with pytest.raises(DataError) as e:
        load_table(dated, CsvSpec(asset="a", period=1.0))
    assert "--timestamp-col when" in te.hint(e.value, ",", None)
    assert te.split_names(" a, b ,c,, ") == ["a", "b", "c"]


def test_exclude_drops_a_column_and_names_unknown_ones(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("t,a,run_id,b\n0,1,7,2\n1,1,7,3\n")
    t = load_table(p, CsvSpec(asset="x", timestamp_col="t", exclude_cols=["run_id"]))
    assert t.columns == ["a", "b"]
    with pytest.raises(DataError, match="--exclude 'nope'"):
        load_table(p, CsvSpec(asset="x", timestamp_col="t", exclude_cols=["nope"]))


def test_event_wise_and_threshold_free_metrics():
    lab = np.array([0, 1, 1, 0, 0, 1, 1, 1, 0, 1])
    pred = np.array([0, 0, 1, 0, 1, 0, 0, 0, 0, 1])
    assert events(lab) == [(1, 3), (5, 8), (9, 10)]
    m = event_metrics(lab, pred, np.arange(10) * 2.0)
    assert (m["events"], m["events_detected"]) == (3, 2)
    assert m["event_delay_rows_median"] == 0.5 and m["event_delay_s_median"] == 1.0
    score = lab + 0.1 * np.arange(10)  # mostly, not perfectly, ranked
    r = ranking_metrics(lab, score)
    assert 0.5 < r["roc_auc"] <= 1.0 and 0 < r["pr_auc"] <= 1.0
    assert ranking_metrics(lab, lab.astype(float))["roc_auc"] == 1.0
    assert ranking_metrics(np.zeros(5), np.arange(5.0))["roc_auc"] is None
    assert ranking_metrics(lab, np.where(lab, np.nan, 0.0))["roc_auc"] <= 0.5  # NaN ranks low


def test_pooled_totals_sum_counts_not_rates():
    a = full_metrics(np.array([0] * 90 + [1] * 10), np.array([1] * 9 + [0] * 81 + [1] * 10),
                     np.arange(100.0))
    b = full_metrics(np.array([0] * 10), np.zeros(10), np.zeros(10))
    p = pooled([a, b])
    assert (p["fp"], p["tn"], p["tp"]) == (9, 91, 10)
    assert p["false_alarm_rate"] == pytest.approx(9 / 100)
    assert p["events"] == 1 and p["event_detection_rate"] == 1.0


def _csv(path, n=260, fault=None, label=True, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 1)) @ np.ones((1, 3)) + 0.3 * rng.normal(size=(n, 3))
    lab = np.zeros(n, dtype=int)
    if fault:
        lab[fault[0]:fault[1]] = 1
        x[fault[0]:fault[1], 1] += 6.0
    head = "time, s1, s2, s3" + (", label" if label else "")
    rows = [f"{i}," + ",".join(f"{v:.4f}" for v in x[i]) + (f",{lab[i]}" if label else "")
            for i in range(n)]
    path.write_text(head + "\n" + "\n".join(rows) + "\n")


def test_eval_csv_end_to_end_metrics_after_training_only(tmp_path):
    from tocsin.cli import main as cli

    for d in ("a", "b"):
        (tmp_path / d).mkdir()
    _csv(tmp_path / "a" / "0.csv", fault=(200, 240))
    _csv(tmp_path / "b" / "0.csv", fault=(210, 250), seed=1)
    out = tmp_path / "out"
    args = ["eval", "csv", str(tmp_path / "a"), str(tmp_path / "b" / "*.csv"),
            "--train-rows", "150", "--timestamp-col", "time", "--label-col", "label",
            "--sensors", "s1, s2, s3", "--epochs", "1", "--seq-len", "5", "--score-steps",
            "1", "--out-dir", str(out), "--detector", "pca"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert "total (2 files, pooled)" in res.output and "ROC AUC" in res.output
    files = sorted(p.name for p in out.iterdir())
    assert files == ["a__0.csv.scores.csv", "b__0.csv.scores.csv"]
    lines = (out / files[0]).read_text().splitlines()
    head = lines[0].split(",")
    ev = head.index("evaluated")
    assert {ln.split(",")[ev] for ln in lines[1:151]} == {"0"}  # the training rows
    assert {ln.split(",")[ev] for ln in lines[151:]} == {"1"}
    assert "pca_score" in head

    _csv(tmp_path / "plain.csv", label=False)  # no labels: scored, alarm rate only
    res = CliRunner().invoke(cli, ["eval", "csv", str(tmp_path / "plain.csv"),
                                   "--train-fraction", "0.6", "--timestamp-col", "time",
                                   "--epochs", "1", "--seq-len", "5", "--score-steps", "1"])
    assert res.exit_code == 0, res.output
    assert "no labels" in res.output

    (tmp_path / "semi.csv").write_text("time;a\n0;1\n")
    res = CliRunner().invoke(cli, ["eval", "csv", str(tmp_path / "semi.csv"),
                                   "--train-rows", "1", "--timestamp-col", "time"])
    assert res.exit_code != 0 and "--sep" in res.output


def test_eval_csv_default_pure_detectors_grid_and_rows(tmp_path):
    """The default (calibrated pure detectors, no training of the stream models): metrics
    after the training rows, the detector x rule grid, per-row surprise and alarm files."""
    from tocsin.cli import main as cli

    _csv(tmp_path / "0.csv", fault=(200, 260))
    _csv(tmp_path / "1.csv", fault=(220, 280), seed=1)
    out = tmp_path / "out"
    res = CliRunner().invoke(cli, ["eval", "csv", str(tmp_path / "*.csv"), "--train-rows",
                                   "150", "--timestamp-col", "time", "--label-col", "label",
                                   "--grid", "--out-dir", str(out)])
    assert res.exit_code == 0, res.output
    assert "detector mode_noise, rule s2_2of3" in res.output
    assert "total (2 files, pooled)" in res.output and "knn | ewma" in res.output
    lines = (out / "0.csv.scores.csv").read_text().splitlines()
    assert lines[0] == "row,ts,evaluated,label,surprise,pred,score"  # score: uncapped
    rows = [ln.split(",") for ln in lines[1:]]
    assert {r[2] for r in rows[:150]} == {"0"} and {r[2] for r in rows[150:]} == {"1"}
    fault = [int(r[5]) for r in rows[200:260]]
    normal = [int(r[5]) for r in rows[150:200]]
    assert sum(fault) > 0.8 * len(fault) and sum(normal) <= 2  # a 6-sigma step is found


def test_eval_sim_refuses_pca_on_models_trained_before_it(tmp_path):
    """An artifact without the PCA model would silently never alarm under --detector pca."""
    import orjson

    from tocsin.cli import main as cli

    d = tmp_path / "centrifugal-pump" / "20200101T000000000000Z-aaaaaaaa"
    d.mkdir(parents=True)
    (d / "manifest.json").write_bytes(orjson.dumps({"schema": "tocsin.model/1",
                                                    "version": d.name, "files": []}))
    res = CliRunner().invoke(cli, ["eval", "sim", "--model-dir", str(tmp_path)])
    assert res.exit_code != 0 and "no PCA" in res.output and "tocsin train" in res.output
