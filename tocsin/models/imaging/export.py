"""ONNX export of the trained networks and INT8 static quantization of the student.

The served graphs return P(nodule) for a batch of any size. Quantization is ONNX Runtime's
static post-training quantization (QDQ format, per-channel int8 weights, uint8 activations)
calibrated on crops from the simulated training set; the accuracy change is measured by the
caller on held-back cases. Needs the `train` extra (torch, onnx).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import torch

from tocsin.models.imaging.nets import Probabilities
from tocsin.models.imaging.preprocess import CROP

log = logging.getLogger(__name__)


def export_onnx(net: torch.nn.Module, path: Path, paired_inputs: bool) -> Path:
    """`paired_inputs`: the teacher takes `ct` and `mr` (B,1,64,64); the student takes
    `image` (B,2,64,64)."""
    wrapper = Probabilities(net.eval(), paired_inputs).eval()
    if paired_inputs:
        args = (torch.zeros(2, 1, CROP, CROP), torch.zeros(2, 1, CROP, CROP))
        names = ["ct", "mr"]
    else:
        args = (torch.zeros(2, 2, CROP, CROP),)
        names = ["image"]
    axes = {n: {0: "batch"} for n in names} | {"p_nodule": {0: "batch"}}
    with warnings.catch_warnings():  # the tracer warns about shape-dependent reshapes
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(wrapper, args, str(path), input_names=names,
                          output_names=["p_nodule"], dynamic_axes=axes, opset_version=17,
                          dynamo=False)
    return path


class _Calibration:
    """onnxruntime.quantization.CalibrationDataReader over an array of inputs."""

    def __init__(self, x: np.ndarray, name: str, batch: int = 16):
        self._it = iter([{name: x[i:i + batch]} for i in range(0, len(x), batch)])

    def get_next(self):
        return next(self._it, None)

    def rewind(self):  # pragma: no cover - not used by MinMax calibration
        pass


def quantize_int8(fp32: Path, int8: Path, calibration: np.ndarray) -> Path:
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    pre = int8.with_suffix(".pre.onnx")
    quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
    quantize_static(str(pre), str(int8), _Calibration(calibration.astype(np.float32), "image"),
                    quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax)
    pre.unlink(missing_ok=True)
    return int8
