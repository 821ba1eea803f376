"""The features and anomaly agents: thin shells around the window engine and the scorer.

features: plant.readings -> :class:`WindowEngine` -> plant.features (one message per asset
and boundary). It takes readings in batches (size or wait limit) so that closing windows runs
as a few large numpy operations across assets. Undecodable frames are dead-lettered by the
thresholds agent when it runs, else here, never twice.

anomaly: plant.features -> :class:`AnomalyScorer` (the newest model per asset type, one
batched model call per asset type per batch) -> plant.scores. A timer looks for new model
versions and swaps them in without a restart; the per-asset sequence state is kept.
"""

from __future__ import annotations

import logging
import time

import faust

from tocsin.config.plant import PlantConfig
from tocsin.config.worker import Settings
from tocsin.connectors import telemetry
from tocsin.contracts import features as fc
from tocsin.contracts.eventtime import TimeGuard
from tocsin.detectors.bounds import Throttled
from tocsin.detectors.intake import ReadingsIntake
from tocsin.detectors.windows import WindowEngine
from tocsin.models import artifacts
from tocsin.models.scoring import AnomalyScorer, ModelRegistry
from tocsin.streams import metrics
from tocsin.streams.deadletters import reason

log = logging.getLogger("tocsin.worker")


def add_feature_agents(app: faust.App, settings: Settings, plant: PlantConfig, readings,
                       features_topic, scores_topic, dead_letter, producer_send,
                       guard: TimeGuard = TimeGuard()) -> None:
    spec = plant.features
    asset_tags = plant.asset_tags()
    agents = settings.agent_set
    sizes = {s.name: s.size_ns for s in spec.scales}
    hashes = {a: spec.hash(t) for a, t in asset_tags.items()}
    features_name = settings.topic("plant.features")
    scores_name = settings.topic("plant.scores")

    if "features" in agents:
        engine = WindowEngine(spec, asset_tags, max_unknown_assets=settings.max_unknown_assets,
                              max_tags=settings.max_tags_per_asset)
        intake = ReadingsIntake(guard, settings.report_interval_s, "features")
        capped = Throttled(log, "features: samples refused by a state bound (unknown assets "
                           f"beyond {settings.max_unknown_assets}, or tags beyond "
                           f"{settings.max_tags_per_asset} per asset)",
                           settings.report_interval_s)
        m_rows = metrics.FEATURE_ROWS
        m_time = metrics.PROCESS_SECONDS.labels("features")
        m_refused = metrics.REFUSED
        dl_here = "thresholds" not in agents

        @app.agent(readings, name="features")
        async def features(stream):
            async for events in stream.take_events(settings.batch_max, settings.batch_wait_s):
                t0 = time.perf_counter()
                now = time.time_ns()
                n = 0
                for event in events:
                    try:  # the poison rule, per record (see app.py)
                        got = intake.take(event.value, now)
                    except Exception as exc:
                        if dl_here:
                            await dead_letter(event, reason(exc), "decode")
                        continue
                    f = got.frame
                    if got.refused:
                        m_refused.labels("features", "event_time").inc(got.refused)
                        if dl_here:
                            await dead_letter(event, got.reason, "guard")
                    try:
                        before = engine.refused
                        engine.add(f.asset, f.tags, f.ts, f.values, f.quality)
                    except Exception as exc:
                        log.exception("feature windows could not take a frame of %s", f.asset)
                        await dead_letter(event, reason(exc), "process")
                        continue
                    if engine.refused != before:
                        m_refused.labels("features", "state_cap").inc(engine.refused - before)
                        capped.note("state_cap", engine.refused - before,
                                    f"asset {f.asset!r}")
                    n += len(f)
                try:
                    rows = engine.close_ready()
                except Exception:  # a bug must not stop the stream; the windows are lost
                    log.exception("closing feature windows failed")
                    continue
                for row in rows:
                    st = engine.stats(row.asset)
                    await producer_send(features_name, row.asset.encode(), fc.encode(
                        row, engine.names, sizes, hashes.get(row.asset, ""), st["late"]))
                m_rows.inc(len(rows))
                metrics.SAMPLES.labels("features").inc(n)
                m_time.observe(time.perf_counter() - t0)

    if "anomaly" in agents:
        root = settings.model_dir or artifacts.default_root()
        scorer = AnomalyScorer(ModelRegistry(root, settings.backend), plant.asset_types())
        m_time = metrics.PROCESS_SECONDS.labels("anomaly")
        warned: set[str] = set()

        def refresh() -> None:
            for at, old, new in scorer.refresh():
                log.info("model for %s: %s -> %s (%s)", at, old or "none", new,
                         scorer.registry.get(at).backend)
                metrics.MODEL_RELOADS.labels(at).inc()
                telemetry.set_model_version(at, str(new))
            missing = set(plant.asset_types().values()) - set(scorer.registry.models)
            for at in sorted(missing - warned):
                log.warning("no trained model for asset type %s under %s; its assets are not "
                            "scored until `tocsin train` writes one", at, root)
            warned.update(missing)

        refresh()  # before the first message; logging is not set up yet, so say it again:

        @app.task
        async def report_models():
            for at, m in sorted(scorer.registry.models.items()):
                log.info("model for %s: %s (%s) from %s", at, m.version, m.backend, root)
            for at in sorted(warned):
                log.warning("no trained model for asset type %s under %s; its assets are not "
                            "scored until `tocsin train` writes one", at, root)

        @app.timer(interval=settings.model_poll_s)
        async def reload_models():
            refresh()

        told: set[str] = set()

        def tell_unscored() -> None:
            for asset, why in scorer.unscored.items():
                if asset not in told:
                    told.add(asset)
                    log.warning("asset %s is not scored: %s", asset, why)

        @app.agent(features_topic, name="anomaly")
        async def anomaly(stream):
            async for events in stream.take_events(settings.batch_max, settings.batch_wait_s):
                t0 = time.perf_counter()
                rows = []
                kept = []
                for event in events:
                    try:
                        rows.append(fc.decode(event.value)[0])
                        kept.append(event)
                    except Exception as exc:
                        await dead_letter(event, reason(exc), "decode")
                now = time.time_ns()
                try:
                    out = scorer.process(rows, now)
                except Exception:
                    log.exception("scoring a batch of %d failed; scoring it row by row",
                                  len(rows))
                    out = []
                    for row, event in zip(rows, kept):  # only the failing rows are dead letters
                        try:
                            out += scorer.process([row], now)
                        except Exception as exc:
                            await dead_letter(event, reason(exc), "process")
                if len(scorer.unscored) != len(told):
                    tell_unscored()
                for s in out:
                    await producer_send(scores_name, s.asset.encode(), s.encode())
                    if s.anomalous:
                        metrics.ANOMALOUS.labels(s.asset).inc()
                metrics.SCORES.inc(len(out))
                m_time.observe(time.perf_counter() - t0)
