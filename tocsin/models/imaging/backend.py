"""Imaging inference behind one interface: `predict((B, 2, 64, 64) float32) -> (B,)`.

Sessions, providers and the TensorRT check come from :mod:`tocsin.models.backends`, the one
serving layer. ONNX Runtime on CPU is the default; TensorRT runs the same ONNX files through
ONNX Runtime's TensorRT execution provider, which builds and caches engines (INT8 from the
QDQ nodes of the quantized model) under the artifact's ``trt-cache/``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tocsin.models.backends import BackendError, ort_session, providers_for

__all__ = ["BackendError", "OrtBackend", "load_backend", "tensorrt_backend"]


class OrtBackend:
    name = "onnxruntime"

    def __init__(self, path: str | Path, threads: int = 1, providers: list | None = None):
        self.path = Path(path)
        self.session = ort_session(self.path, threads=threads, providers=providers)
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.output = self.session.get_outputs()[0].name

    def predict(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, np.float32)
        if len(self.inputs) == 2:  # the teacher: separate CT and MR inputs
            feed = {self.inputs[0]: x[:, 0:1], self.inputs[1]: x[:, 1:2]}
        else:
            feed = {self.inputs[0]: x}
        return self.session.run([self.output], feed)[0].reshape(-1)


def tensorrt_backend(path: str | Path, cache_dir: str | Path, int8: bool = False,
                     device: int = 0) -> OrtBackend:
    """TensorRT engines through ONNX Runtime's TensorRT execution provider."""
    providers = providers_for("tensorrt", cache_dir=cache_dir, int8=int8, fp16=not int8,
                              device=device)
    backend = OrtBackend(path, 1, providers=providers)
    backend.name = "tensorrt"
    return backend


def load_backend(kind: str, path: str | Path, threads: int = 1,
                 cache_dir: str | Path | None = None, int8: bool = False) -> OrtBackend:
    if kind == "onnxruntime":
        return OrtBackend(path, threads)
    if kind == "tensorrt":
        return tensorrt_backend(path, cache_dir or Path(path).parent / "trt-cache", int8)
    raise BackendError(f"unknown backend {kind!r} (onnxruntime, tensorrt)")
