"""The one model-serving layer: ONNX Runtime sessions, execution providers, thread settings
and the TensorRT check, shared by the plant models, the fraud model and the imaging models.

- ``onnxruntime`` (default): CPU execution provider; the dependency every install has. One
  intra-op thread by default: the workers score micro-batches and the machine is shared.
- ``tensorrt``: ONNX Runtime's TensorRT execution provider (CUDA, then CPU, as fallback for
  nodes TensorRT lacks, such as the Isolation Forest's tree ensemble), with engines cached
  where the model's artifact says (the plant models under ``<artifact>/trt/<sm_XY>/``, so a
  worker builds an engine once per GPU kind). Needs an NVIDIA GPU, onnxruntime-gpu and
  TensorRT (the ``gpu`` extra); otherwise :func:`require_tensorrt` says what to install.
- ``torch``: the plant's fallback for models shipped with a torch state dict (the LSTM-AE);
  built lazily, needs the `train` extra.

Each model keeps its own artifact loading; :func:`open_session` is the plant models' view (one
float32 input, outputs by name), :func:`ort_session` the raw session the others wrap.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Callable

import numpy as np

from tocsin.errors import ModelError

BACKENDS = ("onnxruntime", "tensorrt", "torch")


class BackendError(ModelError):
    """A backend cannot be created (missing package, GPU, model file); says which."""


class Session:
    def __init__(self, run: Callable[[np.ndarray], dict[str, np.ndarray]], backend: str,
                 providers: list[str], outputs: list[str] | None = None):
        self._run = run
        self.backend = backend
        self.providers = providers
        self.outputs = outputs or []

    def run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        return self._run(np.ascontiguousarray(x, dtype=np.float32))


def require_tensorrt() -> None:
    """Raise BackendError naming the extra to install unless TensorRT can run here."""
    import onnxruntime as ort

    have = ort.get_available_providers()
    detail = None
    if "TensorrtExecutionProvider" not in have:
        detail = f"this onnxruntime offers {have}"
    else:
        try:
            import tensorrt  # noqa: F401  (lazy: only GPU hosts have it)
        except ImportError:
            detail = "the tensorrt package is not installed"
    if detail:
        raise BackendError(
            "the tensorrt backend needs onnxruntime-gpu and TensorRT, so it needs a CUDA GPU "
            f"with TensorRT: pip install 'tocsin[gpu]' on an NVIDIA GPU host ({detail}); use "
            "--backend onnxruntime on CPU")


def providers_for(kind: str, *, cache_dir: str | Path | None = None, fp16: bool = True,
                  int8: bool = False, device: int = 0) -> list:
    """Execution providers for `kind` (onnxruntime or tensorrt), most preferred first."""
    if kind == "onnxruntime":
        return ["CPUExecutionProvider"]
    if kind != "tensorrt":
        raise BackendError(f"unknown backend {kind!r}; choose one of onnxruntime, tensorrt")
    require_tensorrt()
    opts: dict = {"device_id": device, "trt_fp16_enable": bool(fp16),
                  "trt_int8_enable": bool(int8)}
    if cache_dir is not None:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        opts.update(trt_engine_cache_enable=True, trt_engine_cache_path=str(cache_dir))
    return [("TensorrtExecutionProvider", opts), "CUDAExecutionProvider", "CPUExecutionProvider"]


def ort_session(path: str | Path, *, threads: int = 1, providers: list | None = None):
    """An onnxruntime.InferenceSession with the house settings; BackendError names the file."""
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise BackendError(f"model file not found: {path}")
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), sess_options=so,
                                    providers=providers or ["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
        raise BackendError(f"cannot load {path}: {exc}") from exc


def _ort_session(path: Path, providers: list, threads: int, backend: str) -> Session:
    sess = ort_session(path, threads=threads, providers=providers)
    name = sess.get_inputs()[0].name
    outs = [o.name for o in sess.get_outputs()]

    def run(x):
        return dict(zip(outs, sess.run(None, {name: x})))

    return Session(run, backend, sess.get_providers(), outs)


def gpu_arch() -> str:
    """``sm_90`` etc. of GPU 0 (nvidia-smi), for per-architecture engine caches."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=compute_cap", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise BackendError(f"tensorrt backend: no NVIDIA GPU found (nvidia-smi: {exc})") from exc
    return "sm_" + out.splitlines()[0].strip().replace(".", "")


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
    if backend == "torch":
        return _torch_session(path, torch_builder)
    if backend not in BACKENDS:
        raise BackendError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "tensorrt":
        require_tensorrt()
        providers = providers_for("tensorrt", cache_dir=path.parent / "trt" / gpu_arch())
    else:
        providers = providers_for("onnxruntime")
    return _ort_session(path, providers, threads, backend)
