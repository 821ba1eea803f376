"""The model half of the terminal stage: a batch of feature rows -> scores and alerts.

Holds the deployed model (reloaded when the registry deploys a new version: ``meta.json``'s
version is checked at most every ``reload_every_s``), its thresholds, the load-aware light/full
switch (:mod:`tocsin.detectors.fraud_routing`) and the training-range check. Pure of Kafka:
it returns ``(topic, key, value)`` records for the stage to send.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import orjson

from tocsin.config.payments import FraudSettings
from tocsin.contracts.alerts import Alert, AlertEvent, Severity, alert_id
from tocsin.contracts.payments import FraudScore, Transaction
from tocsin.detectors.fraud_drift import FeatureRange
from tocsin.detectors.fraud_features import FEATURES
from tocsin.detectors.fraud_routing import LoadAwareSwitch, LoadSample, SwitchConfig
from tocsin.models.fraud_serving import FraudModel, decide
from tocsin.streams import metrics
from tocsin.streams.payments_load import LoadProbe

log = logging.getLogger("tocsin.payments")


class Scorer:
    def __init__(self, fs: FraudSettings, scores_topic: str, alerts_topic: str,
                 reload_every_s: float = 5.0):
        self.fs = fs
        self.scores_topic, self.alerts_topic = scores_topic, alerts_topic
        self.switch = LoadAwareSwitch(SwitchConfig(
            budget_ms=fs.budget_ms, high=fs.switch_high, low=fs.switch_low,
            trip_after=fs.trip_after, recover_s=fs.recover_s))
        self.probe = LoadProbe()
        self.alert_rank = {"review": 1, "decline": 2}[fs.alert_on]
        self.reload_every_s = reload_every_s
        self._checked = time.monotonic()
        self._range_log = self._status = 0.0
        self._load(FraudModel(fs.model_dir, fs.backend, fs.threads))

    def _load(self, model: FraudModel) -> None:
        fs = self.fs
        self.model = model
        self.review = fs.review_threshold if fs.review_threshold is not None else model.review
        self.decline = (fs.decline_threshold if fs.decline_threshold is not None
                        else model.decline)
        self.ranges = FeatureRange.from_meta(model.meta)
        from tocsin.connectors import telemetry

        telemetry.set_model_version("fraud", str(model.version))

    def maybe_reload(self) -> None:
        """Hot reload: a newly deployed version (``tocsin payments deploy``) is picked up
        between batches; a broken artifact keeps the running model (logged)."""
        mono = time.monotonic()
        if mono - self._checked < self.reload_every_s:
            return
        self._checked = mono
        try:
            meta = orjson.loads((Path(self.fs.model_dir) / "meta.json").read_bytes())
            if meta.get("version") == self.model.version:
                return
            self._load(FraudModel(self.fs.model_dir, self.fs.backend, self.fs.threads))
            log.info("fraud model reloaded: version %s", self.model.version)
        except Exception as exc:
            log.error("fraud model not reloaded (keeping %s): %r", self.model.version, exc)

    def score(self, txns: list[Transaction], tab: np.ndarray, seq: np.ndarray,
              pad: np.ndarray, lag: int = 0) -> list[tuple[str, bytes, bytes]]:
        """Scores (and alerts) of one batch, in order."""
        fs = self.fs
        if self.ranges is not None:
            self._check_ranges(tab)
        branch = fs.force_branch or self.switch.branch
        t_start = time.time_ns()
        t0 = time.perf_counter()
        prob, gate = self.model.score(tab, seq, pad, branch)
        model_ms = (time.perf_counter() - t0) * 1e3
        decisions = decide(prob, self.review, self.decline)
        now = time.time_ns()
        n = len(txns)
        out: list[tuple[str, bytes, bytes]] = []
        version = self.model.version
        oldest = now
        counts: dict[str, int] = {}
        observe = metrics.FRAUD_LATENCY.observe
        for k, t in enumerate(txns):
            p = float(prob[k])
            arrived = t.ingest_ts or now
            oldest = min(oldest, arrived)
            lat = (now - arrived) / 1e6
            d = decisions[k]
            sc = FraudScore(t.txn_id, t.card_id, t.terminal_id, p, d, branch, version, t.ts,
                            t.ingest_ts, now, lat, n, None if gate is None else float(gate[k]))
            out.append((self.scores_topic, t.card_id.encode(), sc.encode()))
            counts[d] = counts.get(d, 0) + 1
            observe(lat / 1e3)
            rank = 2 if d == "decline" else 1 if d == "review" else 0
            if rank >= self.alert_rank:
                out.append(self._alert(t, p, d, rank, branch, now))
        for d, c in counts.items():  # one labels() lookup per decision and batch
            metrics.FRAUD_SCORED.labels(branch, d).inc(c)
        metrics.FRAUD_BATCH.observe(n)
        if fs.force_branch is None:
            self._observe(n, (t_start - oldest) / 1e6, lag, model_ms, branch)
        return out

    def _alert(self, t: Transaction, p: float, d: str, rank: int, branch: str, now: int):
        al = Alert(alert_id(t.card_id, "fraud", d, "score", t.ts), AlertEvent.RAISED,
                   t.card_id, "fraud", d, "score",
                   Severity.CRITICAL if rank == 2 else Severity.WARNING, p,
                   self.decline if rank == 2 else self.review, t.ts, t.ts, now,
                   f"card {t.card_id} {t.amount:.2f} {t.currency} at {t.terminal_id}: "
                   f"fraud score {p:.3f} ({d}, {branch} branch)",
                   {"txn_id": t.txn_id, "terminal_id": t.terminal_id, "amount": t.amount,
                    "branch": branch, "model_version": self.model.version})
        return (self.alerts_topic, al.alert_id.encode(), al.encode())

    def _observe(self, n: int, wait_ms: float, lag: int, model_ms: float, branch: str) -> None:
        sw = self.switch
        cpu, gpu = self.probe.sample()
        before = sw.branch
        mono = time.monotonic()
        after = sw.observe(LoadSample(mono, n, wait_ms, lag, model_ms, branch, cpu, gpu))
        if mono - self._status > self.fs.status_every_s:
            self._status = mono
            log.info("switch: %s, predicted %.1f ms (wait %.1f ms, lag %d, cpu %.0f%%, "
                     "full %.3f ms/txn)", after, sw.predicted_ms, sw.wait_ms, lag, cpu * 100,
                     sw.full_ms_per_txn)
        if after != before:
            metrics.FRAUD_SWITCHES.labels(after).inc()
            log.info("switch: %s -> %s (predicted %.1f ms, budget %.0f ms)", before, after,
                     sw.predicted_ms, self.fs.budget_ms)

    def _check_ranges(self, tab: np.ndarray) -> None:
        counts = self.ranges.check(tab)
        if not counts.any():
            return
        for i in counts.nonzero()[0]:
            metrics.FRAUD_OUT_OF_RANGE.labels(FEATURES[i]).inc(int(counts[i]))
        mono = time.monotonic()
        if mono - self._range_log > 60.0:  # once a minute, not once per transaction
            self._range_log = mono
            worst = ", ".join(
                f"{k} ({'changed, constant in training' if v == float('inf') else f'{v:.0f} SD'})"
                for k, v in self.ranges.worst(tab).items())
            log.warning("features outside the training range (> 50 SD from the training mean): "
                        "%s; totals so far in tocsin_fraud_feature_out_of_range_total", worst)
