"""The simulated plant: normal operation stays inside the limits, faults cross them, and every
fault change is logged as ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from tocsin.connectors.simulator.plant import FAULTS, Plant
from tocsin.detectors.threshold_alerts import alerter_from_plant
from tocsin.contracts import ReadingsFrame
from tocsin.plantconfig import load_plant


def simulate(plant: Plant, seconds: float, t0: float = 0.0, rate: float = 10.0):
    dt = 1.0 / rate
    rows = []
    for i in range(int(seconds * rate)):
        t = t0 + (i + 1) * dt
        rows.append((t, plant.step(t, dt)["pump-1"]))
    return rows


def frames_of(rows):
    for t, values in rows:
        samples = [(tag, int(t * 1e9), v, 0) for tag, v in values.items()]
        yield ReadingsFrame.from_samples("pump-1", samples)


def test_normal_operation_raises_no_alert():
    alerter = alerter_from_plant(load_plant())
    rows = simulate(Plant(seed=1), 600)
    alerts = [a for f in frames_of(rows) for a in alerter.process(f, 0)]
    assert alerts == []


@pytest.mark.parametrize("fault, tag, rule", [
    ("over_temperature", "bearing_temp", "high"),
    ("bearing_wear", "vibration_rms", "high"),
    ("motor_overload", "motor_current", "high"),
    ("leak", "flow", "low"),
])
def test_fault_crosses_its_limit(fault, tag, rule):
    plant = Plant(seed=2)
    alerter = alerter_from_plant(load_plant())
    warm = simulate(plant, 30)
    plant.inject("pump-1", fault, 30.0)
    hot = simulate(plant, 60, t0=30.0)
    alerts = [a for f in frames_of(warm + hot) for a in alerter.process(f, 0)]
    raised = [(a.tag, a.rule) for a in alerts if a.event.value == "raised"]
    assert (tag, rule) in raised
    assert all(a.source_ts >= 30 * 10**9 for a in alerts)
    assert plant.ground_truth == [{"asset": "pump-1", "fault": fault, "event": "start",
                                   "fault_type": FAULTS[fault].fault_type, "t": 30.0}]


def test_unknown_fault_or_asset_is_refused():
    plant = Plant()
    with pytest.raises(KeyError, match="unknown fault"):
        plant.inject("pump-1", "gremlins", 0.0)
    with pytest.raises(KeyError, match="unknown asset"):
        plant.inject("pump-9", "leak", 0.0)


def test_same_seed_same_readings():
    a = simulate(Plant(seed=5), 5)
    b = simulate(Plant(seed=5), 5)
    assert np.allclose([list(v.values()) for _, v in a], [list(v.values()) for _, v in b])
