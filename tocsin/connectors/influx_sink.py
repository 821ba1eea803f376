"""History sink: Kafka topics -> InfluxDB, lossless and without doubles.

A plain confluent-kafka consumer with manual commits, not a Faust agent, because the one rule
that matters here is "commit an offset only after InfluxDB acknowledged every point before
it", and that is explicit in this loop:

1. consume readings and alerts, turn them into line protocol (undecodable messages go to the
   dead-letter topic at once);
2. when a batch reaches `batch_lines` (5,000, InfluxData's advice) or `flush_s` passes, write
   it gzip-compressed in one request;
3. InfluxDB down or failing (connection error, 5xx, 429): pause the partitions, back off and
   retry the same batch until it is written (the rest of the pipeline does not wait: it has
   its own consumer groups); points InfluxDB rejects (4xx: bad type, outside retention) are
   isolated by bisecting the batch and dead-lettered with InfluxDB's reason;
4. commit the offsets of everything in the batch.

Consuming and writing overlap: a writer thread writes one batch (steps 2-4) while the loop
consumes and encodes the next; at most one batch waits for it. A batch is handed over at
`batch_lines` when the writer is free, and grows up to `max_batch_lines` while it is busy
(batches sized by load); when even that waits, the partitions are paused until the writer
takes it. The writer commits the offsets of its batches in order, after InfluxDB
acknowledged them.

Points are idempotent by series and timestamp, so a crash between 2 and 4 re-writes the same
points and never doubles them.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import urllib3
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.rest import ApiException

from tocsin.config.influx_security import load_influx_security
from tocsin.config.kafka_security import client_conf
from tocsin.connectors import telemetry
from tocsin.connectors.backoff import Backoff
from tocsin.connectors.health import HEALTH
from tocsin.connectors.influx_admin import ensure_rollups
from tocsin.connectors.influx_lines import (
    alert_lines,
    feature_lines,
    readings_lines,
    score_lines,
)
from tocsin.contracts import topics
from tocsin.contracts.alerts import Alert
from tocsin.contracts.deadletter import PAYLOAD_LIMIT, Origin, envelope
from tocsin.contracts.eventtime import TimeGuard
from tocsin.contracts.scores import Scores
from tocsin.detectors.bounds import Throttled
from tocsin.detectors.intake import ReadingsIntake
from tocsin.errors import ConnectorError, SchemaError

log = logging.getLogger(__name__)


@dataclass
class SinkStats:
    messages: int = 0
    points: int = 0
    batches: int = 0
    retries: int = 0
    rejected: int = 0
    deadlettered: int = 0


@dataclass
class _Item:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    lines: list[str] = field(default_factory=list)
    ts_ms: int = 0  # the record's Kafka timestamp


class InfluxHistorySink:
    def __init__(self, broker: str, prefix: str, url: str, token: str, org: str, bucket: str,
                 *, group: str | None = None, batch_lines: int = 5000, flush_s: float = 1.0,
                 max_batch_lines: int | None = None,
                 backoff_max_s: float = 30.0, worker: str = "history-sink",
                 guard: TimeGuard = TimeGuard(), deadletter_max_payload: int = PAYLOAD_LIMIT,
                 report_interval_s: float = 60.0):
        self.prefix = prefix
        self.intake = ReadingsIntake(guard, report_interval_s, "history sink")
        self.dl_limit = deadletter_max_payload
        self.report = Throttled(log, f"{worker}: records dead-lettered", report_interval_s)
        self.topics = {prefix + topics.READINGS: self._readings,
                       prefix + topics.ALERTS: self._alerts,
                       prefix + topics.FEATURES: feature_lines,
                       prefix + topics.SCORES: self._scores}
        self.consumer = Consumer(client_conf(broker, {"group.id": group or f"tocsin-history-{prefix}",
            "enable.auto.commit": False, "auto.offset.reset": "earliest",
            "max.poll.interval.ms": 600000}))
        self.dlq = Producer(client_conf(broker, {"enable.idempotence": True}))
        self.client = InfluxDBClient(**load_influx_security().client_kwargs(url, token),
                                     org=org, enable_gzip=True,
                                     timeout=30_000,
                                     retries=urllib3.Retry(total=0, connect=0, read=0))
        self.write_api = self.client.write_api(write_options=SYNCHRONOUS)
        self.bucket, self.org = bucket, org
        self.batch_lines, self.flush_s, self.backoff_max_s = batch_lines, flush_s, backoff_max_s
        self.max_batch_lines = max_batch_lines or 4 * batch_lines
        self._batches: queue.Queue[list[_Item] | None] = queue.Queue(maxsize=1)
        self._writer_error: BaseException | None = None
        self._written: queue.Queue[list[TopicPartition]] = queue.Queue()
        self.worker = worker
        self.stats = SinkStats()

    def _readings(self, value: bytes) -> list[str]:
        got = self.intake.take(value, time.time_ns())
        if got.refused:  # written without the refused samples; the frame is dead-lettered
            raise _Refused(got.reason, readings_lines(got.frame))
        return readings_lines(got.frame)

    @staticmethod
    def _alerts(value: bytes) -> list[str]:
        return alert_lines(Alert.decode(value))

    @staticmethod
    def _scores(value: bytes) -> list[str]:
        return score_lines(Scores.decode(value))

    def run(self, stop: Callable[[], bool] = lambda: False) -> None:
        try:  # retention and downsampling exist wherever the sink writes
            ensure_rollups(self.client.url, self.client.token, self.org, self.bucket)
        except Exception as exc:  # InfluxDB may be down now: the write loop waits for it
            log.warning("could not ensure the rollup bucket and task yet: %s", exc)
        self.consumer.subscribe(list(self.topics))
        batch: list[_Item] = []
        n_lines = 0
        started = time.monotonic()
        self._watch_health()
        writer = threading.Thread(target=self._writer, args=(stop,), name="history-writer",
                                  daemon=True)
        writer.start()
        self._carry: list = []  # messages polled while handing over a batch
        next_lag = 0.0
        try:
            while not stop():
                HEALTH.beat()
                self._check_writer()
                self._commit_written()
                if time.monotonic() >= next_lag:
                    self._update_lag()
                    next_lag = time.monotonic() + 2.0
                msgs, self._carry = self._carry + self.consumer.consume(2000, 0.2), []
                for msg in msgs:
                    n_lines += self._take(msg, batch)
                if not batch:
                    started = time.monotonic()
                elif n_lines >= self.batch_lines or time.monotonic() - started >= self.flush_s:
                    # the writer free: hand over now; busy: let the batch grow to the limit
                    if self._hand(batch, wait=n_lines >= self.max_batch_lines
                                  or time.monotonic() - started >= 4 * self.flush_s, stop=stop):
                        batch, n_lines, started = [], 0, time.monotonic()
            if batch:  # stopping: the writer still tries it once, as a flush
                self._batches.put(batch, timeout=120)
        finally:
            try:
                self._batches.put(None, timeout=120)
            except queue.Full:
                log.error("history sink writer did not finish its batch; not committed")
            writer.join(120)
            self._commit_written()
            self.dlq.flush(10)
            self.consumer.close()
            self.client.close()
        self._check_writer()

    def _take(self, msg, batch: list[_Item]) -> int:
        """Decode one message into the batch; return its line count."""
        if msg.error():
            return 0
        _, ts_ms = msg.timestamp()
        item = _Item(msg.topic(), msg.partition(), msg.offset(), msg.key(),
                     msg.value() or b"", ts_ms=max(ts_ms, 0))
        try:  # the poison rule: any failure on one record is a dead letter
            item.lines = self.topics[item.topic](item.value)
        except _Refused as exc:
            item.lines = exc.lines
            self._deadletter(item, exc.reason, "guard")
        except Exception as exc:
            self._deadletter(item, str(exc) if isinstance(exc, SchemaError)
                             else f"{type(exc).__name__}: {exc}", "decode")
        self.stats.messages += 1
        batch.append(item)
        return len(item.lines)

    def _hand(self, batch: list[_Item], *, wait: bool, stop: Callable[[], bool]) -> bool:
        """Give the batch to the writer; with `wait`, pause the partitions until it takes it
        (still polling, to stay in the group)."""
        try:
            self._batches.put_nowait(batch)
            return True
        except queue.Full:
            if not wait:
                return False
        paused = self.consumer.assignment()
        self.consumer.pause(paused)
        try:
            while not stop():
                self._check_writer()
                self._commit_written()
                try:
                    self._batches.put(batch, timeout=0.1)
                    return True
                except queue.Full:
                    m = self.consumer.poll(0)  # a partition assigned since is not paused
                    if m is not None:
                        self._carry.append(m)
            return False
        finally:
            self.consumer.resume(paused)

    def _writer(self, stop: Callable[[], bool]) -> None:
        try:
            while (batch := self._batches.get()) is not None:
                self._write_batch(batch, stop)
        except BaseException as exc:  # handed to the consuming loop, which raises it
            self._writer_error = exc

    def _commit_written(self) -> None:
        """Commit the offsets of the batches the writer has written, oldest first."""
        while True:
            try:
                offsets = self._written.get_nowait()
            except queue.Empty:
                return
            try:
                self.consumer.commit(offsets=offsets, asynchronous=False)
            except KafkaException as exc:  # revoked meanwhile: the new owner writes them again
                log.warning("offsets of a written batch not committed (%s); its records will "
                            "be written again (idempotent points)", exc)

    def _check_writer(self) -> None:
        if self._writer_error is not None:
            raise ConnectorError("history sink writer failed") from self._writer_error

    # -- writing ------------------------------------------------------------------------
    def _write_batch(self, batch: list[_Item], stop: Callable[[], bool]) -> None:
        lines = [(i, ln) for i, item in enumerate(batch) for ln in item.lines]
        backoff = Backoff.up_to(self.backoff_max_s)
        paused = False
        while True:
            try:
                rejected = self._write(lines)
                break
            except _Transient as exc:
                # the consuming loop fills the next batch, then pauses the partitions (and
                # keeps polling, to stay in the group) until this one is written
                self.stats.retries += 1
                if not paused:
                    paused = self._paused = True
                    log.warning("InfluxDB unavailable (%s); holding %d points, retrying with "
                                "backoff; Kafka offsets wait", exc, len(lines))
                t_end = time.monotonic() + backoff.next_delay()
                while time.monotonic() < t_end:
                    if stop():
                        return  # nothing committed: the batch is consumed again next start
                    time.sleep(0.1)
        if paused:
            self._paused = False
            log.info("InfluxDB back: wrote the held batch of %d points", len(lines))
        by_msg: dict[int, list[tuple[str, str]]] = {}
        for idx, line, reason in rejected:
            self.stats.rejected += 1
            by_msg.setdefault(idx, []).append((line, reason))
        for idx, bad in by_msg.items():  # one dead letter per message, whole, with reasons
            reasons = sorted({r for _, r in bad})
            self._deadletter(batch[idx], f"InfluxDB rejected {len(bad)} of "
                             f"{len(batch[idx].lines)} points: {'; '.join(reasons)}; first: "
                             f"{bad[0][0]!r}", "process")
        self.dlq.flush(10)
        self.stats.points += len(lines) - len(rejected)
        self.stats.batches += 1
        last: dict[tuple[str, int], int] = {}
        for item in batch:
            last[(item.topic, item.partition)] = item.offset + 1
        # the consuming thread commits (the client's calls are not made from two threads)
        self._written.put([TopicPartition(t, p, o) for (t, p), o in last.items()])
        newest = max((t for i in batch if i.lines and i.topic == self.prefix + topics.READINGS
                      if (t := _line_ts(i.lines[-1])) is not None), default=None)
        if newest is not None:
            telemetry.observe_latency("sink", newest)

    # -- health -------------------------------------------------------------------------
    def _watch_health(self) -> None:
        self._paused = False
        HEALTH.add_check("kafka", lambda: bool(self.consumer.assignment())
                         or "no partitions assigned yet")
        HEALTH.add_check("influxdb", lambda: not self._paused
                         or "InfluxDB unavailable: the batch is held and retried")

    def _update_lag(self) -> None:
        try:
            tps = self.consumer.assignment()
            positions = {(tp.topic, tp.partition): tp.offset for tp in self.consumer.position(tps)}
            hw = {}
            for tp in tps:
                hw[(tp.topic, tp.partition)] = self.consumer.get_watermark_offsets(
                    tp, cached=True)[1]
        except Exception as exc:  # not assigned yet / rebalancing: next time
            log.debug("lag not available: %r", exc)
            return
        lags: dict[str, int] = {}
        for key, high in hw.items():
            pos = positions.get(key, -1)
            if high is None or high < 0:
                continue
            behind = high - pos if pos is not None and pos >= 0 else high
            lags[key[0]] = lags.get(key[0], 0) + max(0, behind)
        telemetry.set_lag(lags, self.prefix)

    def _write(self, lines: list[tuple[int, str]]) -> list[tuple[int, str, str]]:
        """Write; return the points InfluxDB rejected (index, line, reason)."""
        if not lines:
            return []
        try:
            self.write_api.write(self.bucket, self.org, "\n".join(ln for _, ln in lines))
            return []
        except ApiException as exc:
            if exc.status is None or exc.status >= 500 or exc.status in (401, 403, 404, 429):
                raise _Transient(f"HTTP {exc.status}: {_reason(exc)}") from exc
            if len(lines) == 1:
                return [(lines[0][0], lines[0][1], _reason(exc))]
            mid = len(lines) // 2  # isolate the bad points; rewriting good ones is harmless
            return self._write(lines[:mid]) + self._write(lines[mid:])
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise _Transient(repr(exc)) from exc

    def _deadletter(self, item: _Item, error: str, stage: str) -> None:
        dl = envelope(item.value, error, Origin(item.topic, item.partition, item.offset,
                                                item.ts_ms * 1_000_000, item.key),
                      stage=stage, worker=self.worker, ts=time.time_ns(), limit=self.dl_limit)
        data = dl.encode()
        for _ in range(50):  # the local queue may be full: serve it, never drop silently
            try:
                self.dlq.produce(self.prefix + topics.DEADLETTER, data, key=item.topic.encode())
                break
            except BufferError:
                self.dlq.poll(0.1)
        else:
            log.error("dead letter for %s[%d]@%d not queued (producer queue full): %s",
                      item.topic, item.partition, item.offset, error[:300])
        self.dlq.poll(0)
        self.stats.deadlettered += 1
        self.report.note(stage, example=f"{item.topic}[{item.partition}]@{item.offset}: "
                         f"{error[:300]}")


class _Refused(SchemaError):
    """Some samples of a frame were refused by the event-time guard: the rest is written."""

    def __init__(self, reason: str, lines: list[str]):
        super().__init__(reason)
        self.reason, self.lines = reason, lines


class _Transient(ConnectorError):
    """InfluxDB is unreachable or failing: retry the whole batch later."""


def _line_ts(line: str) -> int | None:
    """The timestamp (ns) at the end of a line-protocol line, or None."""
    tail = line.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else None


def _reason(exc: ApiException) -> str:
    body = exc.body.decode(errors="replace") if isinstance(exc.body, bytes) else str(exc.body)
    try:
        import orjson

        return orjson.loads(body).get("message", body)
    except Exception:
        return body or str(exc.reason)
