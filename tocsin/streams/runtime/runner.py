"""The runner: one operator, one consumer group, one transactional producer, one thread.

Loop (exactly_once): take what is queued (at least one record, waiting at most
``runtime_idle_wait_s``; at most ``batch_max``: the batch grows with the backlog, so the cost
of a commit is spread over more records exactly when load is high) -> ``process`` -> begin
transaction -> produce outputs and changelog writes -> send the input offsets with the
group's metadata (EOS v2, KIP-447) -> commit. No transaction is open while the consumer is
polled, so a rebalance callback never has to finish one. A failed commit aborts and rewinds
the state and positions to the last commit; a fenced producer (another worker owns our
transactional id) or a fenced static member stops the runner: a zombie must not go on.
at_least_once: the same loop with a flush and a synchronous offset commit instead.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from tocsin.config.kafka_security import client_conf
from tocsin.connectors import telemetry
from tocsin.contracts import topics
from tocsin.errors import ServiceError
from tocsin.streams import metrics
from tocsin.streams.deadletters import reason
from tocsin.streams.runtime import naming
from tocsin.streams.runtime.assignment import Assignment
from tocsin.streams.runtime.emitter import BatchEmitter
from tocsin.streams.runtime.operator import Operator, Record
from tocsin.streams.runtime.restore import Restorer

log = logging.getLogger("tocsin.runtime")

_FATAL_CONSUMER = {KafkaError.FENCED_INSTANCE_ID}


class Fenced(ServiceError):
    """Another instance took over this runner's transactional id or static member id."""


class Runner:
    def __init__(self, op: Operator, settings, *, timeout_s: float = 60.0):
        self.op = op
        self.s = settings
        self.eos = settings.processing_guarantee == "exactly_once"
        self.group = naming.group_id(settings.app_id, settings.topic_prefix, op.name)
        self.changelog = naming.changelog_topic(settings.app_id, settings.topic_prefix, op.name)
        self.timeout_s = timeout_s
        # one transactional call (send offsets, commit, abort) waits at most this long: the
        # broker aborts a transaction past transaction.timeout.ms anyway, and a loop stuck in
        # a commit serves no rebalance; a timeout is retried, then aborted and rewound
        self.txn_call_s = max(5.0, 2 * settings.transaction_timeout_ms / 1000)
        self.batch_max = settings.batch_max
        self.stopping = threading.Event()
        self.ready = threading.Event()  # set once the first assignment has been restored
        self.last_step = time.monotonic()
        self._lag_at = 0.0
        self.error: BaseException | None = None
        self.emitter = BatchEmitter(settings.topic(topics.DEADLETTER), settings.worker_name,
                                    settings.deadletter_max_payload, settings.report_interval_s)
        self.rebalances = 0
        self.session_ms = settings.session_timeout_ms
        self.m = {n: getattr(metrics, n).labels(op.name) for n in
                  ("RT_RECORDS", "RT_BATCH", "RT_COMMIT", "RT_ABORTS")}
        self._single = 0  # records to process one at a time after a failed batch
        self._recreated: list[float] = []  # when the producer was last re-created

    # -- clients ------------------------------------------------------------------------------
    def consumer_conf(self) -> dict:
        s = self.s
        conf = client_conf(s.broker, {
            "group.id": self.group, "isolation.level": "read_committed",
            "enable.auto.commit": False, "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": getattr(s, "runtime_fetch_wait_ms", 10),
            "client.id": f"{self.group}-{s.worker_name}"})
        if s.group_protocol == "consumer":
            conf["group.protocol"] = "consumer"
        else:
            conf.update({"partition.assignment.strategy": "cooperative-sticky",
                         "session.timeout.ms": self.session_ms,
                         "heartbeat.interval.ms": min(s.heartbeat_interval_ms,
                                                      self.session_ms // 3)})
        if s.static_membership:
            conf["group.instance.id"] = s.worker_name
        return conf

    def producer_conf(self) -> dict:
        conf = client_conf(self.s.broker, {
            "enable.idempotence": True, "acks": "all", "linger.ms": 1,
            "partitioner": "murmur2_random",  # the Java client's, so keys land alike
            # back-to-back transactions: the broker answers the next AddOffsets/AddPartitions
            # with CONCURRENT_TRANSACTIONS until the last commit's markers are written, and
            # librdkafka retries after retry.backoff.ms (100 ms by default): that wait was
            # most of a commit's time (measured: p90 107 -> 30 ms, docs/runtime.md). The Java
            # client lowered this retry to 20 ms for the same reason (KAFKA-5477). The markers
            # of a local broker are written ~1 ms after the commit returns (measured), so the
            # first retry comes after 1 ms (librdkafka's floor) and backs off exponentially to
            # 50 ms: a retry that meets the markers still pending costs 1-3 ms, not 5-8
            "retry.backoff.ms": 1, "retry.backoff.max.ms": 50,
            "client.id": f"{self.group}-{self.s.worker_name}-p"})
        if self.eos:
            conf["transactional.id"] = naming.transactional_id(self.group, self.s.worker_name)
            conf["transaction.timeout.ms"] = self.s.transaction_timeout_ms
        return conf

    def ensure_changelog(self) -> None:
        from tocsin.connectors import kafka_admin

        if self.op.restore_mode().kind != "changelog":
            return
        kafka_admin.ensure_changelog(self.s.broker, self.changelog, self.op.inputs()[0],
                                     self.s.changelog_replication)

    # -- the loop -------------------------------------------------------------------------------
    def stop(self) -> None:
        self.stopping.set()

    def start(self) -> threading.Thread:
        t = threading.Thread(target=self._thread, name=f"runtime-{self.op.name}", daemon=True)
        t.start()
        return t

    def _thread(self) -> None:
        try:
            self.run()
        except BaseException as exc:  # reported to the worker, which exits non-zero
            self.error = exc
            log.error("%s: runner stopped: %r", self.op.name, exc)
            self.stopping.set()

    def run(self) -> None:
        self.ensure_changelog()
        self.producer = Producer(self.producer_conf())
        if self.eos:
            self.producer.init_transactions(self.timeout_s)  # fences our previous incarnation
        self.session_ms = self.s.session_timeout_ms
        self.consumer = Consumer(self.consumer_conf())
        self.restorer = Restorer(client_conf(self.s.broker, {"group.id": self.group + "-r"}),
                                 self.timeout_s * 2)
        self.parts = Assignment(self.op, self.restorer, self.changelog, self.emitter,
                                self.timeout_s * 2)
        self.consumer.subscribe(self.op.inputs(), on_assign=self._on_assign,
                                on_revoke=self._on_revoke, on_lost=self._on_lost)
        log.info("%s: runner up (group %s, %s, %s protocol)", self.op.name, self.group,
                 self.s.processing_guarantee, self.s.group_protocol)
        try:
            while not self.stopping.is_set():
                self.last_step = time.monotonic()  # the worker's liveness reads it
                try:
                    self.step()
                except _SessionRefused as exc:
                    self._longer_session(exc)
        finally:
            self._close()

    def _longer_session(self, exc: Exception) -> None:
        """The broker refuses our session timeout (its group.min.session.timeout.ms is
        higher, 6 s by default): join with 6 s and say which broker setting costs failover
        time."""
        if self.session_ms >= 6000:
            raise ServiceError(f"{self.op.name}: broker refuses session timeout "
                               f"{self.session_ms} ms: {exc}") from exc
        log.warning("%s: the broker refuses a %d ms session (%s); using 6000 ms: failover "
                    "takes longer until the broker has group.min.session.timeout.ms <= %d",
                    self.op.name, self.session_ms, exc, self.s.session_timeout_ms)
        self.session_ms = 6000
        self.consumer.close()
        self.consumer = Consumer(self.consumer_conf())
        self.consumer.subscribe(self.op.inputs(), on_assign=self._on_assign,
                                on_revoke=self._on_revoke, on_lost=self._on_lost)

    def _close(self) -> None:
        try:
            self.consumer.close()  # revokes: operators drop their partitions
        except Exception as exc:
            log.warning("%s: consumer close: %r", self.op.name, exc)
        self.restorer.close()
        self.producer.flush(5)

    def _poll(self) -> list:
        c = self.consumer
        msgs = c.consume(self.batch_max, 0)
        if not msgs:
            msgs = c.consume(1, self.s.runtime_idle_wait_s)
            if msgs and self.batch_max > 1:
                msgs += c.consume(self.batch_max - 1, 0)
        return msgs

    def _records(self, msgs) -> list[Record]:
        """Messages -> records of the partitions held (a revoked partition's prefetched
        messages are dropped); the per-message work is kept to attribute reads."""
        out = []
        append, held = out.append, self.parts.tps
        for m in msgs:
            err = m.error()
            if err is not None:
                if err.code() in _FATAL_CONSUMER:
                    raise Fenced(f"{self.op.name}: {err}")
                if err.code() == KafkaError.INVALID_SESSION_TIMEOUT:
                    raise _SessionRefused(str(err))
                if err.code() != KafkaError._PARTITION_EOF:
                    log.warning("%s: consumer: %s", self.op.name, err)
                continue
            topic, part = m.topic(), m.partition()
            if (topic, part) in held:
                kind, ts = m.timestamp()
                append(Record(topic, part, m.offset(), m.key(), m.value() or b"",
                              ts if kind and ts > 0 else 0))
        return out

    def _publish_lag(self) -> None:
        """tocsin_consumer_lag_messages per input topic: log end minus position over this
        runner's partitions (the sum over replicas is the group's lag; KEDA reads the same
        figure from the broker). Uses the fetcher's cached watermarks: no broker call."""
        self._lag_at = time.monotonic()
        c = self.consumer
        try:
            assigned = c.assignment()
            lags: dict[str, int] = {}
            for tp, pos in zip(assigned, c.position(assigned)):
                hi = c.get_watermark_offsets(tp, cached=True)[1]
                if hi < 0:
                    continue
                behind = hi - pos.offset if pos.offset >= 0 else hi
                lags[tp.topic] = lags.get(tp.topic, 0) + max(0, behind)
        except KafkaException as exc:
            log.debug("%s: lag not available: %r", self.op.name, exc)
            return
        telemetry.set_lag(lags, self.s.topic_prefix)

    def step(self) -> None:
        """One batch: poll, process, tick, commit (or nothing when there is nothing)."""
        records = self._records(self._poll())
        if time.monotonic() - self._lag_at >= LAG_EVERY_S:
            self._publish_lag()
        if records:
            try:
                self._process(records)
            except _Retry:
                self.emitter.take()
                self.parts.rewind(self.consumer)
                self._single = len(records)
                return
        self.op.tick(time.time_ns(), self.emitter)
        outputs = self.emitter.take()
        changes = self.parts.changes()
        if not records and not outputs and not changes:
            return
        t0 = time.perf_counter()
        try:
            self._commit(records, outputs, changes)
        except KafkaException as exc:
            self._failed(exc.args[0])
            return
        self.m["RT_COMMIT"].observe(time.perf_counter() - t0)
        if records:
            self.m["RT_RECORDS"].inc(len(records))
            self.m["RT_BATCH"].observe(len(records))

    def _process(self, records: Sequence[Record]) -> None:
        if self._single <= 0:
            try:
                self.op.process(records, self.emitter)
                return
            except Exception:
                log.exception("%s: a batch of %d failed; replaying it one record at a time",
                              self.op.name, len(records))
                raise _Retry() from None
        for r in records:  # after a failed batch: find the poison record(s)
            try:
                self.op.process([r], self.emitter)
            except Exception as exc:
                self.emitter.dead_letter(r, reason(exc), "process")
        self._single -= len(records)

    def _produce(self, topic: str, key, value, partition: int = -1) -> None:
        while True:
            try:
                if partition >= 0:
                    self.producer.produce(topic, value, key, partition=partition)
                else:
                    self.producer.produce(topic, value, key)
                return
            except BufferError:  # the local queue is full: let deliveries drain
                self.producer.poll(0.05)

    def _commit(self, records, outputs, changes) -> None:
        p = self.producer
        if self.eos:
            p.begin_transaction()
        for topic, key, value in outputs:
            self._produce(topic, key, value)
        for part, changed in changes:
            for key, value in changed.items():
                self._produce(self.changelog, key, value, part)
        offsets = _offsets(records)
        if self.eos:
            if offsets:
                p.send_offsets_to_transaction(offsets, self.consumer.consumer_group_metadata(),
                                              self.txn_call_s)
            _retrying(lambda: p.commit_transaction(self.txn_call_s))
            return
        left = p.flush(self.timeout_s)
        if left:
            raise ServiceError(f"{self.op.name}: {left} outputs not delivered")
        if offsets:
            self.consumer.commit(offsets=offsets, asynchronous=False)

    def _failed(self, err: KafkaError) -> None:
        """A commit failed: abort and rewind to the last commit so the batch is processed
        again from restored state. A fatal producer error (the broker aborted a transaction
        past transaction.timeout.ms and bumped our epoch, or a newer producer took our
        transactional id) gets a fresh producer, at most 3 times a minute; after that, or
        when the consumer is fenced as a static member, the runner stops: a zombie must not
        go on."""
        self.m["RT_ABORTS"].inc()
        if err.fatal() or err.code() in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED):
            now = time.monotonic()
            self._recreated = [t for t in self._recreated if now - t < 60] + [now]
            if len(self._recreated) > 3:
                raise Fenced(f"{self.op.name}: {err}: fenced again and again; stopping")
            log.warning("%s: producer fenced (%s); a new producer, state rewound",
                        self.op.name, err)
            self._new_producer()
        else:
            log.warning("%s: commit failed (%s); aborting and rewinding", self.op.name, err)
            if self.eos:
                try:
                    _retrying(lambda: self.producer.abort_transaction(self.txn_call_s))
                except KafkaException as exc:
                    if not exc.args[0].fatal():
                        raise
                    self._new_producer()
        self.parts.rewind(self.consumer)

    def _new_producer(self) -> None:
        try:
            self.producer.purge()
        except Exception:  # a fatal producer may refuse even this; it is dropped anyway
            pass
        self.producer = Producer(self.producer_conf())
        if self.eos:
            self.producer.init_transactions(self.timeout_s)

    # -- rebalance callbacks (run inside consume; no transaction is open then) -------------------
    def _on_assign(self, consumer, tps) -> None:
        self.rebalances += 1
        metrics.RT_REBALANCES.labels(self.op.name, "assigned").inc()
        log.info("%s: assigned %s", self.op.name, _names(tps))
        self.parts.add(consumer, tps)
        consumer.incremental_assign(tps)
        self.ready.set()

    def _on_revoke(self, consumer, tps) -> None:
        self.rebalances += 1
        metrics.RT_REBALANCES.labels(self.op.name, "revoked").inc()
        log.info("%s: revoked %s", self.op.name, _names(tps))
        self.parts.remove(tps)
        consumer.incremental_unassign(tps)

    def _on_lost(self, consumer, tps) -> None:
        self.rebalances += 1
        metrics.RT_REBALANCES.labels(self.op.name, "lost").inc()
        log.warning("%s: lost %s (session expired)", self.op.name, _names(tps))
        self.parts.remove(tps)
        consumer.incremental_unassign(tps)


LAG_EVERY_S = 2.0


class _Retry(ServiceError):  # control flow inside the runner; never leaves it
    pass


class _SessionRefused(ServiceError):  # handled by _longer_session
    pass


def _offsets(records: Sequence[Record]) -> list[TopicPartition]:
    """Next offset per input partition, with the last record's timestamp (ms) as metadata:
    a replay restore starts from it."""
    last: dict[tuple[str, int], Record] = {}
    for r in records:
        last[(r.topic, r.partition)] = r
    return [TopicPartition(t, p, r.offset + 1, metadata=str(r.timestamp_ms))
            for (t, p), r in last.items()]


def _retrying(call, attempts: int = 5) -> None:
    for i in range(attempts):
        try:
            call()
            return
        except KafkaException as exc:
            if not exc.args[0].retriable() or i == attempts - 1:
                raise
            time.sleep(0.1 * (i + 1))


def _names(tps) -> str:
    return ", ".join(f"{t.topic}[{t.partition}]" for t in tps) or "nothing"
