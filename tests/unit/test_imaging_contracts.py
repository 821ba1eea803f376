"""Imaging wire messages: round trips, published JSON Schemas, errors that name the field."""

import base64

import jsonschema
import numpy as np
import orjson
import pytest

from tocsin.contracts._codec import json_schema
from tocsin.contracts.imaging import Finding, StudyImage
from tocsin.errors import SchemaError


def _image(**kw) -> StudyImage:
    arr = np.arange(12, dtype=np.int16).reshape(3, 4) - 5
    return StudyImage.from_array(arr, study_uid="1.2.3", series_uid="1.2.3.4", sop_uid="1.2.3.4.5",
                                 modality="CT", vendor="SimCT-A", spacing=(0.7, 0.8), slope=1.0,
                                 intercept=-1024.0, source="cstore", sender="SCU",
                                 received_ts=123, **kw)


def test_study_image_round_trip_and_schema():
    img = _image()
    data = img.encode()
    jsonschema.validate(orjson.loads(data), json_schema("imaging_study.v1.json"))
    back = StudyImage.decode(data)
    assert back == img
    np.testing.assert_array_equal(back.array(), np.arange(12).reshape(3, 4) - 5)
    assert back.array().dtype == np.int16


def test_large_pixels_go_by_reference(tmp_path, monkeypatch):
    monkeypatch.setattr("tocsin.contracts.imaging.INLINE_MAX_BYTES", 8)
    img = _image(store_dir=tmp_path)
    assert img.pixels["uri"].startswith("file://")
    jsonschema.validate(orjson.loads(img.encode()), json_schema("imaging_study.v1.json"))
    np.testing.assert_array_equal(StudyImage.decode(img.encode()).array(), _image().array())


@pytest.mark.parametrize("change,field", [
    ({"spacing": [0.7]}, "spacing"),
    ({"spacing": [0.7, -1]}, "spacing"),
    ({"dtype": "complex64"}, "dtype"),
    ({"rows": "3"}, "rows"),
    ({"schema": "tocsin.imaging.study/9"}, "newer"),
])
def test_bad_study_messages_name_the_field(change, field):
    obj = orjson.loads(_image().encode())
    obj.update(change)
    with pytest.raises(SchemaError, match=field):
        StudyImage.decode(orjson.dumps(obj))


def test_wrong_pixel_length_names_the_field():
    obj = orjson.loads(_image().encode())
    obj["pixels"] = {"inline": base64.b64encode(b"\0" * 5).decode()}
    with pytest.raises(SchemaError, match="pixels.inline"):
        StudyImage.decode(orjson.dumps(obj)).array()


def test_finding_round_trip_and_schema():
    f = Finding(study_uid="1", series_uid="2", sop_uid="3", modality="MR", vendor=None,
                probability=0.25, positive=False, threshold=0.4,
                roi={"row": 1, "col": 2, "rows": 64, "cols": 64, "center_mm": [3.0, 4.0],
                     "size_mm": 64.0, "candidate_score": 0.1},
                candidates=[0.25, 0.1], model={"version": "v", "name": "student-int8",
                                               "backend": "onnxruntime", "branch": "mr"},
                latency_ms={"preprocess": 1.0, "inference": 2.0, "end_to_end": 5.0},
                batch_size=3, received_ts=1, emitted_ts=2, notes=["simulated"])
    data = f.encode()
    jsonschema.validate(orjson.loads(data), json_schema("imaging_finding.v1.json"))
    assert Finding.decode(data) == f
    obj = orjson.loads(data)
    obj["positive"] = "yes"
    with pytest.raises(SchemaError, match="positive"):
        Finding.decode(orjson.dumps(obj))
