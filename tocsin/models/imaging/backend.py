"""Inference backends behind one interface: `predict((B, 2, 64, 64) float32) -> (B,)`.

ONNX Runtime on CPU is the default and needs nothing beyond the core install. TensorRT runs
the same ONNX files through ONNX Runtime's TensorRT execution provider, which builds and
caches TensorRT engines (INT8 from the QDQ nodes of the quantized model); it is imported
lazily and refuses with a message naming what to install when there is no GPU stack.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tocsin.errors import ModelError


class BackendError(ModelError):
    """A backend cannot be created (missing package, GPU, model file); says which."""


class OrtBackend:
    name = "onnxruntime"

    def __init__(self, path: str | Path, threads: int = 1, providers: list | None = None):
        try:
            import onnxruntime as ort
        except ImportError as exc:  # pragma: no cover - a core dependency
            raise BackendError("onnxruntime is missing: pip install 'tocsin[serve]'") from exc
        path = Path(path)
        if not path.is_file():
            raise BackendError(f"model file not found: {path}")
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), so,
                                            providers=providers or ["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.output = self.session.get_outputs()[0].name
        self.path = path

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
    try:
        import tensorrt  # noqa: F401  (lazy: only GPU hosts have it)
    except ImportError as exc:
        raise BackendError(
            "the TensorRT backend needs a CUDA GPU with TensorRT: pip install 'tocsin[gpu]' "
            "(tensorrt and onnxruntime-gpu); use --backend onnxruntime on CPU") from exc
    import onnxruntime as ort

    have = ort.get_available_providers()
    if "TensorrtExecutionProvider" not in have:
        raise BackendError("the TensorRT backend needs onnxruntime-gpu with the TensorRT "
                           f"execution provider; this onnxruntime offers {have}: "
                           "pip install 'tocsin[gpu]'")
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    trt = ("TensorrtExecutionProvider", {
        "device_id": device, "trt_engine_cache_enable": True,
        "trt_engine_cache_path": str(cache_dir), "trt_int8_enable": bool(int8),
        "trt_fp16_enable": not int8})
    backend = OrtBackend(path, 1, providers=[trt, "CUDAExecutionProvider"])
    backend.name = "tensorrt"
    return backend


def load_backend(kind: str, path: str | Path, threads: int = 1,
                 cache_dir: str | Path | None = None, int8: bool = False) -> OrtBackend:
    if kind == "onnxruntime":
        return OrtBackend(path, threads)
    if kind == "tensorrt":
        return tensorrt_backend(path, cache_dir or Path(path).parent / "trt-cache", int8)
    raise BackendError(f"unknown backend {kind!r} (onnxruntime, tensorrt)")
