"""Replay throughput: `tocsin replay --speed max` against a bare confluent-kafka producer loop
on the same recording, side by side in one invocation.

  tocsin  tocsin.connectors.replayer.replay(): reads the file, checks and decompresses blocks,
          decodes records, produces (same partition, key, timestamp, headers)
  bare    the recording decoded into memory first (not timed), then a plain produce loop with
          the same producer settings: the ceiling for publishing these messages from Python

Both publish to fresh topics; time includes the final flush (every message acknowledged).
Usage: python benchmarks/replay_throughput.py [--broker HOST:PORT] [--frames 50000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from pathlib import Path

from confluent_kafka import Producer

from benchmarks.report import Report, add_arguments
from benchmarks.threshold_path import ASSETS, FrameMaker
from tocsin.connectors.kafka_admin import ensure_topics
from tocsin.connectors.recording import Message, RecordingReader, RecordingWriter
from tocsin.connectors.replayer import ReplaySpec, replay
from tocsin.services.kafka import KafkaBroker, free_port

PRODUCER = {"linger.ms": 5, "acks": "all", "enable.idempotence": True,
            "compression.type": "lz4", "queue.buffering.max.messages": 200000}


def make_recording(path: Path, frames: int, samples: int) -> None:
    maker = FrameMaker(samples)
    t0 = 1_767_225_600_000_000_000
    with RecordingWriter(path, {"benchmark": True}) as w:
        w.declare_topics(["plant.readings"])
        for i in range(frames):
            a = ASSETS[i % len(ASSETS)]
            now = t0 + i * 1_000_000
            w.write(Message("plant.readings", i % 4, i // 4, now // 1_000_000, a.encode(),
                            maker.frame(a, i // len(ASSETS), now)))


def bare(broker: str, msgs: list[Message], topic: str) -> float:
    p = Producer({"bootstrap.servers": broker, **PRODUCER})
    t = time.perf_counter()
    for m in msgs:
        while True:
            try:
                p.produce(topic, m.value, key=m.key, partition=m.partition,
                          timestamp=m.timestamp)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    assert p.flush(120) == 0
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--broker")
    ap.add_argument("--frames", type=int, default=50000)
    ap.add_argument("--samples", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    args = add_arguments(ap).parse_args()
    rep = Report("replay_throughput", vars(args))
    work = Path(tempfile.mkdtemp(prefix="tocsin-replay-bench-"))
    rec = work / "bench.rec"
    make_recording(rec, args.frames, args.samples)
    broker_obj = None
    broker = args.broker
    if broker is None:
        broker_obj = KafkaBroker(work / "kafka", port=free_port(),
                                 controller_port=free_port()).start()
        broker = broker_obj.bootstrap
    with RecordingReader(rec) as r:
        msgs = list(r)
    print(f"recording: {len(msgs):,} frames x {args.samples} samples, "
          f"{rec.stat().st_size / 1e6:.1f} MB on disk", flush=True)
    try:
        for i in range(args.rounds):
            order = ["bare", "tocsin"] if i % 2 == 0 else ["tocsin", "bare"]
            for name in order:
                prefix = f"rb{uuid.uuid4().hex[:6]}."
                topic = prefix + "plant.readings"
                ensure_topics(broker, [topic], 4)
                if name == "bare":
                    secs = bare(broker, msgs, topic)
                else:
                    secs = replay(rec, broker, ReplaySpec(speed=0, prefix=prefix)).seconds
                rep.add(name, messages_per_s=len(msgs) / secs,
                        samples_per_s=len(msgs) * args.samples / secs)
                print(f"round {i + 1} {name:>6}: {len(msgs) / secs:,.0f} messages/s "
                      f"({len(msgs) * args.samples / secs:,.0f} samples/s)", flush=True)
    finally:
        if broker_obj:
            broker_obj.stop()
    rep.note("no #20 target for replay; the ratio is information")
    rep.check("tocsin replay --speed max vs bare produce loop", "messages_per_s", "tocsin",
              peer="bare")
    rep.finish(args)

if __name__ == "__main__":
    main()
