"""Evaluation metrics, label handling and the mapping of ticks back to rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tocsin.connectors.csv_import import CsvSpec
from tocsin.connectors.model_sources import load_table
from tocsin.contracts.scores import ModelScore, Scores
from tocsin.detectors.evaluation import metrics, persist
from tocsin.offline.plant_eval import decide, rows_from_ticks

# a slice of the Tennessee Eastman data shipped with the tests (see its README)
TE = Path(__file__).resolve().parents[1] / "data" / "tennessee-eastman"


def test_metrics_by_hand():
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    pred = np.array([0, 1, 0, 0, 0, 0, 1, 1])
    m = metrics(labels, pred, np.arange(8) * 10.0)
    assert (m["tp"], m["fp"], m["fn"], m["tn"]) == (2, 1, 2, 3)
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(0.5)
    assert m["false_alarm_rate"] == pytest.approx(0.25)
    assert m["missed_alarm_rate"] == pytest.approx(0.5)
    assert m["delay_rows"] == 2 and m["delay_s"] == 20.0


def test_never_detected_has_no_delay_and_persistence_delays_alarms():
    m = metrics(np.array([0, 1, 1]), np.array([1, 0, 0]))
    assert m["delay_rows"] is None and m["recall"] == 0.0
    assert persist(np.array([1, 0, 1, 1, 1, 0]), 2).tolist() == [0, 0, 0, 1, 1, 0]


def _score(ts, ifr, ae):
    return Scores("a", "t", ts, {"iforest": ModelScore(ifr, 1.0),
                                 "lstm_ae": None if ae is None else ModelScore(ae, 1.0)}, "v", "h")


def test_rows_map_to_the_tick_whose_window_holds_them():
    s = 1_000_000_000
    scores = [_score(2 * s, 0.5, None), _score(3 * s, 2.0, 0.1)]
    rows = np.array([int(1.5 * s), int(2.2 * s), int(2.9 * s), int(3.5 * s)])
    out = rows_from_ticks(rows, scores, s)
    assert np.allclose(out["iforest_ratio"][:3], [0.5, 2.0, 2.0])
    assert np.isnan(out["iforest_ratio"][3])  # no tick covers it
    assert np.isnan(out["lstm_ae_ratio"][0])  # warming up
    assert decide({"iforest": out["iforest_ratio"], "lstm_ae": out["lstm_ae_ratio"]},
                  "any").tolist() == [False, True, True, False]


def test_table_labels_from_a_column_or_an_onset_row(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("t,a,b,label\n0,1,2,0\n1,1,,0\n2,5,2,1\n")
    spec = CsvSpec(asset="x", timestamp_col="t")
    t = load_table(p, spec, label_col="label")
    assert t.columns == ["a", "b"] and t.labels.tolist() == [0, 0, 1]
    assert np.isnan(t.values[1, 1])
    assert load_table(p, CsvSpec(asset="x", timestamp_col="t", label_cols=["label"]),
                      onset_row=2).labels.tolist() == [0, 1, 1]
    with pytest.raises(Exception, match="no column 'nope'"):
        load_table(p, spec, label_col="nope")


def test_tennessee_eastman_files_load_with_the_documented_shape():
    from tocsin.offline.plant_eval import tep_tables

    train, tests = tep_tables(TE)
    assert train.values.shape == (500, 52)
    names = [n for n, _ in tests]
    assert "d00_te.dat" in names and "d01_te.dat" in names
    d01 = dict(tests)["d01_te.dat"]
    assert d01.values.shape[1] == 52 and d01.labels[:160].sum() == 0 and d01.labels[160] == 1
    assert dict(tests)["d00_te.dat"].labels.sum() == 0
