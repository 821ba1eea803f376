"""DICOM -> StudyImage on pydicom's real sample files, refusals with the reason, and the
TensorRT backend's message where TensorRT is absent (no network)."""

import importlib.util

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from tests.imaging_helpers import corrupt_ct
from tocsin.connectors.dicom import DicomRejected, dataset_to_image
from tocsin.contracts.imaging import StudyImage
from tocsin.models.imaging.backend import BackendError, load_backend
from tocsin.models.imaging.preprocess import to_hu


def test_ct_small_becomes_a_study_image():
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    img = dataset_to_image(ds, source="watch", sender="test")
    assert (img.modality, img.vendor, img.rows, img.cols) == ("CT", "GE MEDICAL SYSTEMS", 128, 128)
    assert img.spacing == pytest.approx((0.661468, 0.661468))
    assert (img.slope, img.intercept) == (1.0, -1024.0)
    back = StudyImage.decode(img.encode())
    np.testing.assert_array_equal(back.array(), ds.pixel_array)
    hu = to_hu(back.array(), back.slope, back.intercept)
    assert -1100 < float(np.median(hu)) < 1500  # Hounsfield units, not raw values


def test_mr_small_has_no_rescale_and_is_accepted():
    img = dataset_to_image(pydicom.dcmread(get_testdata_file("MR_small.dcm")), source="watch",
                           sender="test")
    assert (img.modality, img.rows, img.slope, img.intercept) == ("MR", 64, 1.0, 0.0)


def test_undecodable_pixels_are_refused_with_pydicoms_error():
    with pytest.raises(DicomRejected, match="pixel data cannot be decoded") as exc:
        dataset_to_image(corrupt_ct(), source="cstore", sender="test")
    assert exc.value.status == 0xC210
    assert "16384 vs 32768 bytes" in str(exc.value)  # pydicom's own words


def test_unsupported_modality_is_refused():
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.Modality = "US"
    with pytest.raises(DicomRejected, match="modality US is not supported"):
        dataset_to_image(ds, source="cstore", sender="test")


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None,
                    reason="TensorRT is installed here")
def test_tensorrt_backend_says_what_to_install(tmp_path):
    with pytest.raises(BackendError, match=r"needs a CUDA GPU with TensorRT: pip install "
                                           r"'tocsin\[gpu\]'"):
        load_backend("tensorrt", tmp_path / "student_int8.onnx")
    with pytest.raises(BackendError, match="unknown backend"):
        load_backend("openvino", tmp_path / "x.onnx")
