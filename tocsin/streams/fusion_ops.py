"""The fusion stage on the exactly-once runtime: a route and the fusion operator.

The fusion state is per asset, but its inputs are keyed differently (scores by asset,
threshold alerts and acks by alert id), and the runtime keeps state per input partition of
ONE input topic. So ``fusion-route`` (stateless) reads ``plant.scores``, ``plant.alerts``
(threshold alerts only: fused ones are our own output) and ``plant.alerts.acks`` and writes
each, tagged with its kind, to the through topic ``plant.fusion.in`` keyed by asset; the
``fusion`` operator reads that one topic. The route's order is committed with its output,
so the fusion operator sees the same interleaving of alerts and ticks after any restart: its
output is a function of the through topic alone.

``fusion`` keeps one :class:`FusionEngine` for the partitions it holds, and after each batch
writes the state of every asset it touched (:mod:`tocsin.detectors.fusion_state`) to its
KeyedState: Restore.changelog(). Outputs: lifecycle events on ``plant.alerts`` (key = alert
id) and the newest event of each open alert on the compacted ``plant.alerts.open`` (a
tombstone on clear), in the same transaction as the state and the input offsets. A newer
trained network is loaded in a thread and swapped in at a tick.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from prometheus_client import Histogram

from tocsin.config.worker import Settings
from tocsin.connectors import telemetry
from tocsin.contracts import topics
from tocsin.contracts.acks import Ack
from tocsin.contracts.alerts import Alert, AlertEvent
from tocsin.contracts.scores import Scores
from tocsin.detectors.bounds import Throttled
from tocsin.detectors.fusion import FusionEngine
from tocsin.detectors.fusion_state import drop_asset, dump_asset, load_asset
from tocsin.errors import TocsinError
from tocsin.streams import metrics
from tocsin.streams.deadletters import reason
from tocsin.streams.runtime.operator import Emitter, Record, Restore, Stateless
from tocsin.streams.runtime.state import KeyedState

log = logging.getLogger("tocsin.fusion")
FUSE_SECONDS = Histogram("tocsin_fusion_tick_seconds", "Fusion time per score tick (join, "
                         "inference, lifecycle)", buckets=(2e-5, 5e-5, 1e-4, 2.5e-4, 1e-3,
                                                           5e-3, 2.5e-2))
FUSION_IN = "plant.fusion.in"
_SCORES, _ALERT, _ACK = b"s", b"a", b"k"


class FusionRoute(Stateless):
    """plant.scores + plant.alerts + plant.alerts.acks -> plant.fusion.in, keyed by asset."""

    name = "fusion-route"

    def __init__(self, settings: Settings):
        self.scores, self.alerts = settings.topic(topics.SCORES), settings.topic(topics.ALERTS)
        self.acks, self.dst = settings.topic(topics.ALERT_ACKS), settings.topic(FUSION_IN)

    def inputs(self) -> list[str]:
        return [self.scores, self.alerts, self.acks]

    def process(self, records: Sequence[Record], out: Emitter) -> None:
        for r in records:
            try:  # the poison rule: a record that does not decode is a dead letter
                if r.topic == self.scores:
                    asset, kind = Scores.decode(r.value).asset, _SCORES
                elif r.topic == self.alerts:
                    a = Alert.decode(r.value)
                    if a.kind != "threshold":
                        continue  # fused alerts are this stage's own output
                    asset, kind = a.asset, _ALERT
                else:
                    asset, kind = Ack.decode(r.value).alert_id.rpartition(":")[0], _ACK
            except Exception as exc:
                out.dead_letter(r, reason(exc), "decode")
                continue
            out.send(self.dst, asset.encode(), kind + r.value)


class FusionOperator:
    name = "fusion"

    def __init__(self, settings: Settings, engine: FusionEngine, watch: Path | None = None,
                 current: str | None = None):
        self.s = settings
        self.engine = engine
        self.src = settings.topic(FUSION_IN)
        self.alerts, self.open_ = settings.topic(topics.ALERTS), settings.topic(
            topics.ALERTS_OPEN)
        self.states: dict[int, KeyedState] = {}
        self.part_of: dict[str, int] = {}  # asset -> the partition it lives in
        self.m_alerts = {e.value: metrics.ALERTS.labels("fusion", e.value) for e in AlertEvent}
        self.skipped = Throttled(log, "score ticks skipped (no fusion network for the asset "
                                 f"type, or beyond {settings.max_unknown_assets} assets outside "
                                 "the plant config)", settings.report_interval_s)
        self._seen = [0, 0]
        self.watch, self._loaded, self._failed = watch, current, None
        self._loading: threading.Thread | None = None
        self._new_model = None
        self._next_poll = 0.0
        telemetry.set_model_version("fusion", str(engine.model.version))
        telemetry.track_state("fusion", lambda: len(engine._state))

    def inputs(self) -> list[str]:
        return [self.src]

    def restore_mode(self) -> Restore:
        return Restore.changelog()

    def open(self, partition: int, state: KeyedState) -> None:
        self.states[partition] = state
        for value in state.values():
            self.part_of[load_asset(self.engine, value)] = partition
        if len(state):
            log.info("fusion: partition %d restored, %d asset(s), open alerts: %s", partition,
                     len(state), sorted(filter(None, (self.engine.open_alert(a) for a, p in
                                                      self.part_of.items() if p == partition))))

    def close(self, partition: int) -> None:
        self.states.pop(partition, None)
        for asset in [a for a, p in self.part_of.items() if p == partition]:
            drop_asset(self.engine, asset)
            del self.part_of[asset]

    def process(self, records: Sequence[Record], out: Emitter) -> None:
        touched: dict[str, int] = {}
        for r in records:
            kind, body = r.value[:1], r.value[1:]
            try:
                emitted = self._one(kind, body)
            except Exception as exc:  # the poison rule: the record is a dead letter
                log.exception("fusion failed on a %r record", kind)
                out.dead_letter(r, reason(exc), "process")
                continue
            asset = (r.key or b"").decode()
            if asset in self.engine._state:
                touched[asset] = r.partition
            for a in emitted:
                self._emit(a, out)
        for asset, p in touched.items():
            self.part_of[asset] = p
            self.states[p][asset.encode()] = dump_asset(self.engine, asset)

    def _one(self, kind: bytes, body: bytes) -> list[Alert]:
        now = time.time_ns()
        if kind == _SCORES:
            s = Scores.decode(body)
            t0 = time.perf_counter()
            got = self.engine.on_scores(s, now)
            FUSE_SECONDS.observe(time.perf_counter() - t0)
            self._note_skips(s)
            return got
        if kind == _ALERT:
            self.engine.on_threshold(Alert.decode(body))
            return []
        if kind == _ACK:
            ack = Ack.decode(body)
            got = self.engine.on_ack(ack, now)
            if not got:
                log.warning("ack of %s by %s changed nothing (not open, or already acked)",
                            ack.alert_id, ack.user)
            return got
        raise TocsinError(f"{FUSION_IN}: unknown record kind {kind!r}")

    def _note_skips(self, s: Scores) -> None:
        e = self.engine
        if e.skipped != self._seen[0]:
            self._seen[0] = e.skipped
            self.skipped.note("no_network", example=f"asset {s.asset!r} type {s.asset_type!r}")
        if e.refused != self._seen[1]:
            self.skipped.note("over_cap", e.refused - self._seen[1], f"asset {s.asset!r}")
            self._seen[1] = e.refused

    def _emit(self, a: Alert, out: Emitter) -> None:
        key, data = a.alert_id.encode(), a.encode()
        out.send(self.alerts, key, data)
        out.send(self.open_, key, None if a.event is AlertEvent.CLEARED else data)  # type: ignore[arg-type]
        self.m_alerts[a.event.value].inc()
        telemetry.observe_latency("fusion", a.source_ts)
        log.info("%s %s %s", a.event.value, a.alert_id, a.message)

    # ------------------------------------------------------------------ hot reload
    def tick(self, now_ns: int, out: Emitter) -> None:
        if self._new_model is not None:
            model, path, self._new_model = self._new_model[0], self._new_model[1], None
            old = self.engine.model.version
            self.engine.set_model(model)
            telemetry.set_model_version("fusion", str(model.version))
            metrics.MODEL_RELOADS.labels("fusion").inc()
            self._loaded = path
            log.info("fusion network %s -> %s (%s)", old, model.version, path)
        if self.watch is None or now_ns / 1e9 < self._next_poll or self._loading is not None:
            return
        self._next_poll = now_ns / 1e9 + self.s.model_poll_s
        from tocsin.models import fusion_store

        newest = fusion_store.newest(self.watch.parent)
        if newest is None or str(newest) in (self._loaded, self._failed):
            return
        self._loading = threading.Thread(target=self._load, args=(newest,), daemon=True,
                                         name="fusion-network-load")
        self._loading.start()

    def _load(self, path: Path) -> None:
        """Precomputing the posterior tables takes seconds: off the runner's thread."""
        from tocsin.streams.fusion_app import load_network

        try:
            self._new_model = (load_network(path), str(path))
        except TocsinError as exc:
            self._failed = str(path)  # do not retry the same file every poll
            log.error("fusion network %s not loaded, keeping %s: %s", path,
                      self.engine.model.version, exc)
        finally:
            self._loading = None
