"""Imaging models: simulated CT/MR data, preprocessing, ROI, quality metrics and the
inference backends (ONNX Runtime; TensorRT when present). Pure numpy here; torch lives only
in `nets`, `distill` and `export`, which need the `train` extra."""
