"""CSV import: timestamps, sensors, labels, empty cells, and errors naming line and column."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest

from tocsin.connectors.csv_import import CsvError, CsvSpec, import_csv
from tocsin.connectors.recording import RecordingReader
from tocsin.contracts import ReadingsFrame

# a slice of the Tennessee Eastman data shipped with the tests (see its README)
TE = Path(__file__).resolve().parents[1] / "data" / "tennessee-eastman"


def test_labeled_csv_becomes_frames_and_label_changes(tmp_path):
    src = tmp_path / "export.csv"
    src.write_text("time,temp,flow,fault\n"
                   "2026-01-01T00:00:00Z,60.5,120,0\n"
                   "2026-01-01T00:00:01Z,61.0,,0\n"
                   "2026-01-01T00:00:02Z,95.2,118,1\n")
    rows, frames, labels = import_csv(src, tmp_path / "o.rec", CsvSpec(
        asset="pump-9", timestamp_col="time", label_cols=["fault"], frame_rows=2))
    assert (rows, frames, labels) == (3, 2, 2)
    with RecordingReader(tmp_path / "o.rec") as r:
        msgs = list(r)
    frames_ = [ReadingsFrame.decode(m.value) for m in msgs if m.topic == "plant.readings"]
    assert frames_[0].tags == ["temp", "flow", "temp", "flow"]
    t0 = 1_767_225_600 * 10**9
    assert frames_[0].ts.tolist() == [t0, t0, t0 + 10**9, t0 + 10**9]
    assert np.isnan(frames_[0].values[3]) and frames_[0].quality.tolist() == [0, 0, 0, 2]
    assert frames_[1].values.tolist() == [95.2, 118.0]
    lab = [orjson.loads(m.value) for m in msgs if m.topic == "plant.labels"]
    assert [(x["ts"], x["labels"]) for x in lab] == [(t0, {"fault": 0}),
                                                     (t0 + 2 * 10**9, {"fault": 1})]


def test_bad_cell_names_line_and_column(tmp_path):
    src = tmp_path / "bad.csv"
    src.write_text("t,temp\n1,2\n2,hot\n")
    with pytest.raises(CsvError, match=r"line 3 column 'temp': 'hot' is not a number"):
        import_csv(src, tmp_path / "o.rec", CsvSpec(asset="a", timestamp_col="t"))
    with pytest.raises(CsvError, match="no column 'label'"):
        import_csv(src, tmp_path / "o.rec", CsvSpec(asset="a", timestamp_col="t",
                                                    label_cols=["label"]))


def test_tennessee_eastman_file_without_header_or_clock(tmp_path):
    rows, frames, _ = import_csv(TE / "d01_te.dat", tmp_path / "te.rec", CsvSpec(
        asset="te", sep="whitespace", header=False, start="2026-01-01T00:00:00Z",
        period=180.0, frame_rows=20))
    assert rows == 320 and frames == 16  # the slice: the first 320 of 960 rows
    with RecordingReader(tmp_path / "te.rec") as r:
        f = ReadingsFrame.decode(next(iter(r)).value)
    assert len(f) == 20 * 52 and f.tags[:2] == ["c1", "c2"]
    assert f.ts[52] - f.ts[0] == 180 * 10**9
