"""The features and anomaly operators on the runtime (tocsin.streams.runtime): thin shells
around the window engine and the scorer, exactly-once, state restored by replay.

features: plant.readings -> one :class:`WindowEngine` per input partition -> plant.features
(one message per asset and boundary). Batch-native: the runner hands over up to
``batch_max`` records and the windows of all assets close in one vectorised call per
partition. State: the buffered samples of the last windows, a function of the last
:func:`replay_horizon_s` of input, so it comes back by replay (no changelog traffic).
Undecodable frames are dead-lettered by the thresholds stage when it runs, else here.

anomaly: plant.features -> one :class:`AnomalyScorer` per partition (one model call per
asset type per batch) -> plant.scores. State: the latest window of each scale and the
LSTM-AE sequence of each asset, a function of the last ``seq_len`` base-scale rows, so it
also comes back by replay (without model calls). A model poll in ``tick`` swaps in newer
models; the sequences are kept when the feature layout is unchanged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from tocsin.config.plant import PlantConfig
from tocsin.config.worker import Settings
from tocsin.connectors import telemetry
from tocsin.contracts import features as fc
from tocsin.contracts import topics
from tocsin.contracts.eventtime import TimeGuard
from tocsin.detectors.bounds import Throttled
from tocsin.detectors.intake import ReadingsIntake
from tocsin.detectors.windows import NS, WindowEngine, replay_horizon_s
from tocsin.models import artifacts
from tocsin.models.scoring import AnomalyScorer, ModelRegistry
from tocsin.streams import metrics
from tocsin.streams.deadletters import reason
from tocsin.streams.runtime.operator import Emitter, Record, Restore
from tocsin.streams.runtime.state import KeyedState

log = logging.getLogger("tocsin.worker")
# Kafka timestamps are producer time, not event time: a producer that lags or bursts moves
# them apart, so the replay reads this much more than the state strictly needs
MARGIN_S = 30.0


def _muted(out: Emitter) -> bool:
    return bool(getattr(out, "muted", False))


class FeaturesOperator:
    name = "features"

    def __init__(self, settings: Settings, plant: PlantConfig, guard: TimeGuard = TimeGuard(),
                 dead_letter_decode: bool | None = None):
        self.s = settings
        self.spec = plant.features
        self.asset_tags = plant.asset_tags()
        self.sizes = {sc.name: sc.size_ns for sc in self.spec.scales}
        self.hashes = {a: self.spec.hash(t) for a, t in self.asset_tags.items()}
        self.src, self.dst = settings.topic(topics.READINGS), settings.topic(topics.FEATURES)
        self.intake = ReadingsIntake(guard, settings.report_interval_s, "features")
        self.dl_decode = ("thresholds" not in settings.agent_set
                          if dead_letter_decode is None else dead_letter_decode)
        self.engines: dict[int, WindowEngine] = {}
        self.capped = Throttled(log, "features: samples refused by a state bound (unknown "
                                f"assets beyond {settings.max_unknown_assets} per partition, "
                                f"or tags beyond {settings.max_tags_per_asset} per asset)",
                                settings.report_interval_s)
        self.m_time = metrics.PROCESS_SECONDS.labels("features")
        telemetry.track_state("features", lambda: sum(len(e._assets)
                                                      for e in self.engines.values()))

    def inputs(self) -> list[str]:
        return [self.src]

    def restore_mode(self) -> Restore:
        return Restore.replay(replay_horizon_s(self.spec) + MARGIN_S)

    def open(self, partition: int, state: KeyedState) -> None:
        self.engines[partition] = WindowEngine(
            self.spec, self.asset_tags, max_unknown_assets=self.s.max_unknown_assets,
            max_tags=self.s.max_tags_per_asset)

    def close(self, partition: int) -> None:
        self.engines.pop(partition, None)

    def process(self, records: Sequence[Record], out: Emitter) -> None:
        t0, now = time.perf_counter(), time.time_ns()
        live = not _muted(out)
        touched: set[int] = set()
        n = 0
        for r in records:
            eng = self.engines[r.partition]
            try:  # the poison rule, per record
                got = self.intake.take(r.value, now)
            except Exception as exc:
                if self.dl_decode:
                    out.dead_letter(r, reason(exc), "decode")
                continue
            f = got.frame
            if got.refused:
                if live:
                    metrics.REFUSED.labels("features", "event_time").inc(got.refused)
                if self.dl_decode:
                    out.dead_letter(r, got.reason, "guard")
            before = eng.refused
            try:
                eng.add(f.asset, f.tags, f.ts, f.values, f.quality)
            except Exception as exc:
                log.exception("feature windows could not take a frame of %s", f.asset)
                out.dead_letter(r, reason(exc), "process")
                continue
            if eng.refused != before and live:
                metrics.REFUSED.labels("features", "state_cap").inc(eng.refused - before)
                self.capped.note("state_cap", eng.refused - before, f"asset {f.asset!r}")
            touched.add(r.partition)
            n += len(f)
        rows = [row for p in sorted(touched) for row in self.engines[p].close_ready()]
        for row in rows:
            out.send(self.dst, row.asset.encode(), fc.encode(
                row, self.spec.names, self.sizes, self.hashes.get(row.asset, "")))
        if live:
            metrics.FEATURE_ROWS.inc(len(rows))
            metrics.SAMPLES.labels("features").inc(n)
            self.m_time.observe(time.perf_counter() - t0)

    def tick(self, now_ns: int, out: Emitter) -> None:
        pass


class AnomalyOperator:
    name = "anomaly"

    def __init__(self, settings: Settings, plant: PlantConfig):
        self.s = settings
        self.plant = plant
        self.root = settings.model_dir or artifacts.default_root()
        self.registry = ModelRegistry(self.root, settings.backend)
        self.asset_types = plant.asset_types()
        self.src, self.dst = settings.topic(topics.FEATURES), settings.topic(topics.SCORES)
        self.scorers: dict[int, AnomalyScorer] = {}
        self.warned: set[str] = set()
        self.told: set[str] = set()
        self.m_time = metrics.PROCESS_SECONDS.labels("anomaly")
        self._next_poll = 0.0
        self.refresh()

    def refresh(self) -> None:
        changed = self.registry.refresh()
        for sc in self.scorers.values():
            sc.adopt(changed)
        for at, old, new in changed:
            log.info("model for %s: %s -> %s (%s)", at, old or "none", new,
                     self.registry.get(at).backend)
            metrics.MODEL_RELOADS.labels(at).inc()
            telemetry.set_model_version(at, str(new))
        missing = set(self.asset_types.values()) - set(self.registry.models)
        for at in sorted(missing - self.warned):
            log.warning("no trained model for asset type %s under %s; its assets are not "
                        "scored until `tocsin train` writes one", at, self.root)
        self.warned.update(missing)

    def inputs(self) -> list[str]:
        return [self.src]

    def restore_mode(self) -> Restore:
        """The longest sequence in base-scale ticks, plus the largest hop (the slowest
        scale's latest window), plus the margin."""
        spec = self.plant.features
        base = spec.scales[0].hop_ns / NS
        hop = max(s.hop_ns for s in spec.scales) / NS
        seq = max((m.seq_len for m in self.registry.models.values()), default=60)
        return Restore.replay(seq * base + hop + MARGIN_S)

    def open(self, partition: int, state: KeyedState) -> None:
        sc = AnomalyScorer(self.registry, self.asset_types)
        sc.adopt([(at, None, m.version) for at, m in self.registry.models.items()])
        self.scorers[partition] = sc

    def close(self, partition: int) -> None:
        self.scorers.pop(partition, None)

    def process(self, records: Sequence[Record], out: Emitter) -> None:
        t0, now = time.perf_counter(), time.time_ns()
        live = not _muted(out)
        by_part: dict[int, list] = {}
        for r in records:
            try:
                by_part.setdefault(r.partition, []).append((fc.decode(r.value)[0], r))
            except Exception as exc:
                out.dead_letter(r, reason(exc), "decode")
        n = 0
        for p, got in sorted(by_part.items()):
            sc = self.scorers[p]
            try:
                scores = sc.process([row for row, _ in got], now, score=live)
            except Exception:
                log.exception("scoring a batch of %d failed; scoring it row by row", len(got))
                scores = []
                for row, r in got:  # only the failing rows are dead letters
                    try:
                        scores += sc.process([row], now, score=live)
                    except Exception as exc:
                        out.dead_letter(r, reason(exc), "process")
            for s in scores:
                out.send(self.dst, s.asset.encode(), s.encode())
                if s.anomalous:
                    metrics.ANOMALOUS.labels(s.asset).inc()
            n += len(scores)
            for asset, why in sc.unscored.items():
                if asset not in self.told:
                    self.told.add(asset)
                    log.warning("asset %s is not scored: %s", asset, why)
        if live:
            metrics.SCORES.inc(n)
            self.m_time.observe(time.perf_counter() - t0)

    def tick(self, now_ns: int, out: Emitter) -> None:
        if now_ns / NS < self._next_poll:
            return
        if self._next_poll:  # not on the first tick: __init__ has just loaded the models
            self.refresh()
        self._next_poll = now_ns / NS + self.s.model_poll_s


def plant_operators(settings: Settings, plant: PlantConfig | None = None) -> list:
    """The operators of ``settings.agents`` that run on the runtime (features, anomaly)."""
    from tocsin.config.plant import load_plant

    plant = plant or load_plant(settings.plant_config)
    guard = TimeGuard(settings.max_future_skew_s, settings.min_event_year)
    ops: list = []
    if "features" in settings.agent_set:
        ops.append(FeaturesOperator(settings, plant, guard))
    if "anomaly" in settings.agent_set:
        ops.append(AnomalyOperator(settings, plant))
    return ops
