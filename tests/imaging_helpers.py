"""A tiny imaging model trained once per test session (about half a minute on one core).

Shared by the unit and integration tests; its quality is meaningless (a few dozen simulated
cases, one epoch), it only has to be a real teacher, student and INT8 student on disk.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

_CACHE: dict[str, Path] = {}


def tiny_model() -> Path:
    if "dir" not in _CACHE:
        from tocsin.models.imaging.training import TrainImagingConfig, train_imaging

        out = Path(tempfile.mkdtemp(prefix="tocsin-imaging-model-"))
        cfg = TrainImagingConfig(n_train=48, n_val=40, n_test=40, n_vendor=12,
                                 teacher_epochs=1, stage_epochs=(1, 1, 1), batch=32,
                                 calibration=48, threads=1)
        train_imaging(out, cfg, say=lambda s: None)
        _CACHE["dir"] = out
    return _CACHE["dir"]


def corrupt_ct():
    """pydicom's CT_small.dcm with its pixel data cut in half: valid DICOM encoding (so it
    can be sent by C-STORE), pixel data that cannot be decoded."""
    import pydicom
    from pydicom.data import get_testdata_file

    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.PixelData = ds.PixelData[: len(ds.PixelData) // 2]
    ds.SOPInstanceUID = ds.SOPInstanceUID + ".999"
    return ds
