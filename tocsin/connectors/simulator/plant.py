"""A simulated plant: a pump, a motor and a hydraulic press whose tags follow first-order
dynamics with noise, and a fault library with ground truth. Pure numpy; time is passed in
(event time), so a run is reproducible from its seed. Each asset has its own random stream,
so adding an asset never changes another asset's readings.

Fault types: mechanical, electrical, hydraulic, thermal. Every inject and clear is recorded
(asset, fault, fault type, simulated time) so detection can be scored.

Simplifications worth knowing: tags are sampled at the simulator's rate (10 Hz by default),
so the motor's ``vibration`` waveform runs at a scaled-down shaft speed (1.2 Hz) to keep its
1x, 2x and 3x harmonics below the Nyquist frequency.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class TagModel:
    nominal: float
    noise: float  # std of white measurement noise
    tau: float  # s, first-order time constant towards the target
    # a waveform tag (vibration): harmonic number -> amplitude, at the asset's shaft speed
    harmonics: tuple[tuple[int, float], ...] = ()


@dataclass(frozen=True)
class Fault:
    fault_type: str  # mechanical | electrical | hydraulic | thermal
    offsets: dict[str, float] = field(default_factory=dict)  # tag -> shift of the target
    oscillation: dict[str, tuple[float, float]] = field(default_factory=dict)  # (amp, Hz)
    tau: float | None = None  # time constant while active (fast faults)
    harmonics: dict[str, tuple[tuple[int, float], ...]] = field(default_factory=dict)
    spikes: dict[str, tuple[float, float]] = field(default_factory=dict)  # (prob, amp)
    stick: dict[str, str] = field(default_factory=dict)  # tag -> tag it should follow
    description: str = ""


SHAFT_HZ = 1.2

PUMP_TAGS: dict[str, TagModel] = {
    "vibration_rms": TagModel(2.3, 0.08, 2.0),
    "bearing_temp": TagModel(62.0, 0.05, 8.0),
    "motor_current": TagModel(78.0, 0.6, 0.5),
    "discharge_pressure": TagModel(5.6, 0.03, 0.5),
    "flow": TagModel(120.0, 0.8, 1.0),
}
MOTOR_TAGS: dict[str, TagModel] = {
    "current_a": TagModel(42.0, 0.3, 0.3),
    "current_b": TagModel(42.0, 0.3, 0.3),
    "current_c": TagModel(42.0, 0.3, 0.3),
    "voltage": TagModel(400.0, 1.0, 0.2),
    "speed_rpm": TagModel(1480.0, 2.0, 1.0),
    "winding_temp": TagModel(75.0, 0.1, 10.0),
    "vibration": TagModel(0.0, 0.15, 0.5, harmonics=((1, 1.0), (2, 0.2))),
}
PRESS_TAGS: dict[str, TagModel] = {
    "pressure": TagModel(180.0, 1.0, 0.5),
    "flow": TagModel(40.0, 0.4, 0.5),
    "valve_cmd": TagModel(50.0, 0.0, 0.05),
    "valve_position": TagModel(50.0, 0.2, 0.3),
    "oil_temp": TagModel(48.0, 0.05, 15.0),
}
ASSET_TYPES = {"pump": PUMP_TAGS, "motor": MOTOR_TAGS, "press": PRESS_TAGS}
DEFAULT_ASSETS = {"pump-1": "pump", "motor-1": "motor", "press-1": "press"}

# fault name -> asset type -> effect
FAULTS: dict[str, dict[str, Fault]] = {
    "over_temperature": {"pump": Fault("thermal", {"bearing_temp": 45.0}, tau=4.0)},
    "bearing_wear": {
        "pump": Fault("mechanical", {"vibration_rms": 6.5, "bearing_temp": 8.0}),
        "motor": Fault("mechanical", {"winding_temp": 3.0},
                       harmonics={"vibration": ((3, 0.9), (4, 0.6))},
                       description="rising bearing-defect harmonics"),
    },
    "imbalance": {"motor": Fault("mechanical", harmonics={"vibration": ((1, 2.5),)},
                                 description="1x shaft-speed vibration grows")},
    "motor_overload": {"pump": Fault("electrical", {"motor_current": 42.0,
                                                    "bearing_temp": 4.0})},
    "phase_imbalance": {"motor": Fault("electrical", {"current_a": 9.0, "current_b": -6.0,
                                                      "winding_temp": 6.0})},
    "voltage_sag": {"motor": Fault("electrical", {"voltage": -60.0, "current_a": 7.0,
                                                  "current_b": 7.0, "current_c": 7.0,
                                                  "speed_rpm": -25.0}, tau=0.3)},
    "current_spikes": {"motor": Fault("electrical", spikes={
        "current_a": (0.05, 35.0), "current_b": (0.05, 35.0), "current_c": (0.05, 35.0)})},
    "cavitation": {
        "pump": Fault("hydraulic", {"discharge_pressure": -1.4, "flow": -25.0},
                      oscillation={"flow": (12.0, 0.7), "vibration_rms": (1.5, 0.7)}),
        "press": Fault("hydraulic", {"pressure": -15.0},
                       oscillation={"flow": (9.0, 1.3), "pressure": (12.0, 1.3)}),
    },
    "leak": {
        "pump": Fault("hydraulic", {"discharge_pressure": -3.9, "flow": -70.0}),
        "press": Fault("hydraulic", {"pressure": -70.0, "oil_temp": 4.0}),
    },
    "valve_sticking": {"press": Fault("hydraulic", stick={"valve_position": "valve_cmd"},
                                      description="position holds, then jumps to command")},
}


# d target / d load (units per unit of load; load 1.0 is the nominal operating point): an
# operating-mode change moves every tag of an asset together, along the plant's own physics
# (flow and current with throughput, temperatures slowly behind). Load 1.0 adds nothing, so
# the default plant's readings do not depend on this table.
LOAD_SENSITIVITY: dict[str, dict[str, float]] = {
    "pump": {"vibration_rms": 0.7, "bearing_temp": 6.0, "motor_current": 47.0,
             "discharge_pressure": 11.2, "flow": 120.0},
    "motor": {"current_a": 29.0, "current_b": 29.0, "current_c": 29.0, "voltage": -4.0,
              "speed_rpm": -20.0, "winding_temp": 15.0},
    "press": {"pressure": 150.0, "flow": 35.0, "oil_temp": 6.0},
}


def fault_type(fault: str) -> str:
    return next(iter(FAULTS[fault].values())).fault_type


@dataclass
class Asset:
    asset_id: str
    kind: str
    tags: dict[str, TagModel]
    rng: np.random.Generator
    active: dict[str, float] = field(default_factory=dict)  # fault -> start time (s)
    load: float = 1.0  # operating point (1 = nominal); see LOAD_SENSITIVITY
    # fault -> (severity, ramp seconds): the effect is severity x min(1, elapsed / ramp), a
    # gradual onset; absent: full effect at once (the original library)
    shape: dict[str, tuple[float, float]] = field(default_factory=dict)

    def __post_init__(self):
        self.names = list(self.tags)
        self.idx = {t: i for i, t in enumerate(self.names)}
        self.nominal = np.array([self.tags[t].nominal for t in self.names])
        self.noise = np.array([self.tags[t].noise for t in self.names])
        self.tau = np.array([self.tags[t].tau for t in self.names])
        self.state = self.nominal.copy()
        self._stuck: dict[str, float] = {}

    def _weight(self, fault: str, t: float, t0: float) -> float:
        if fault not in self.shape:
            return 1.0
        severity, ramp = self.shape[fault]
        return severity * (min(1.0, (t - t0) / ramp) if ramp > 0 else 1.0)

    def step(self, t: float, dt: float) -> np.ndarray:
        """Advance the dynamics by `dt` seconds to time `t`; return measured values."""
        target = self.nominal.copy()
        tau = self.tau.copy()
        extra = np.zeros_like(target)
        harmonics = {n: dict(m.harmonics) for n, m in self.tags.items() if m.harmonics}
        if self.kind == "press":  # the press cycles: the valve command is a slow sine
            target[self.idx["valve_cmd"]] = 50.0 + 20.0 * np.sin(2 * np.pi * t / 20.0)
            target[self.idx["valve_position"]] = target[self.idx["valve_cmd"]]
        if self.load != 1.0:
            for tag, sens in LOAD_SENSITIVITY[self.kind].items():
                target[self.idx[tag]] += sens * (self.load - 1.0)
        for name, t0 in self.active.items():
            f = FAULTS[name][self.kind]
            w = self._weight(name, t, t0)
            for tag, off in f.offsets.items():
                target[self.idx[tag]] += w * off
                if f.tau is not None:
                    tau[self.idx[tag]] = min(tau[self.idx[tag]], f.tau)
            for tag, (amp, hz) in f.oscillation.items():
                extra[self.idx[tag]] += w * amp * np.sin(2 * np.pi * hz * (t - t0))
            for tag, hs in f.harmonics.items():
                for h, amp in hs:
                    harmonics[tag][h] = harmonics[tag].get(h, 0.0) + w * amp
            for tag, (prob, amp) in f.spikes.items():
                if self.rng.random() < prob:
                    extra[self.idx[tag]] += w * amp * self.rng.random()
            for tag, follows in f.stick.items():
                i, j = self.idx[tag], self.idx[follows]
                held = self._stuck.setdefault(tag, float(self.state[i]))
                if abs(target[j] - held) > 8.0:  # stiction: breaks loose, jumps, sticks
                    held = self._stuck[tag] = float(target[j])
                target[i] = held
                tau[i] = 0.05
        alpha = 1.0 - np.exp(-dt / tau)
        self.state += alpha * (target - self.state)
        for tag, hs in harmonics.items():
            extra[self.idx[tag]] += sum(a * np.sin(2 * np.pi * SHAFT_HZ * h * t)
                                        for h, a in hs.items())
        return self.state + extra + self.rng.normal(0.0, self.noise)


class Plant:
    """Several assets stepped together; fault changes are logged as ground truth."""

    def __init__(self, assets: dict[str, str] | None = None, seed: int = 7):
        assets = assets or DEFAULT_ASSETS
        self.assets = {}
        for aid, kind in assets.items():
            rng = np.random.default_rng([seed, zlib.crc32(aid.encode())])
            self.assets[aid] = Asset(aid, kind, ASSET_TYPES[kind], rng)
        self.ground_truth: list[dict] = []

    def inject(self, asset: str, fault: str, t: float, severity: float = 1.0,
               ramp_s: float = 0.0) -> None:
        """Start ``fault`` at ``t``; ``severity`` scales its effect and ``ramp_s`` > 0 makes
        the onset gradual (full effect after ``ramp_s`` seconds)."""
        if asset not in self.assets:
            raise KeyError(f"unknown asset {asset!r}; known: {sorted(self.assets)}")
        if fault not in FAULTS:
            raise KeyError(f"unknown fault {fault!r}; known: {sorted(FAULTS)}")
        a = self.assets[asset]
        if a.kind not in FAULTS[fault]:
            ok = sorted(f for f, by in FAULTS.items() if a.kind in by)
            raise KeyError(f"fault {fault!r} does not apply to {asset} (a {a.kind}); "
                           f"its faults: {ok}")
        if fault not in a.active:
            a.active[fault] = t
            if severity != 1.0 or ramp_s > 0:
                a.shape[fault] = (severity, ramp_s)
            self.ground_truth.append({"asset": asset, "fault": fault, "event": "start",
                                      "fault_type": FAULTS[fault][a.kind].fault_type, "t": t})

    def clear(self, asset: str, fault: str | None, t: float) -> None:
        a = self.assets[asset]
        for name in [fault] if fault else list(a.active):
            if a.active.pop(name, None) is not None:
                a._stuck.clear()
                a.shape.pop(name, None)
                self.ground_truth.append({"asset": asset, "fault": name, "event": "end",
                                          "fault_type": FAULTS[name][a.kind].fault_type,
                                          "t": t})

    def step(self, t: float, dt: float) -> dict[str, dict[str, float]]:
        out = {}
        for aid, asset in self.assets.items():
            vals = asset.step(t, dt)
            out[aid] = dict(zip(asset.names, vals.tolist()))
        return out

    def episodes(self) -> list[dict]:
        """Ground truth as episodes: asset, fault, fault type, start, end (None: open)."""
        out, open_ = [], {}
        for g in self.ground_truth:
            key = (g["asset"], g["fault"])
            if g["event"] == "start":
                open_[key] = {"asset": g["asset"], "fault": g["fault"],
                              "fault_type": g["fault_type"], "start": g["t"], "end": None}
                out.append(open_[key])
            elif key in open_:
                open_.pop(key)["end"] = g["t"]
        return out
