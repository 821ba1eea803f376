"""Inference backends behind one interface: ``open_session(path, backend) -> Session``.

- ``onnxruntime`` (default): CPU execution provider; the dependency every install has.
- ``tensorrt``: ONNX Runtime's TensorRT execution provider (CUDA as fallback for nodes
  TensorRT lacks, such as the Isolation Forest's tree ensemble), with engines cached per GPU
  architecture under ``<artifact>/trt/<sm_XY>/``, so a worker builds an engine once per GPU
  kind. Needs an NVIDIA GPU, onnxruntime-gpu and TensorRT; otherwise a clear error says so.
- ``torch``: the fallback for models shipped with a torch state dict (the LSTM-AE); built
  lazily, needs the `train` extra.

A session takes one float32 input and returns its outputs by name.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Callable

import numpy as np

from tocsin.errors import ModelError

BACKENDS = ("onnxruntime", "tensorrt", "torch")


class Session:
    def __init__(self, run: Callable[[np.ndarray], dict[str, np.ndarray]], backend: str,
                 providers: list[str], outputs: list[str] | None = None):
        self._run = run
        self.backend = backend
        self.providers = providers
        self.outputs = outputs or []

    def run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        return self._run(np.ascontiguousarray(x, dtype=np.float32))


def _ort_session(path: Path, providers: list, threads: int) -> Session:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    try:
        sess = ort.InferenceSession(str(path), sess_options=so, providers=providers)
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
        raise ModelError(f"cannot load {path}: {exc}") from exc
    name = sess.get_inputs()[0].name
    outs = [o.name for o in sess.get_outputs()]

    def run(x):
        return dict(zip(outs, sess.run(None, {name: x})))

    return Session(run, "onnxruntime", sess.get_providers(), outs)


def gpu_arch() -> str:
    """``sm_90`` etc. of GPU 0 (nvidia-smi), for per-architecture engine caches."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=compute_cap", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise ModelError(f"tensorrt backend: no NVIDIA GPU found (nvidia-smi: {exc})") from exc
    return "sm_" + out.splitlines()[0].strip().replace(".", "")


def _tensorrt_session(path: Path, threads: int) -> Session:
    import onnxruntime as ort

    have = ort.get_available_providers()
    if "TensorrtExecutionProvider" not in have:
        raise ModelError(
            "tensorrt backend needs onnxruntime-gpu built with TensorRT, TensorRT itself and an "
            "NVIDIA GPU (pip install onnxruntime-gpu tensorrt); this onnxruntime offers "
            f"{have}. Use --backend onnxruntime on CPU.")
    cache = path.parent / "trt" / gpu_arch()
    cache.mkdir(parents=True, exist_ok=True)
    trt = ("TensorrtExecutionProvider", {"trt_engine_cache_enable": True,
                                         "trt_engine_cache_path": str(cache),
                                         "trt_fp16_enable": True})
    s = _ort_session(path, [trt, "CUDAExecutionProvider", "CPUExecutionProvider"], threads)
    s.backend = "tensorrt"
    return s


def _torch_session(path: Path, builder: Callable | None) -> Session:
    pt = path.with_suffix(".pt")
    if builder is None or not pt.exists():
        raise ModelError(f"torch backend: {path.name} has no torch form ({pt.name}); "
                         "use --backend onnxruntime for it")
    try:
        import torch
    except ImportError as exc:
        raise ModelError("torch backend needs torch: pip install 'tocsin[train]'") from exc
    model = builder()
    model.load_state_dict(torch.load(pt, map_location="cpu", weights_only=True))
    model.eval()

    def run(x):
        with torch.no_grad():
            return {"sqerr": model(torch.from_numpy(x)).numpy()}

    return Session(run, "torch", ["torch-cpu"], ["sqerr"])


def open_session(path: Path, backend: str = "onnxruntime", *, threads: int = 1,
                 torch_builder: Callable | None = None) -> Session:
    path = Path(path)
    if backend == "onnxruntime":
        return _ort_session(path, ["CPUExecutionProvider"], threads)
    if backend == "tensorrt":
        return _tensorrt_session(path, threads)
    if backend == "torch":
        return _torch_session(path, torch_builder)
    raise ModelError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
