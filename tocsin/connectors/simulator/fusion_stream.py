"""Simulated input streams for the fusion: a scenario's readings run through the real
threshold alerter and an anomaly scorer, giving the two inputs the fusion agent joins
(threshold alerts, score ticks) in event-time order, with ground truth.

The scorer is the real one by default: :class:`ModelScores` runs the readings through the
stream's own window engine and :class:`~tocsin.models.scoring.AnomalyScorer` with the newest
trained models (``tocsin train``), so the network learns on the scores the worker will see.
:class:`StandInScores` (``fit_scorers``) is the SIMULATED z-score stand-in of
simulator/scores.py, kept for development without trained models; nothing uses it by default.

Used to train the network (``tocsin train fusion``), to evaluate it on held-out seeds
(benchmarks/fusion_quality.py) and by the tests. The readings are SIMULATED data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from tocsin.config.plant import PlantConfig, load_plant
from tocsin.connectors.simulator.plant import DEFAULT_ASSETS, FAULTS, Plant
from tocsin.connectors.simulator.scenario import (
    EPOCH_2026,
    FaultEvent,
    Scenario,
    run_events,
)
from tocsin.connectors.simulator.scores import SimulatedScorer, tick_windows
from tocsin.contracts.alerts import Alert
from tocsin.contracts.readings import ReadingsFrame
from tocsin.contracts.scores import Scores
from tocsin.detectors.threshold_alerts import alerter_from_plant
from tocsin.errors import ConfigError

NS = 1_000_000_000
NORMAL_FIT_SEED = 9001  # the stand-in's normal data; never used for training or evaluation
# the 60 s feature windows and the LSTM-AE's 60-tick sequence fill in the first 60 s of a
# stream; faults start after this much normal operation so the models see them warmed up
WARMUP_S = 90.0
# after a fault ends, the models' inputs (60 s feature windows, the 60-tick LSTM-AE sequence)
# still hold faulty readings and the plant relaxes back: ticks in this span have no honest
# "normal" or "fault" label, so training leaves them out (evaluation still sees them)
SETTLE_S = 75.0


class ScoreRun(Protocol):
    """One scenario's scorer state: frames in (event order), score ticks out."""

    def add(self, frame: ReadingsFrame) -> list[Scores]: ...

    def close(self) -> list[Scores]: ...


class ScoreSource(Protocol):
    label: str  # what made the scores (recorded with a trained network)

    def start(self) -> ScoreRun: ...


class ModelScores:
    """The trained anomaly models under ``root`` (Isolation Forest + LSTM-AE per asset type),
    loaded once; each :meth:`start` gets fresh per-asset windows and sequences."""

    def __init__(self, root: str | Path | None = None, plant_cfg: PlantConfig | None = None,
                 assets: list[str] | None = None, backend: str = "onnxruntime",
                 batch_frames: int = 16):
        from tocsin.models import artifacts
        from tocsin.models.scoring import ModelRegistry

        self.plant = plant_cfg or load_plant()
        self.root = Path(root) if root else artifacts.default_root()
        self.registry = ModelRegistry(self.root, backend)
        self.registry.refresh()
        self.batch_frames = batch_frames
        types = self.plant.asset_types()
        need = {types[a] for a in (assets or DEFAULT_ASSETS) if a in types}
        missing = sorted(need - set(self.registry.models))
        if missing:
            from tocsin.errors import ModelError

            bad = "; ".join(f"{t}: {self.registry.errors[t]}" for t in missing
                            if t in self.registry.errors)
            raise ModelError(f"no trained anomaly model for {', '.join(missing)} under "
                             f"{self.root}" + (f" (failed to load: {bad})" if bad else "")
                             + "; run `tocsin train` first")
        self.versions = {t: m.version for t, m in sorted(self.registry.models.items())
                         if t in need}
        self.label = "anomaly models " + ", ".join(f"{t} {v}" for t, v in self.versions.items())

    def start(self) -> "_ModelRun":
        return _ModelRun(self)


class _ModelRun:
    def __init__(self, src: ModelScores):
        from tocsin.detectors.windows import WindowEngine
        from tocsin.models.scoring import AnomalyScorer

        self.eng = WindowEngine(src.plant.features, src.plant.asset_tags())
        self.scorer = AnomalyScorer(src.registry, src.plant.asset_types())
        self.every = src.batch_frames
        self.n = 0

    def add(self, frame: ReadingsFrame) -> list[Scores]:
        self.eng.add(frame.asset, frame.tags, frame.ts, frame.values, frame.quality)
        self.n += 1
        return self.scorer.process(self.eng.close_ready()) if self.n % self.every == 0 else []

    def close(self) -> list[Scores]:
        # no flush: a live stream would not have closed the last, partly filled windows yet
        # (scoring them would show an artifact of the scenario's end, not of the plant)
        return self.scorer.process(self.eng.close_ready())


class StandInScores:
    """SIMULATED stand-in for the anomaly models (simulator/scores.py), not a model."""

    label = "SIMULATED stand-in scorer (window mean/std z-scores), not the anomaly models"

    def __init__(self, scorers: dict[str, SimulatedScorer]):
        self.scorers = scorers

    def start(self) -> "_StandInRun":
        return _StandInRun(self.scorers)


class _StandInRun:
    def __init__(self, scorers: dict[str, SimulatedScorer]):
        self.scorers = scorers
        self.bufs: dict[str, list] = {}
        self.cur: dict[str, int] = {}

    def add(self, frame: ReadingsFrame) -> list[Scores]:
        # a sample that opens a new tick closes the previous one first (event time)
        asset, ts = frame.asset, int(frame.ts.max())
        out = []
        k = ts // NS
        if asset in self.cur and k != self.cur[asset]:
            out = self._close(asset)
        self.cur[asset] = k
        self.bufs.setdefault(asset, []).append((ts, dict(zip(frame.tags,
                                                              frame.values.tolist()))))
        return out

    def close(self) -> list[Scores]:
        return [s for a in list(self.bufs) for s in self._close(a)]

    def _close(self, asset: str) -> list[Scores]:
        if not self.bufs.get(asset):
            return []
        (end, newest, window), = list(tick_windows(self.bufs[asset]))
        self.bufs[asset] = []
        return [self.scorers[asset].score(end, newest, window)]


@dataclass
class SimStream:
    """One scenario's fusion inputs: ("alert", Alert) and ("scores", Scores) in event order
    (a threshold alert before the score tick that closes at or after its source time)."""

    items: list[tuple[str, object]] = field(default_factory=list)
    truth: list[dict] = field(default_factory=list)  # episodes with start_ns / end_ns
    frames: list[ReadingsFrame] = field(default_factory=list)

    def label(self, asset: str, ts: int) -> str | None:
        """Ground-truth fault type active on the asset at ``ts``: normal when none, None
        within ``SETTLE_S`` after a fault ended (see there)."""
        settling = False
        for e in self.truth:
            if e["asset"] != asset or ts < e["start_ns"]:
                continue
            if e["end_ns"] is None or ts < e["end_ns"]:
                return e["fault_type"]
            settling |= ts < e["end_ns"] + SETTLE_S * NS
        return None if settling else "normal"


def _readings(scenario: Scenario, start_s: float):
    plant = Plant({a: DEFAULT_ASSETS[a] for a in scenario.assets}, seed=scenario.seed)
    dt = 1.0 / scenario.rate
    base = round(start_s * NS)  # start_s may have a fraction (a clock phase)
    for i in range(1, int(round(scenario.seconds * scenario.rate)) + 1):
        t = i * dt
        run_events(plant, scenario, t, dt)
        ts = base + round(t * 1e9)
        yield ts, plant.step(t, dt)
    yield None, plant


def fit_scorers(plant_cfg: PlantConfig | None = None, seconds: float = 300.0,
                seed: int = NORMAL_FIT_SEED) -> StandInScores:
    """Fit the SIMULATED stand-in scorer of every default asset on normal simulated data."""
    plant_cfg = plant_cfg or load_plant()
    sc = Scenario(seed=seed, seconds=seconds, assets=list(DEFAULT_ASSETS))
    per_asset: dict[str, list] = {a: [] for a in DEFAULT_ASSETS}
    for ts, values in _readings(sc, EPOCH_2026):
        if ts is None:
            break
        for a, v in values.items():
            per_asset[a].append((ts, v))
    return StandInScores({a: SimulatedScorer.fit(a, plant_cfg.assets[a].type,
                                                 [w for _, _, w in tick_windows(s)])
                          for a, s in per_asset.items()})


def simulate(scenario: Scenario, scores: ScoreSource, plant_cfg: PlantConfig | None = None,
             start_s: float = EPOCH_2026, keep_frames: bool = False) -> SimStream:
    """Run the scenario; threshold alerts come from the real ThresholdAlerter on the frames,
    score ticks from ``scores`` (:class:`ModelScores` or the stand-in) on the same frames."""
    plant_cfg = plant_cfg or load_plant()
    alerter = alerter_from_plant(plant_cfg)
    run = scores.start()
    out = SimStream()
    alerts: list[Alert] = []
    ticks: list[Scores] = []
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
            ticks += run.add(frame)
            alerts += alerter.process(frame, ts)
    ticks += run.close()
    # event order: an alert joins the first tick that closes at or after its source time
    merged = [((a.source_ts, 0, i), ("alert", a)) for i, a in enumerate(alerts)]
    merged += [((s.ts, 1, i), ("scores", s)) for i, s in enumerate(ticks)]
    out.items = [x for _, x in sorted(merged, key=lambda m: m[0])]
    base = round(start_s * NS)  # start_s may have a fraction (a clock phase)
    out.truth = [dict(e, start_ns=base + round(e["start"] * 1e9),
                      end_ns=None if e["end"] is None else base + round(e["end"] * 1e9))
                 for e in plant.episodes()]
    return out


def fault_scenarios(seed: int, *, seconds: float = 240.0, start: float = 100.0,
                    duration: float = 90.0) -> list[Scenario]:
    """One scenario per (fault, asset kind) of the fault library, each on its own asset; the
    fault starts after the models' warm-up (``WARMUP_S``)."""
    if start < WARMUP_S:
        raise ConfigError(f"start={start}: faults must start after the {WARMUP_S:.0f}s "
                          "warm-up of the anomaly models")
    out = []
    for fault, kinds in FAULTS.items():
        for asset, kind in DEFAULT_ASSETS.items():
            if kind in kinds:
                out.append(Scenario(seed=seed, seconds=seconds, assets=[asset], faults=[
                    FaultEvent(asset=asset, fault=fault, start=start, end=start + duration)]))
    return out


