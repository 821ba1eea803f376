"""Offline scenarios: step the simulated plant in event time and write its frames straight
into a recording (no servers, no wall clock), with the fault's ground truth in the header.
The same seed and scenario always give the same bytes."""

from __future__ import annotations

from pathlib import Path

from tocsin.connectors.recording import Message, RecordingWriter
from tocsin.connectors.simulator.plant import Plant
from tocsin.contracts.readings import ReadingsFrame

EPOCH_2026 = 1_767_225_600  # 2026-01-01T00:00:00Z, a fixed start so recordings are stable


def write_scenario(out: str | Path, *, fault: str | None, fault_at: float = 30.0,
                   fault_until: float | None = None, seconds: float = 90.0, rate: float = 10.0,
                   seed: int = 7, asset: str = "pump-1", start_s: int = EPOCH_2026,
                   topic: str = "plant.readings") -> int:
    """Write `seconds` of readings at `rate` samples/s per tag; return frames written."""
    plant = Plant(seed=seed)
    dt = 1.0 / rate
    n = int(round(seconds * rate))
    frames = []
    for i in range(1, n + 1):
        t = i * dt
        if fault and abs(t - fault_at) < dt / 2:
            plant.inject(asset, fault, t)
        if fault and fault_until is not None and abs(t - fault_until) < dt / 2:
            plant.clear(asset, fault, t)
        values = plant.step(t, dt)[asset]
        ts_ns = start_s * 1_000_000_000 + round(t * 1e9)
        frames.append(ReadingsFrame.from_samples(
            asset, [(tag, ts_ns, v, 0) for tag, v in values.items()],
            source="sim://scenario", seq=i))
    truth = [dict(g, t_ns=start_s * 1_000_000_000 + round(g["t"] * 1e9))
             for g in plant.ground_truth]
    header = {"scenario": {"fault": fault, "fault_at": fault_at, "fault_until": fault_until,
                           "seconds": seconds, "rate": rate, "seed": seed, "asset": asset},
              "ground_truth": truth, "created": "deterministic"}
    with RecordingWriter(out, header) as w:
        w.declare_topics([topic])
        for off, f in enumerate(frames):
            w.write(Message(topic, 0, off, int(f.ts[-1] // 1_000_000), asset.encode(),
                            f.encode()))
    return len(frames)
