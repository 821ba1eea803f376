"""Simulated input streams for the fusion: a scenario's readings run through the real
threshold alerter and the simulated scorer (simulator/scores.py), giving the two inputs the
fusion agent joins (threshold alerts, score ticks) in event-time order, with ground truth.

Used to train the network (``tocsin train fusion``), to evaluate it on held-out seeds
(benchmarks/fusion_quality.py) and by the tests. Everything here is SIMULATED data.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tocsin.connectors.simulator.plant import DEFAULT_ASSETS, FAULTS, Plant
from tocsin.connectors.simulator.scenario import EPOCH_2026, FaultEvent, Scenario, run_events
from tocsin.connectors.simulator.scores import SimulatedScorer, tick_windows
from tocsin.contracts.alerts import Alert
from tocsin.contracts.readings import ReadingsFrame
from tocsin.contracts.scores import Scores
from tocsin.detectors.threshold_alerts import alerter_from_plant
from tocsin.plantconfig import PlantConfig, load_plant

NS = 1_000_000_000
NORMAL_FIT_SEED = 9001  # the scorer's normal data; never used for training or evaluation


@dataclass
class SimStream:
    """One scenario's fusion inputs: ("alert", Alert) and ("scores", Scores) in event order."""

    items: list[tuple[str, object]] = field(default_factory=list)
    truth: list[dict] = field(default_factory=list)  # episodes with start_ns / end_ns
    frames: list[ReadingsFrame] = field(default_factory=list)

    def label(self, asset: str, ts: int) -> str:
        """Ground-truth fault type active on the asset at ``ts`` (normal when none)."""
        for e in self.truth:
            if e["asset"] == asset and e["start_ns"] <= ts and (e["end_ns"] is None
                                                                or ts < e["end_ns"]):
                return e["fault_type"]
        return "normal"


def _readings(scenario: Scenario, start_s: int):
    plant = Plant({a: DEFAULT_ASSETS[a] for a in scenario.assets}, seed=scenario.seed)
    dt = 1.0 / scenario.rate
    base = start_s * NS
    for i in range(1, int(round(scenario.seconds * scenario.rate)) + 1):
        t = i * dt
        run_events(plant, scenario, t, dt)
        ts = base + round(t * 1e9)
        yield ts, plant.step(t, dt)
    yield None, plant


def fit_scorers(plant_cfg: PlantConfig | None = None, seconds: float = 300.0,
                seed: int = NORMAL_FIT_SEED) -> dict[str, SimulatedScorer]:
    """Fit the simulated scorer of every default asset on normal simulated data."""
    plant_cfg = plant_cfg or load_plant()
    sc = Scenario(seed=seed, seconds=seconds, assets=list(DEFAULT_ASSETS))
    per_asset: dict[str, list] = {a: [] for a in DEFAULT_ASSETS}
    for ts, values in _readings(sc, EPOCH_2026):
        if ts is None:
            break
        for a, v in values.items():
            per_asset[a].append((ts, v))
    return {a: SimulatedScorer.fit(a, plant_cfg.assets[a].type,
                                   [w for _, _, w in tick_windows(s)])
            for a, s in per_asset.items()}


def simulate(scenario: Scenario, scorers: dict[str, SimulatedScorer],
             plant_cfg: PlantConfig | None = None, start_s: int = EPOCH_2026,
             keep_frames: bool = False) -> SimStream:
    """Run the scenario; threshold alerts come from the real ThresholdAlerter on the frames."""
    plant_cfg = plant_cfg or load_plant()
    alerter = alerter_from_plant(plant_cfg)
    out = SimStream()
    cur: dict[str, int] = {}
    bufs: dict[str, list] = {a: [] for a in scenario.assets}
    plant = None
    for ts, values in _readings(scenario, start_s):
        if ts is None:
            plant = values
            break
        for asset, vals in values.items():
            frame = ReadingsFrame.from_samples(asset, [(t, ts, v, 0) for t, v in vals.items()],
                                               source="sim://fusion")
            if keep_frames:
                out.frames.append(frame)
            # a sample that opens a new tick closes the previous one first (event time)
            k = ts // NS
            if asset in cur and k != cur[asset]:
                out.items += _close(asset, bufs, scorers)
            cur[asset] = k
            bufs[asset].append((ts, vals))
            out.items += [("alert", a) for a in alerter.process(frame, ts)]
    for asset in scenario.assets:
        out.items += _close(asset, bufs, scorers)
    base = start_s * NS
    out.truth = [dict(e, start_ns=base + round(e["start"] * 1e9),
                      end_ns=None if e["end"] is None else base + round(e["end"] * 1e9))
                 for e in plant.episodes()]
    return out


def _close(asset: str, bufs: dict, scorers: dict[str, SimulatedScorer]) -> list:
    if not bufs[asset]:
        return []
    (end, newest, window), = list(tick_windows(bufs[asset]))
    bufs[asset] = []
    s: Scores = scorers[asset].score(end, newest, window)
    return [("scores", s)]


def fault_scenarios(seed: int, *, seconds: float = 150.0, start: float = 40.0,
                    duration: float = 70.0) -> list[Scenario]:
    """One scenario per (fault, asset kind) of the fault library, each on its own asset."""
    out = []
    for fault, kinds in FAULTS.items():
        for asset, kind in DEFAULT_ASSETS.items():
            if kind in kinds:
                out.append(Scenario(seed=seed, seconds=seconds, assets=[asset], faults=[
                    FaultEvent(asset=asset, fault=fault, start=start, end=start + duration)]))
    return out


def alert_items(stream: SimStream) -> list[Alert]:
    return [x for k, x in stream.items if k == "alert"]
