"""The trained artifact (a tiny one, trained in this session): ONNX files served by ONNX
Runtime, the INT8 student within the stated tolerance of FP32, the reader end to end on a
real DICOM file (pure path, no Kafka)."""

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

pytest.importorskip("torch")

from tests.imaging_helpers import tiny_model  # noqa: E402
from tocsin.connectors.dicom import dataset_to_image  # noqa: E402
from tocsin.models.imaging import quality  # noqa: E402
from tocsin.models.imaging.artifacts import ImagingArtifact  # noqa: E402
from tocsin.models.imaging.backend import OrtBackend  # noqa: E402
from tocsin.models.imaging.dataset import paired_crops  # noqa: E402
from tocsin.models.imaging.preprocess import PreprocessError  # noqa: E402
from tocsin.models.imaging.reader import Reader  # noqa: E402
from tocsin.models.imaging.simulate import simulate_cases  # noqa: E402


@pytest.fixture(scope="module")
def art() -> ImagingArtifact:
    return ImagingArtifact.load(tiny_model())


def test_artifact_has_three_models_and_measured_quality(art):
    for model in ("teacher", "student-fp32", "student-int8"):
        assert art.model_path(model).stat().st_size > 1000
        for _mode, r in art.meta["quality"][model].items():
            assert 0.0 <= r["auc"] <= 1.0
            assert 0.0 <= r["vendor"]["agreement"] <= 1.0
    assert art.meta["data"] == "simulated"
    # the student's INT8 file is smaller than its FP32 one (weights are int8)
    assert art.model_path("student-int8").stat().st_size < art.model_path(
        "student-fp32").stat().st_size


def test_int8_student_agrees_with_fp32_within_the_tolerance(art):
    """Fresh simulated cases (not the calibration set) through both student files."""
    cases = simulate_cases(30, seed=1234)
    cs = paired_crops(cases, art.table, art.roi_candidates, "both")
    fp32 = OrtBackend(art.model_path("student-fp32"))
    int8 = OrtBackend(art.model_path("student-int8"))
    for mode in ("paired", "ct", "mr"):
        x = quality.batch_inputs(cs, mode)
        d = np.abs(fp32.predict(x) - int8.predict(x))
        assert d.mean() <= quality.INT8_TOLERANCE["mean_abs"], (mode, d.mean())
        assert np.quantile(d, 0.99) <= quality.INT8_TOLERANCE["p99_abs"], (mode, d)


def test_teacher_takes_ct_and_mr(art):
    teacher = OrtBackend(art.model_path("teacher"))
    assert teacher.inputs == ["ct", "mr"]
    p = teacher.predict(np.zeros((3, 2, 64, 64), np.float32))
    assert p.shape == (3,) and np.all((p >= 0) & (p <= 1))


def test_reader_reads_a_real_ct_file_with_roi_and_model_version(art):
    reader = Reader(art, OrtBackend(art.model_path("student-int8")), "student-int8")
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds2 = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    msgs = [dataset_to_image(d, source="watch", sender="t") for d in (ds, ds2)]
    out = reader.read([reader.prepare(m) for m in msgs])
    assert [f.sop_uid for f in out] == [ds.SOPInstanceUID, ds2.SOPInstanceUID]
    ct = out[0]
    assert ct.model == {"version": art.version, "name": "student-int8",
                        "backend": "onnxruntime", "branch": "ct"}
    assert out[1].model["branch"] == "mr"
    assert 0.0 <= ct.probability <= 1.0
    assert ct.probability == pytest.approx(max(ct.candidates), abs=1e-5)
    assert ct.positive == (ct.probability > ct.threshold)
    assert len(ct.candidates) <= art.roi_candidates and ct.batch_size == 2
    # ROI in the original 0.66 mm grid: a 64 mm box is about 97 pixels, clipped to the
    # 128 x 128 image
    full = round(64 / 0.661468)
    r, c, h, w = (ct.roi[k] for k in ("row", "col", "rows", "cols"))
    assert 0 <= r and 0 <= c and r + h <= 128 and c + w <= 128
    assert 0 < h <= full and 0 < w <= full and ct.roi["size_mm"] == 64
    assert any("simulated" in n for n in ct.notes)
    assert any("not in the normalisation table" in n for n in ct.notes)  # a GE file


def test_reader_refuses_to_serve_the_teacher(art):
    with pytest.raises(PreprocessError, match="pairs"):
        Reader(art, OrtBackend(art.model_path("teacher")), "teacher")
