"""Serving the fraud model: an artifact folder, inference backends, decisions.

An artifact is a folder with ``full.onnx``, ``light.onnx`` and ``meta.json`` (version,
features, thresholds, quality, training statistics). Two kinds (``meta["kind"]``):

- ``gbdt`` (the default since issue 16): boosted trees, calibrated; ``full`` is every
  iteration, ``light`` the first quarter. Both take the tabular features and, where
  ``meta["inputs"]`` names ``seqsum/1``, a summary of the card's sequence appended to them
  (:mod:`tocsin.models.fraud_inputs`, computed here from ``seq``/``pad``).
- ``hybrid`` (older artifacts have no ``kind``): ``full`` is both torch towers and the gate
  over tabular features and the card's sequence; ``light`` the tabular tower alone.

Backends
share one interface (``run(name, inputs) -> outputs``):

- ``onnxruntime`` (default, CPU): one session per graph, 1 intra-op thread by default, because
  the worker already scores in micro-batches and the machine is shared.
- ``tensorrt``: ONNX Runtime's TensorRT execution provider; needs the ``tensorrt`` package and
  ``onnxruntime-gpu`` on an NVIDIA GPU, imported only when asked for.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson

from tocsin.detectors.fraud_features import FEATURES, SEQ_LEN, TOKEN_DIM
from tocsin.errors import ModelError
from tocsin.models.backends import ort_session, providers_for
from tocsin.models.fraud_inputs import VERSION as SEQ_SUMMARY
from tocsin.models.fraud_inputs import model_input


class OnnxBackend:
    """The artifact's graphs as sessions of the shared serving layer (models/backends.py)."""

    name = "onnxruntime"

    def __init__(self, folder: Path, threads: int = 1, providers: list | None = None):
        try:
            self.sessions = {g: ort_session(folder / f"{g}.onnx", threads=threads,
                                            providers=providers or providers_for(self.name))
                             for g in ("full", "light")}
        except ModelError as exc:
            raise ModelError(f"cannot load the ONNX graphs in {folder}: {exc}") from exc

    def run(self, graph: str, inputs: dict) -> list[np.ndarray]:
        return self.sessions[graph].run(None, inputs)


class TensorRTBackend(OnnxBackend):
    name = "tensorrt"

    def __init__(self, folder: Path, threads: int = 1):
        super().__init__(folder, threads, providers_for("tensorrt"))


BACKENDS = {"onnxruntime": OnnxBackend, "tensorrt": TensorRTBackend}


def decide(scores: np.ndarray, review: float, decline: float) -> list[str]:
    out = np.full(len(scores), "approve", dtype=object)
    out[scores >= review] = "review"
    out[scores >= decline] = "decline"
    return out.tolist()


class FraudModel:
    """Loads an artifact; ``score(tab, seq, pad, branch)`` scores a micro-batch."""

    def __init__(self, folder: str | Path, backend: str = "onnxruntime", threads: int = 1):
        folder = Path(folder)
        try:
            self.meta = orjson.loads((folder / "meta.json").read_bytes())
        except FileNotFoundError:
            raise ModelError(f"no fraud model at {folder} (meta.json missing); train one with "
                             f"`tocsin train fraud --simulate -o {folder}`") from None
        if self.meta.get("features") != list(FEATURES) or self.meta.get("seq_len") != SEQ_LEN \
                or self.meta.get("token_dim") != TOKEN_DIM:
            raise ModelError(f"model {folder} was trained on other features than this code "
                             "computes; retrain it with `tocsin train fraud`")
        if backend not in BACKENDS:
            raise ModelError(f"unknown backend {backend!r}; choose from {sorted(BACKENDS)}")
        self.backend = BACKENDS[backend](folder, threads)
        self.version = self.meta["version"]
        self.kind = self.meta.get("kind", "hybrid")
        self.inputs = list(self.meta.get("inputs", ["tab"]))
        unknown = set(self.inputs) - {"tab", "seq", "pad", SEQ_SUMMARY}
        if unknown:
            raise ModelError(f"model {folder} reads inputs this code does not compute: "
                             f"{sorted(unknown)}; retrain it with `tocsin train fraud`")
        self.review = float(self.meta["thresholds"]["review"])
        self.decline = float(self.meta["thresholds"]["decline"])

    def _input(self, tab: np.ndarray, seq, pad) -> np.ndarray:
        return model_input(tab, seq, pad, self.inputs)

    def score(self, tab: np.ndarray, seq: np.ndarray | None, pad: np.ndarray | None,
              branch: str = "full") -> tuple[np.ndarray, np.ndarray | None]:
        if branch == "light":
            x = self._input(tab, seq, pad) if self.kind == "gbdt" else tab
            return self.backend.run("light", {"tab": x})[0], None
        if self.kind == "gbdt":
            return self.backend.run("full", {"tab": self._input(tab, seq, pad)})[0], None
        prob, gate = self.backend.run("full", {"tab": tab, "seq": seq,
                                               "pad": pad.astype(np.float32, copy=False)})
        return prob, gate
