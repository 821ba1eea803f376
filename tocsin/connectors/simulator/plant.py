"""A simulated plant: assets whose tags follow first-order dynamics with noise, and a fault
library that shifts or shakes them. Pure numpy; time is passed in (event time), so a run is
reproducible from its seed.

Faults carry ground truth: every inject/clear is recorded with the asset, fault, fault type
(mechanical, electrical, hydraulic, thermal) and the simulated time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class TagModel:
    nominal: float
    noise: float  # std of white measurement noise
    tau: float  # s, first-order time constant towards the target


@dataclass(frozen=True)
class Fault:
    fault_type: str  # mechanical | electrical | hydraulic | thermal
    offsets: dict[str, float]  # tag -> shift of the target value
    oscillation: dict[str, tuple[float, float]] = field(default_factory=dict)  # tag -> (amp, Hz)
    tau: float | None = None  # override of the time constant while active (fast faults)


PUMP_TAGS: dict[str, TagModel] = {
    "vibration_rms": TagModel(2.3, 0.08, 2.0),
    "bearing_temp": TagModel(62.0, 0.05, 8.0),
    "motor_current": TagModel(78.0, 0.6, 0.5),
    "discharge_pressure": TagModel(5.6, 0.03, 0.5),
    "flow": TagModel(120.0, 0.8, 1.0),
}

FAULTS: dict[str, Fault] = {
    "over_temperature": Fault("thermal", {"bearing_temp": 45.0}, tau=4.0),
    "bearing_wear": Fault("mechanical", {"vibration_rms": 6.5, "bearing_temp": 8.0}),
    "motor_overload": Fault("electrical", {"motor_current": 42.0, "bearing_temp": 4.0}),
    "cavitation": Fault("hydraulic", {"discharge_pressure": -1.4, "flow": -25.0},
                        oscillation={"flow": (12.0, 0.7), "vibration_rms": (1.5, 0.7)}),
    "leak": Fault("hydraulic", {"discharge_pressure": -3.9, "flow": -70.0}),
}


@dataclass
class Asset:
    asset_id: str
    tags: dict[str, TagModel]
    rng: np.random.Generator
    state: np.ndarray = field(init=False)
    active: dict[str, float] = field(default_factory=dict)  # fault -> start time (s)

    def __post_init__(self):
        self.names = list(self.tags)
        self.nominal = np.array([self.tags[t].nominal for t in self.names])
        self.noise = np.array([self.tags[t].noise for t in self.names])
        self.tau = np.array([self.tags[t].tau for t in self.names])
        self.state = self.nominal.copy()

    def step(self, t: float, dt: float) -> np.ndarray:
        """Advance the dynamics by `dt` seconds to time `t`; return measured values."""
        target = self.nominal.copy()
        tau = self.tau.copy()
        wobble = np.zeros_like(target)
        for name, t0 in self.active.items():
            f = FAULTS[name]
            for tag, off in f.offsets.items():
                i = self.names.index(tag)
                target[i] += off
                if f.tau is not None:
                    tau[i] = min(tau[i], f.tau)
            for tag, (amp, hz) in f.oscillation.items():
                i = self.names.index(tag)
                wobble[i] += amp * np.sin(2 * np.pi * hz * (t - t0))
        alpha = 1.0 - np.exp(-dt / tau)
        self.state += alpha * (target - self.state)
        return self.state + wobble + self.rng.normal(0.0, self.noise)


class Plant:
    """Several assets stepped together; fault changes are logged as ground truth."""

    def __init__(self, assets: dict[str, dict[str, TagModel]] | None = None, seed: int = 7):
        rng = np.random.default_rng(seed)
        assets = assets or {"pump-1": PUMP_TAGS}
        self.assets = {a: Asset(a, tags, rng) for a, tags in assets.items()}
        self.ground_truth: list[dict] = []

    def inject(self, asset: str, fault: str, t: float) -> None:
        if asset not in self.assets:
            raise KeyError(f"unknown asset {asset!r}; known: {sorted(self.assets)}")
        if fault not in FAULTS:
            raise KeyError(f"unknown fault {fault!r}; known: {sorted(FAULTS)}")
        if fault not in self.assets[asset].active:
            self.assets[asset].active[fault] = t
            self.ground_truth.append({"asset": asset, "fault": fault, "event": "start",
                                      "fault_type": FAULTS[fault].fault_type, "t": t})

    def clear(self, asset: str, fault: str | None, t: float) -> None:
        a = self.assets[asset]
        for name in [fault] if fault else list(a.active):
            if a.active.pop(name, None) is not None:
                self.ground_truth.append({"asset": asset, "fault": name, "event": "end",
                                          "fault_type": FAULTS[name].fault_type, "t": t})

    def step(self, t: float, dt: float) -> dict[str, dict[str, float]]:
        out = {}
        for aid, asset in self.assets.items():
            vals = asset.step(t, dt)
            out[aid] = dict(zip(asset.names, vals.tolist()))
        return out
