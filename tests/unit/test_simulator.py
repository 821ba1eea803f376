"""The simulated plant: normal operation stays inside the limits, each fault shows the
signature it is documented to have, and every fault change is logged as ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from tocsin.config.plant import load_plant
from tocsin.connectors.simulator.plant import DEFAULT_ASSETS, FAULTS, SHAFT_HZ, Plant
from tocsin.connectors.simulator.scenario import Scenario, load_scenario, write_scenario
from tocsin.contracts import ReadingsFrame
from tocsin.detectors.threshold_alerts import alerter_from_plant


def simulate(plant: Plant, seconds: float, t0: float = 0.0, rate: float = 10.0):
    dt = 1.0 / rate
    return [(t0 + (i + 1) * dt, plant.step(t0 + (i + 1) * dt, dt))
            for i in range(int(seconds * rate))]


def alerts_of(rows):
    alerter = alerter_from_plant(load_plant())
    out = []
    for t, by_asset in rows:
        for asset, values in by_asset.items():
            f = ReadingsFrame.from_samples(asset, [(k, int(t * 1e9), v, 0)
                                                   for k, v in values.items()])
            out += alerter.process(f, 0)
    return out


def test_normal_operation_raises_no_alert():
    assert alerts_of(simulate(Plant(seed=1), 600)) == []


@pytest.mark.parametrize("asset, fault, tag, rule", [
    ("pump-1", "over_temperature", "bearing_temp", "high"),
    ("pump-1", "bearing_wear", "vibration_rms", "high"),
    ("pump-1", "motor_overload", "motor_current", "high"),
    ("pump-1", "leak", "flow", "low"),
    ("motor-1", "phase_imbalance", "current_a", "high"),
    ("motor-1", "voltage_sag", "voltage", "low"),
    ("motor-1", "current_spikes", "current_b", "high"),
    ("press-1", "leak", "pressure", "low"),
])
def test_fault_crosses_its_limit(asset, fault, tag, rule):
    plant = Plant(seed=2)
    warm = simulate(plant, 30)
    plant.inject(asset, fault, 30.0)
    hot = simulate(plant, 60, t0=30.0)
    alerts = alerts_of(warm + hot)
    raised = {(a.asset, a.tag, a.rule) for a in alerts if a.event.value == "raised"}
    assert (asset, tag, rule) in raised
    assert all(a.source_ts >= 30 * 10**9 and a.asset == asset for a in alerts)
    kind = DEFAULT_ASSETS[asset]
    assert plant.ground_truth == [{"asset": asset, "fault": fault, "event": "start",
                                   "fault_type": FAULTS[fault][kind].fault_type, "t": 30.0}]


def _spectrum(values, rate=10.0):
    v = np.asarray(values) - np.mean(values)
    mag = np.abs(np.fft.rfft(v * np.hanning(len(v)))) / len(v)
    freqs = np.fft.rfftfreq(len(v), 1 / rate)
    return lambda hz: mag[np.argmin(np.abs(freqs - hz))]


def test_motor_faults_change_the_vibration_spectrum():
    def vib(fault):
        plant = Plant(seed=3)
        if fault:
            plant.inject("motor-1", fault, 0.0)
        return _spectrum([r["motor-1"]["vibration"] for _, r in simulate(plant, 60)])

    normal, imbalance, wear = vib(None), vib("imbalance"), vib("bearing_wear")
    assert imbalance(SHAFT_HZ) > 2.5 * normal(SHAFT_HZ)  # 1x grows
    assert wear(3 * SHAFT_HZ) > 5 * normal(3 * SHAFT_HZ)  # defect harmonics appear
    assert wear(4 * SHAFT_HZ) > 5 * normal(4 * SHAFT_HZ)


def test_valve_sticking_and_cavitation_signatures():
    plant = Plant(seed=4)
    plant.inject("press-1", "valve_sticking", 0.0)
    rows = simulate(plant, 60)
    err = [abs(r["press-1"]["valve_position"] - r["press-1"]["valve_cmd"]) for _, r in rows]
    normal = [abs(r["press-1"]["valve_position"] - r["press-1"]["valve_cmd"])
              for _, r in simulate(Plant(seed=4), 60)]
    assert np.percentile(err, 90) > 2.5 * np.percentile(normal, 90)
    plant = Plant(seed=5)
    plant.inject("pump-1", "cavitation", 0.0)
    flow = [r["pump-1"]["flow"] for _, r in simulate(plant, 60)]
    assert np.std(flow) > 5.0  # oscillation, while staying above the low limit
    assert min(flow) > 60.0


def test_unknown_or_misapplied_fault_is_refused():
    plant = Plant()
    with pytest.raises(KeyError, match="unknown fault"):
        plant.inject("pump-1", "gremlins", 0.0)
    with pytest.raises(KeyError, match="unknown asset"):
        plant.inject("pump-9", "leak", 0.0)
    with pytest.raises(KeyError, match="does not apply to press-1"):
        plant.inject("press-1", "phase_imbalance", 0.0)


def test_same_seed_same_readings_and_assets_are_independent():
    a = simulate(Plant(seed=5), 5)
    b = simulate(Plant(seed=5), 5)
    assert a == b
    only_pump = simulate(Plant({"pump-1": "pump"}, seed=5), 5)
    assert [r["pump-1"] for _, r in only_pump] == [r["pump-1"] for _, r in a]


def test_scenario_file_writes_episodes_and_labels(tmp_path):
    sc = tmp_path / "s.yaml"
    sc.write_text("seconds: 40\nfaults:\n"
                  "  - {asset: motor-1, fault: voltage_sag, start: 10, end: 20}\n"
                  "  - {asset: press-1, fault: leak, start: 30}\n")
    labels = tmp_path / "labels.csv"
    n = write_scenario(tmp_path / "s.rec", load_scenario(sc), labels=labels)
    assert n == 400 * 3
    lines = labels.read_text().splitlines()
    assert lines[0] == "asset,fault,fault_type,start,end"
    assert lines[1] == ("motor-1,voltage_sag,electrical,2026-01-01T00:00:10+00:00,"
                        "2026-01-01T00:00:20+00:00")
    assert lines[2] == "press-1,leak,hydraulic,2026-01-01T00:00:30+00:00,"


def test_scenario_validation_names_the_problem():
    with pytest.raises(ValueError, match="does not apply to pump-1"):
        Scenario.model_validate({"faults": [{"asset": "pump-1", "fault": "voltage_sag",
                                             "start": 1}]})
