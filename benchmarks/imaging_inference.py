"""Imaging inference side by side in one run: teacher FP32, student FP32 and student INT8 on
ONNX Runtime (CPU), batched against one at a time, on the same simulated crops.

    python -m benchmarks.imaging_inference --model-dir out/imaging-model
    python -m benchmarks.imaging_inference --model-dir ... --tensorrt   # on a GPU host

Rounds are interleaved (every contender once per round, in rotating order) because the
machine is shared and noisy; figures are medians over rounds, ratios against the teacher.
Throughput counts model inputs (64x64 crops) and slices (one slice = `roi_candidates`
crops). Latency is per call: one crop at batch 1, one batch of `--batch` crops batched.
The AUC column is the held-back simulated quality from the model's meta.json.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from benchmarks.report import Report, add_arguments
from tocsin.models.imaging import quality
from tocsin.models.imaging.artifacts import ImagingArtifact, default_dir
from tocsin.models.imaging.backend import OrtBackend, load_backend
from tocsin.models.imaging.dataset import paired_crops
from tocsin.models.imaging.simulate import simulate_cases


def run_one(backend: OrtBackend, x: np.ndarray, batch: int, seconds: float) -> tuple:
    lat, n, t0 = [], 0, time.perf_counter()
    i = 0
    while time.perf_counter() - t0 < seconds:
        xb = x[i:i + batch] if i + batch <= len(x) else x[:batch]
        i = (i + batch) % max(1, len(x) - batch)
        t = time.perf_counter()
        backend.predict(xb)
        lat.append(time.perf_counter() - t)
        n += len(xb)
    return n / (time.perf_counter() - t0), lat


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-dir", type=Path, default=None)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=3.0, help="per contender per round")
    ap.add_argument("--tensorrt", action="store_true", help="add TensorRT engines (GPU)")
    a = add_arguments(ap).parse_args()
    rep = Report("imaging_inference", vars(a))
    art = ImagingArtifact.load(a.model_dir or default_dir())
    k = art.roi_candidates
    cs = paired_crops(simulate_cases(64, seed=4242), art.table, k, "both")
    x = quality.batch_inputs(cs, "paired")
    models = {m: OrtBackend(art.model_path(m), a.threads)
              for m in ("teacher", "student-fp32", "student-int8")}
    if a.tensorrt:
        for m in ("teacher", "student-fp32", "student-int8"):
            models[f"{m} TensorRT"] = load_backend("tensorrt", art.model_path(m),
                                                   int8=m == "student-int8")
    contenders = [(m, b) for m in models for b in (1, a.batch)]
    for m, b in contenders:  # warm-up (and TensorRT engine builds)
        run_one(models[m], x, b, 0.3)
    thr: dict = {c: [] for c in contenders}
    lat: dict = {c: [] for c in contenders}
    for r in range(a.rounds):
        order = contenders[r % len(contenders):] + contenders[:r % len(contenders)]
        for c in order:
            t, l_ = run_one(models[c[0]], x, c[1], a.seconds)
            thr[c].append(t)
            lat[c].extend(l_)
            ms_r = np.array(l_) * 1e3
            rep.add(f"{c[0]} b{c[1]}", crops_per_s=t, p50_ms=float(np.percentile(ms_r, 50)),
                    p99_ms=float(np.percentile(ms_r, 99)))
    base = statistics.median(thr[("teacher", a.batch)])
    print(f"model {art.version}; {len(x)} simulated crops; ONNX Runtime "
          f"{__import__('onnxruntime').__version__}, intra-op threads {a.threads}; "
          f"{a.rounds} interleaved rounds of {a.seconds:g} s; medians")
    print()
    print("| model | batch | crops/s | slices/s | p50 ms | p99 ms | vs teacher batched | "
          "AUC (CT+MR, simulated) |")
    print("|---|---|---|---|---|---|---|---|")
    for c in contenders:
        m, b = c
        t = statistics.median(thr[c])
        ms = np.array(lat[c]) * 1e3
        q = art.meta["quality"].get(m.replace(" TensorRT", ""), {}).get("paired", {})
        print(f"| {m} | {b} | {t:,.0f} | {t / k:,.0f} | {np.percentile(ms, 50):.2f} | "
              f"{np.percentile(ms, 99):.2f} | {t / base:.2f}x | {q.get('auc', float('nan')):.3f} |")
    reader_path(art, a.threads, a.batch, a.seconds * a.rounds, rep)
    rep.note("no #20 target for imaging; ratios are information")
    for m, b in contenders:
        if (m, b) != ("teacher", a.batch):
            rep.check(f"{m} batch {b} vs teacher batched", "crops_per_s", f"{m} b{b}",
                      peer=f"teacher b{a.batch}")
    rep.check("served path (student-int8)", "slices_per_s", "served path")
    rep.finish(a)


def reader_path(art: ImagingArtifact, threads: int, batch: int, seconds: float,
                rep: Report) -> None:
    """The served path per slice: decode pixels, preprocess, ROI search, crops, then one
    student-int8 call per batch of slices (what the worker does between Kafka calls)."""
    from tocsin.contracts.imaging import StudyImage
    from tocsin.models.imaging.reader import Reader

    msgs = []
    for i, c in enumerate(simulate_cases(32, seed=777)):
        for arr, m in ((c.ct, c.ct_meta), (c.mr, c.mr_meta)):
            msgs.append(StudyImage.decode(StudyImage.from_array(
                arr, study_uid=f"s{i}", series_uid="x", sop_uid=f"{i}{m['modality']}",
                modality=m["modality"], vendor=m["vendor"], spacing=m["spacing"],
                slope=m["slope"], intercept=m["intercept"], source="bench", sender="bench",
                received_ts=time.time_ns()).encode()))
    reader = Reader(art, OrtBackend(art.model_path("student-int8"), threads), "student-int8")
    prep_ms, n, t0, i = [], 0, time.perf_counter(), 0
    while time.perf_counter() - t0 < seconds:
        part = [msgs[(i + j) % len(msgs)] for j in range(batch)]
        i += batch
        ready = []
        for m in part:
            t = time.perf_counter()
            ready.append(reader.prepare(m))
            prep_ms.append((time.perf_counter() - t) * 1e3)
        reader.read(ready)
        n += len(part)
    rate = n / (time.perf_counter() - t0)
    rep.add("served path", slices_per_s=rate, prep_p50_ms=float(np.percentile(prep_ms, 50)),
            prep_p99_ms=float(np.percentile(prep_ms, 99)))
    print(f"\nServed path (decode + preprocess + ROI + student-int8, batches of {batch} "
          f"simulated CT and MR slices): {rate:,.0f} slices/s; preprocessing p50 "
          f"{np.percentile(prep_ms, 50):.2f} ms, p99 {np.percentile(prep_ms, 99):.2f} ms per "
          "slice")


if __name__ == "__main__":
    main()
