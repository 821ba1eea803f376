"""The threshold path as a runtime operator: plant.readings -> plant.alerts, exactly once.

Alarm state per asset (which rules are active, since when, the last value for the rate rule)
lives in KeyedState (key: asset id, value: the detector's snapshot), so a restart or a
rebalance continues every open alarm under its id (asset, rule, tag, opened_ts) and a kill
between a raise and its commit leaves neither the raise nor the state change visible: the
batch is processed again from the restored state. Poison rule as before: a frame that does
not decode, or whose processing raises, is a dead letter (stage decode / process); samples
with implausible event times are dropped and the frame dead-lettered (stage guard).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from tocsin.connectors import telemetry
from tocsin.contracts import topics
from tocsin.contracts.eventtime import TimeGuard
from tocsin.detectors.bounds import Throttled
from tocsin.detectors.intake import ReadingsIntake
from tocsin.detectors.threshold_alerts import ThresholdAlerter, alerter_from_plant
from tocsin.streams import metrics
from tocsin.streams.deadletters import reason
from tocsin.streams.runtime import Emitter, KeyedState, Record, Restore

log = logging.getLogger("tocsin.worker")


class ThresholdsOperator:
    name = "thresholds"

    def __init__(self, settings, plant):
        self.s = settings
        self.plant = plant
        self.src = settings.topic(topics.READINGS)
        self.dst = settings.topic(topics.ALERTS)
        self.alerters: dict[int, ThresholdAlerter] = {}
        self.states: dict[int, KeyedState] = {}
        guard = TimeGuard(settings.max_future_skew_s, settings.min_event_year)
        self.intake = ReadingsIntake(guard, settings.report_interval_s, "thresholds")
        self.unknown = Throttled(log, "frames of assets without limits in the plant config "
                                 "(counted in tocsin_unconfigured_asset_frames_total, not "
                                 "checked)", settings.report_interval_s)
        self.m_time = metrics.PROCESS_SECONDS.labels("thresholds")
        self.m_frames = metrics.FRAMES.labels("thresholds")
        self.m_samples = metrics.SAMPLES.labels("thresholds")
        self.m_alerts = {e: metrics.ALERTS.labels("threshold", e) for e in
                         ("raised", "updated", "acknowledged", "cleared")}
        telemetry.track_state("thresholds", lambda: sum(len(a._detectors) for a in
                                                        list(self.alerters.values())))

    def inputs(self) -> list[str]:
        return [self.src]

    def restore_mode(self) -> Restore:
        return Restore.changelog()

    def open(self, partition: int, state: KeyedState) -> None:
        alerter = alerter_from_plant(self.plant)
        for key, value in list(state.items()):
            if not alerter.restore(key.decode(), value):
                del state[key]  # an asset no longer configured: its alarms have no limits
        self.alerters[partition] = alerter
        self.states[partition] = state

    def close(self, partition: int) -> None:
        self.alerters.pop(partition, None)
        self.states.pop(partition, None)

    def process(self, records: Sequence[Record], out: Emitter) -> None:
        """The batch's frames one by one through the pure alerter; metrics are counted per
        batch (a Prometheus call per frame cost as much as the frame's decode)."""
        now = time.time_ns()
        newest: list[int] = []  # per frame: its newest sample's source time (stage latency)
        alerts: list = []
        n_frames = n_samples = 0
        t0 = time.perf_counter()
        for r in records:
            n = self._one(r, self.alerters[r.partition], out, now, newest, alerts)
            if n >= 0:
                n_frames += 1
                n_samples += n
        if n_frames:
            self.m_time.observe((time.perf_counter() - t0) / n_frames)
            self.m_frames.inc(n_frames)
            self.m_samples.inc(n_samples)
        if newest:
            telemetry.observe_latencies("worker", newest, now)
        if alerts:
            for a in alerts:
                self.m_alerts[a.event.value].inc()
            telemetry.observe_latencies("alert", [a.source_ts for a in alerts], now)
        for p, alerter in self.alerters.items():
            touched = alerter.take_touched()
            if touched:
                st = self.states[p]
                for asset in touched:
                    st[asset.encode()] = alerter.snapshot(asset)  # type: ignore[assignment]

    def _one(self, r: Record, alerter: ThresholdAlerter, out: Emitter, now: int,
             newest: list[int], alerts: list) -> int:
        """One frame; -> its samples checked (-1 when it went to the dead letters)."""
        try:  # the poison rule: any failure on one record is a dead letter, never a crash
            got = self.intake.take(r.value, now)
        except Exception as exc:
            out.dead_letter(r, reason(exc), "decode")
            return -1
        frame = got.frame
        if got.refused:
            metrics.REFUSED.labels("thresholds", "event_time").inc(got.refused)
            out.dead_letter(r, got.reason, "guard")
        n_unknown = alerter.unknown_frames
        try:
            got_alerts = alerter.process(frame, now)
        except Exception as exc:  # a bug must not stop the stream; keep the input
            log.exception("threshold processing failed for asset %s", frame.asset)
            out.dead_letter(r, reason(exc), "process")
            return -1
        if len(frame.ts):
            newest.append(int(frame.ts.max()))
        if alerter.unknown_frames != n_unknown:
            metrics.UNKNOWN_ASSETS.inc()
            self.unknown.note("frames", example=f"asset {frame.asset!r}")
        for alert in got_alerts:
            out.send(self.dst, alert.alert_id.encode(), alert.encode())
        alerts += got_alerts
        return len(frame)

    def tick(self, now_ns: int, out: Emitter) -> None:
        pass
