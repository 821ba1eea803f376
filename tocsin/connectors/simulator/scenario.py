"""Fault scenarios for the simulated plant: a YAML file of faults with start and end times,
run live by the simulator servers or offline into a deterministic recording (event time,
no servers), with the ground truth (asset, fault, fault type, start, end) written alongside.

Scenario file::

    seed: 7
    seconds: 600
    rate: 10                 # samples per second per tag
    faults:
      - {asset: motor-1, fault: phase_imbalance, start: 120, end: 300}
      - {asset: press-1, fault: valve_sticking, start: 200}
"""

from __future__ import annotations

import csv
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tocsin.config.yamlfile import load_model
from tocsin.connectors.recording import Message, RecordingWriter
from tocsin.connectors.simulator.plant import DEFAULT_ASSETS, FAULTS, Plant
from tocsin.contracts.readings import ReadingsFrame

EPOCH_2026 = 1_767_225_600  # 2026-01-01T00:00:00Z, a fixed start so recordings are stable


class FaultEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")
    asset: str
    fault: str
    start: float = Field(ge=0)
    end: float | None = None

    @model_validator(mode="after")
    def _check(self) -> "FaultEvent":
        if self.asset not in DEFAULT_ASSETS:
            raise ValueError(f"unknown asset {self.asset!r}; known: {sorted(DEFAULT_ASSETS)}")
        kinds = FAULTS.get(self.fault)
        if kinds is None:
            raise ValueError(f"unknown fault {self.fault!r}; known: {sorted(FAULTS)}")
        if DEFAULT_ASSETS[self.asset] not in kinds:
            raise ValueError(f"fault {self.fault!r} does not apply to {self.asset}")
        if self.end is not None and self.end <= self.start:
            raise ValueError(f"{self.asset} {self.fault}: end must be after start")
        return self


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seed: int = 7
    seconds: float = Field(600.0, gt=0)
    rate: float = Field(10.0, gt=0)
    assets: list[str] = Field(default_factory=lambda: list(DEFAULT_ASSETS))
    faults: list[FaultEvent] = Field(default_factory=list)


def load_scenario(path: str | Path) -> Scenario:
    return load_model(path, Scenario)


def single_fault(fault: str | None, *, asset: str = "pump-1", at: float = 30.0,
                 until: float | None = None, seconds: float = 90.0, rate: float = 10.0,
                 seed: int = 7, assets: list[str] | None = None) -> Scenario:
    faults = [FaultEvent(asset=asset, fault=fault, start=at, end=until)] if fault else []
    return Scenario(seed=seed, seconds=seconds, rate=rate, faults=faults,
                    assets=assets or [asset])


def run_events(plant: Plant, scenario: Scenario, t: float, dt: float) -> None:
    """Apply the scenario's fault starts and ends that fall in (t - dt, t]."""
    for f in scenario.faults:
        if t - dt < f.start <= t:
            plant.inject(f.asset, f.fault, f.start)
        if f.end is not None and t - dt < f.end <= t:
            plant.clear(f.asset, f.fault, f.end)


def write_scenario(out: str | Path, scenario: Scenario, *, start_s: int = EPOCH_2026,
                   labels: str | Path | None = None, topic: str = "plant.readings") -> int:
    """Write the scenario's readings (one frame per asset per step); return frames written."""
    plant = Plant({a: DEFAULT_ASSETS[a] for a in scenario.assets}, seed=scenario.seed)
    dt = 1.0 / scenario.rate
    n = int(round(scenario.seconds * scenario.rate))
    base = start_s * 1_000_000_000
    frames = []
    for i in range(1, n + 1):
        t = i * dt
        run_events(plant, scenario, t, dt)
        ts_ns = base + round(t * 1e9)
        for asset, values in plant.step(t, dt).items():
            frames.append(ReadingsFrame.from_samples(
                asset, [(tag, ts_ns, v, 0) for tag, v in values.items()],
                source="sim://scenario", seq=i))
    truth = [dict(e, start_ns=base + round(e["start"] * 1e9),
                  end_ns=None if e["end"] is None else base + round(e["end"] * 1e9))
             for e in plant.episodes()]
    header = {"scenario": scenario.model_dump(), "ground_truth": truth,
              "created": "deterministic"}
    with RecordingWriter(out, header) as w:
        w.declare_topics([topic])
        for off, f in enumerate(frames):
            w.write(Message(topic, 0, off, int(f.ts[-1] // 1_000_000), f.asset.encode(),
                            f.encode()))
    if labels:
        write_labels(labels, truth)
    return len(frames)


def write_labels(path: str | Path, truth: list[dict]) -> None:
    """Ground truth as CSV: asset, fault, fault_type, start and end (ISO-8601 UTC)."""
    from datetime import datetime, timezone

    def iso(ns):
        return "" if ns is None else datetime.fromtimestamp(ns / 1e9, timezone.utc).isoformat()

    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["asset", "fault", "fault_type", "start", "end"])
        for e in truth:
            w.writerow([e["asset"], e["fault"], e["fault_type"], iso(e["start_ns"]),
                        iso(e["end_ns"])])
