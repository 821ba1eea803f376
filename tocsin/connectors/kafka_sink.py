"""Publish readings frames to Kafka with an idempotent confluent-kafka producer.

With a spool (store-and-forward, the default for `tocsin connect`) every frame is first
appended to a bounded on-disk queue (written out at each pump, every `pump_interval_s`) and
produced from there in order, with at most `window` frames in flight; a frame leaves the disk only when Kafka acknowledged it. While Kafka is
unreachable the connector keeps reading and the spool grows (logged every few seconds);
when Kafka returns the spool drains in order. Without a spool, frames go straight to the
producer (librdkafka's memory queue, 5 minutes of retries).
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from pathlib import Path

from confluent_kafka import KafkaError, Producer

from tocsin.config.kafka_security import client_conf
from tocsin.connectors import telemetry
from tocsin.connectors.spool import DiskSpool, SpoolFull
from tocsin.contracts.readings import ReadingsFrame

log = logging.getLogger(__name__)
_KLEN = struct.Struct("<H")


class KafkaFrameSink:
    def __init__(self, bootstrap: str, topic: str, *, linger_ms: int = 5,
                 spool_dir: str | Path | None = None, spool_max_bytes: int = 1 << 30,
                 spool_policy: str = "drop_oldest", window: int = 5000,
                 extra: dict | None = None, pump_interval_s: float = 0.002):
        conf = {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": linger_ms,
            "compression.type": "lz4",
            "client.id": "tocsin-connector",
        }
        if spool_dir is not None:
            conf["message.timeout.ms"] = 0  # never give up: the spool bounds what waits
        conf.update(extra or {})
        self.topic = topic
        self.producer = Producer(client_conf(bootstrap, conf))
        self.delivered = 0
        self.failed = 0
        self.spool = (DiskSpool(spool_dir, max_bytes=spool_max_bytes, policy=spool_policy)
                      if spool_dir is not None else None)
        self.window = window
        # spool mode: frames are handed to the producer at most every pump_interval_s (and by
        # drain_forever), not one pump per frame: a pump's fixed costs (a write call, a poll,
        # the ack walk) are shared by the frames of a few milliseconds; linger.ms batches the
        # sends anyway
        self.pump_interval = pump_interval_s
        self._last_pump = 0.0
        self._next = 0  # sequence number of the next frame handed to the producer
        self._acked_upto = 0  # every frame below this one is acknowledged
        self._done: set[int] = set()
        self._inflight = 0
        self._last_status = 0.0

    # -- direct mode ------------------------------------------------------------------
    def _on_delivery(self, err: KafkaError | None, msg) -> None:
        if err is not None:
            self.failed += 1
            log.error("frame for asset %s not delivered to %s: %s", msg.key(), self.topic, err)
        else:
            self.delivered += 1

    def _produce(self, key: bytes, data: bytes, cb) -> None:
        while True:
            try:
                self.producer.produce(self.topic, data, key=key, on_delivery=cb)
                return
            except BufferError:  # local queue full: serve callbacks, then retry
                self.producer.poll(0.05)

    def publish(self, frame: ReadingsFrame) -> None:
        telemetry.observe_frame("connector", frame.ts)
        key, data = frame.asset.encode(), frame.encode()
        if self.spool is None:
            self._produce(key, data, self._on_delivery)
            self.producer.poll(0)
            return
        try:
            self.spool.append(_KLEN.pack(len(key)) + key + data, flush=False)
        except SpoolFull as exc:
            self.failed += 1
            log.error("%s; frame of asset %s (seq %d) not stored", exc, frame.asset, frame.seq)
        if time.monotonic() - self._last_pump >= self.pump_interval:
            self.pump()

    # -- spool mode -------------------------------------------------------------------------
    def _spooled_delivery(self, seq: int):
        def cb(err: KafkaError | None, msg) -> None:
            self._inflight -= 1
            if err is not None:
                # with an infinite message timeout only permanent errors get here (a frame
                # too large, no permission): retrying cannot help, so it is logged, counted
                # and acknowledged, or it would block every later frame forever
                self.failed += 1
                log.error("frame for asset %s rejected by Kafka (%s): %s; skipped",
                          msg.key(), self.topic, err)
            else:
                self.delivered += 1
            self._done.add(seq)
        return cb

    def pump(self) -> int:
        """Hand spooled frames to the producer and retire acknowledged ones; return how many
        frames wait (on disk or in flight)."""
        if self.spool is None:
            self.producer.poll(0)
            return len(self.producer)
        self._last_pump = time.monotonic()
        room = self.window - self._inflight
        if room > 0:
            for rec in self.spool.take(min(room, 1000)):
                (kl,) = _KLEN.unpack_from(rec)
                key, data = rec[2:2 + kl], rec[2 + kl:]
                self._inflight += 1
                self._produce(key, data, self._spooled_delivery(self._next))
                self._next += 1
        self.producer.poll(0)
        n = 0
        while self._acked_upto in self._done:
            self._done.discard(self._acked_upto)
            self._acked_upto += 1
            n += 1
        if n:
            self.spool.ack(n)
        waiting = self.spool.pending
        now = time.monotonic()
        if waiting > self.window and now - self._last_status > 5:
            self._last_status = now
            log.warning("Kafka is not acknowledging: %d frames (%.1f MB) wait in the spool "
                        "%s; %d dropped by its size limit", waiting, self.spool.size_bytes / 1e6,
                        self.spool.dir, self.spool.dropped)
        return waiting

    async def drain_forever(self, interval: float = 0.01) -> None:
        """Keep the spool moving when no new frames arrive (run as a task)."""
        while True:
            self.pump()
            await asyncio.sleep(interval)

    def flush(self, timeout: float = 10.0) -> int:
        """Deliver what can be delivered within `timeout`; return frames still waiting (they
        stay in the spool for the next run)."""
        if self.spool is None:
            return self.producer.flush(timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.pump() == 0:
                break
            self.producer.flush(0.1)
        left = self.pump()
        self.spool.close()
        return left
