"""The payments Faust app: transactions -> online features (Faust table) -> hybrid model in
micro-batches, routed by the load-aware switch -> payments.scores (+ payments.alerts).

Thin shell: the features (`detectors/fraud_features.py`), the switch
(`detectors/fraud_routing.py`) and the model (`models/fraud_serving.py`) are pure; this module
decodes, moves state in and out of the table, and sends.

State: one table, ``fraud-state``, keyed ``c:<card>`` and ``t:<terminal>``, values are the
feature state as JSON. Its changelog makes it survive restarts. The table uses the key's own
partition (``use_partitioner``) because transactions are keyed by card while terminal state is
keyed by terminal: with one worker (all partitions) every state is local; several workers would
need a repartition by terminal first (not built). Labels (``payments.labels``, keyed by
terminal) are parked in the terminal's state and count only from their ``reported_ts`` on.

Batching: ``take_events(batch_max, within=batch_wait)``. Scores, alerts and state records
leave through :class:`~tocsin.streams.payments_out.OutputWriter`, which Faust's commit waits
for (at-least-once; see that module for why not Faust's own producer on this path). Decoded
states are cached in the process (this worker is their only writer) so a busy card is not
parsed again for every transaction.
"""

from __future__ import annotations

import logging
import time

import faust
import orjson

from tocsin.config.ingest_security import load_pan_key
from tocsin.config.kafka_security import kafka_security
from tocsin.config.payments import FraudSettings
from tocsin.config.worker import Settings
from tocsin.connectors import kafka_admin, telemetry
from tocsin.connectors.ingest_guard import Throttled
from tocsin.contracts import topics
from tocsin.contracts.alerts import Alert, AlertEvent, Severity, alert_id
from tocsin.contracts.eventtime import TimeGuard
from tocsin.contracts.pan import looks_like_pan, tokenize
from tocsin.contracts.payments import FraudLabel, FraudScore, Transaction
from tocsin.detectors.fraud_drift import FeatureRange
from tocsin.detectors.fraud_features import FEATURES, FraudFeatures, new_state
from tocsin.detectors.fraud_routing import LoadAwareSwitch, LoadSample, SwitchConfig
from tocsin.models.fraud_serving import FraudModel, decide
from tocsin.streams import metrics
from tocsin.streams.app import raw_topic
from tocsin.streams.deadletters import dead_letterer, reason
from tocsin.streams.observe import instrument
from tocsin.streams.payments_load import LoadProbe
from tocsin.streams.payments_out import OutputWriter

log = logging.getLogger("tocsin.payments")
_CACHE_MAX = 500_000  # decoded states kept; beyond this the cache starts over


class _TableStates(dict):
    """A dict view of one kind of state in the table: loads on first access per batch;
    ``flush`` updates the local table and sends each changed state to its changelog once."""

    def __init__(self, table, prefix: bytes, out, changelog: str, cache: dict):
        super().__init__()
        self.table, self.prefix, self.out, self.changelog = table, prefix, out, changelog
        self.cache = cache

    def __missing__(self, key):  # dict.get does not call this; FraudFeatures uses get
        raise KeyError(key)

    def get(self, key, default=None):
        if dict.__contains__(self, key):
            return dict.__getitem__(self, key)
        k = self.prefix + key.encode()
        st = self.cache.get(k)
        if st is None:
            raw = self.table.get(k)
            if raw is None:
                return default
            st = orjson.loads(raw)
        dict.__setitem__(self, key, st)
        return st

    def flush(self) -> None:
        data = self.table.data  # the local store; the changelog record is sent here
        cache = self.cache
        if len(cache) > _CACHE_MAX:
            cache.clear()
        for key, st in self.items():
            k, v = self.prefix + key.encode(), orjson.dumps(st)
            data[k] = v
            cache[k] = st
            self.out.send(self.changelog, k, v)
        self.clear()


def create_payments_app(settings: Settings, fs: FraudSettings,
                        pan_key: bytes | None = None) -> faust.App:
    # the PAN key, for card numbers a direct producer put in card_id (refuses to start
    # without one outside development mode, like the ingest)
    pan_key = pan_key or load_pan_key()
    pan_seen = Throttled("payments worker: card numbers in card_id tokenised (they are in "
                         "clear on the input topic: fix the producer)")
    model = FraudModel(fs.model_dir, fs.backend, fs.threads)
    review = fs.review_threshold if fs.review_threshold is not None else model.review
    decline = fs.decline_threshold if fs.decline_threshold is not None else model.decline
    alert_rank = {"review": 1, "decline": 2}[fs.alert_on]
    app = faust.App(
        f"{settings.app_id}-payments-{settings.topic_prefix}".rstrip("-"),
        **kafka_security().faust(),
        broker=settings.kafka_url, datadir=str(settings.data_dir), web_enabled=False,
        # 1 ms linger: a micro-batch's scores and changelog writes leave as one request per
        # partition instead of one small write each (the socket writes were the top cost)
        producer_linger=0.001, producer_acks=-1, topic_partitions=settings.partitions,
        topic_replication_factor=kafka_admin.replication_factor(settings.broker, settings.replication),
        broker_commit_interval=1.0, stream_wait_empty=False,
        consumer_auto_offset_reset="earliest", table_cleanup_interval=3600.0,
        # the table's changelog is recovered with the app's serializers: raw bytes both ways
        key_serializer="raw", value_serializer="raw",
    )
    P = settings.partitions
    txn_topic = raw_topic(app, settings.topic(topics.TRANSACTIONS), P)
    label_topic = raw_topic(app, settings.topic(topics.PAY_LABELS), P)
    deadletter = raw_topic(app, settings.topic(topics.DEADLETTER), P)
    scores_name = settings.topic(topics.PAY_SCORES)
    alerts_name = settings.topic(topics.PAY_ALERTS)
    # bytes in and out (raw), so recovered keys equal written keys
    # (Faust picks the changelog's serializers from key_type/value_type: bytes -> raw)
    table = app.Table("fraud-state", default=None, partitions=P, use_partitioner=True,
                      key_type=bytes, value_type=bytes,
                      schema=faust.Schema(key_type=bytes, value_type=bytes,
                                          key_serializer="raw", value_serializer="raw"))
    switch = LoadAwareSwitch(SwitchConfig(budget_ms=fs.budget_ms, high=fs.switch_high,
                                          low=fs.switch_low, trip_after=fs.trip_after,
                                          recover_s=fs.recover_s))
    probe = LoadProbe()
    ranges = FeatureRange.from_meta(model.meta)  # None for artifacts without training stats
    range_log = [0.0]
    status = [0.0]  # monotonic time of the last status log line
    worker = settings.worker_name

    dead_letter = dead_letterer(deadletter, worker, settings.deadletter_max_payload,
                                settings.report_interval_s, mask_pans=True)
    guard = TimeGuard(settings.max_future_skew_s, settings.min_event_year)

    out = OutputWriter(settings.broker)
    send = out.send
    cache: dict = {}

    @app.task
    async def _hook_commit() -> None:
        out.hook_commit(app.producer)

    def lag_of(events) -> int:
        last: dict = {}
        for e in events:
            last[e.message.tp] = e.message.offset
        lag = 0
        for tp, off in last.items():
            try:
                hw = app.consumer.highwater(tp)
            except Exception:
                continue
            if hw is not None:
                lag += max(int(hw) - off - 1, 0)
        return lag

    def check_ranges(tab) -> None:
        counts = ranges.check(tab)
        if not counts.any():
            return
        for i in counts.nonzero()[0]:
            metrics.FRAUD_OUT_OF_RANGE.labels(FEATURES[i]).inc(int(counts[i]))
        mono = time.monotonic()
        if mono - range_log[0] > 60.0:  # once a minute, not once per transaction
            range_log[0] = mono
            worst = ", ".join(
                f"{k} ({'changed, constant in training' if v == float('inf') else f'{v:.0f} SD'})"
                for k, v in ranges.worst(tab).items())
            log.warning("features outside the training range (> 50 SD from the training mean): "
                        "%s; totals so far in tocsin_fraud_feature_out_of_range_total", worst)

    async def score_batch(events) -> None:
        t_start = time.time_ns()
        txns, kept = [], []
        for e in events:
            try:  # the poison rule: any failure on one record is a dead letter
                t = Transaction.decode(e.value, t_start, guard)
                if looks_like_pan(t.card_id):
                    t.card_id = tokenize(t.card_id.replace(" ", "").replace("-", ""), pan_key)
                    pan_seen.hit(f"{e.message.topic}[{e.message.partition}]")
                txns.append(t)
                kept.append(e)
            except Exception as exc:
                await dead_letter(e, reason(exc), "decode")
        if not txns:
            return
        try:
            await score_decoded(kept, txns, t_start)
        except Exception:
            log.exception("scoring a batch of %d failed; scoring it one by one", len(txns))
            for e, t in zip(kept, txns):  # only the failing transactions are dead letters
                try:
                    await score_decoded([e], [t], t_start)
                except Exception as exc:
                    await dead_letter(e, reason(exc), "process")

    async def score_decoded(kept, txns, t_start: int) -> None:
        arrived = [t.ingest_ts or int(e.message.timestamp * 1e9) for t, e in zip(txns, kept)]
        wait_ms = (t_start - min(arrived)) / 1e6
        changelog = table.changelog_topic.get_topic_name()
        cards = _TableStates(table, b"c:", out, changelog, cache)
        terms = _TableStates(table, b"t:", out, changelog, cache)
        ff = FraudFeatures(cards, terms)
        tab, seq, pad, errors = ff.transform(txns)
        cards.flush()
        terms.flush()
        bad = {i for i, _ in errors}
        for i, why in errors:
            await dead_letter(kept[i], why, "process")
        if bad:
            ok = [i for i in range(len(txns)) if i not in bad]
            txns = [txns[i] for i in ok]
            arrived = [arrived[i] for i in ok]
            tab, seq, pad = tab[ok], seq[ok], pad[ok]
        if not txns:
            return
        if ranges is not None:
            check_ranges(tab)
        branch = fs.force_branch or switch.branch
        t0 = time.perf_counter()
        prob, gate = model.score(tab, seq, pad, branch)
        model_ms = (time.perf_counter() - t0) * 1e3
        decisions = decide(prob, review, decline)
        now = time.time_ns()
        n = len(txns)
        for k, t in enumerate(txns):
            p = float(prob[k])
            lat = (now - arrived[k]) / 1e6
            sc = FraudScore(t.txn_id, t.card_id, t.terminal_id, p, decisions[k], branch,
                            model.version, t.ts, t.ingest_ts, now, lat, n,
                            None if gate is None else float(gate[k]))
            send(scores_name, t.card_id.encode(), sc.encode())
            metrics.FRAUD_SCORED.labels(branch, decisions[k]).inc()
            metrics.FRAUD_LATENCY.observe(lat / 1e3)
            rank = 2 if decisions[k] == "decline" else 1 if decisions[k] == "review" else 0
            if rank >= alert_rank:
                al = Alert(alert_id(t.card_id, "fraud", decisions[k], "score", t.ts),
                           AlertEvent.RAISED, t.card_id, "fraud", decisions[k], "score",
                           Severity.CRITICAL if rank == 2 else Severity.WARNING, p,
                           decline if rank == 2 else review, t.ts, t.ts, now,
                           f"card {t.card_id} {t.amount:.2f} {t.currency} at {t.terminal_id}: "
                           f"fraud score {p:.3f} ({decisions[k]}, {branch} branch)",
                           {"txn_id": t.txn_id, "terminal_id": t.terminal_id,
                            "amount": t.amount, "branch": branch,
                            "model_version": model.version})
                send(alerts_name, al.alert_id.encode(), al.encode())
        metrics.FRAUD_BATCH.observe(n)
        out.poll()  # handed to librdkafka; Faust's commit waits for the acks (hook_commit)
        if fs.force_branch is None:
            cpu, gpu = probe.sample()
            before = switch.branch
            lag = lag_of(kept)
            mono = time.monotonic()
            after = switch.observe(LoadSample(mono, n, wait_ms, lag, model_ms, branch, cpu, gpu))
            if mono - status[0] > fs.status_every_s:
                status[0] = mono
                log.info("switch: %s, predicted %.1f ms (wait %.1f ms, lag %d, cpu %.0f%%, "
                         "full %.3f ms/txn)", after, switch.predicted_ms, switch.wait_ms, lag,
                         cpu * 100, switch.full_ms_per_txn)
            if after != before:
                metrics.FRAUD_SWITCHES.labels(after).inc()
                log.info("switch: %s -> %s (predicted %.1f ms, budget %.0f ms)", before,
                         after, switch.predicted_ms, fs.budget_ms)

    if fs.naive:
        @app.agent(txn_topic, name="fraud-scorer")
        async def scorer_naive(stream):
            async for event in stream.events():
                await score_batch([event])
    else:
        @app.agent(txn_topic, name="fraud-scorer")
        async def scorer(stream):
            async for events in stream.take_events(fs.batch_max, fs.batch_wait_ms / 1e3):
                await score_batch(events)

    @app.agent(label_topic, name="fraud-labels")
    async def labels(stream):
        async for event in stream.events():
            try:  # the poison rule (see score_batch)
                lab = FraudLabel.decode(event.value)
            except Exception as exc:
                await dead_letter(event, reason(exc), "decode")
                continue
            tkey = b"t:" + lab.terminal_id.encode()
            try:
                st = cache.get(tkey)
                if st is None:
                    raw = table.get(tkey)
                    st = orjson.loads(raw) if raw is not None else new_state()
                FraudFeatures(terms={lab.terminal_id: st}).add_label(lab)
            except Exception as exc:
                log.exception("label for terminal %s not taken", lab.terminal_id)
                await dead_letter(event, reason(exc), "process")
                continue
            value = orjson.dumps(st)
            table.data[tkey] = value
            cache[tkey] = st
            out.send(table.changelog_topic.get_topic_name(), tkey, value)
            out.poll()

    app.tocsin_settings = settings  # type: ignore[attr-defined]
    app.tocsin_switch = switch  # type: ignore[attr-defined]
    instrument(app, topic_prefix=settings.topic_prefix)
    telemetry.set_model_version("fraud", str(model.version))
    return app
