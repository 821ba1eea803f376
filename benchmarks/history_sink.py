"""History sink throughput and CPU, side by side with influxdb-client's default batching
writer on the same data in the same invocation.

The same readings (frames of 100 samples) wait in a Kafka topic. Each contender runs in its
own process, consumes the topic from the start with the same consumer settings, turns frames
into the same line protocol, and writes into its own fresh bucket until every point is in:

  tocsin   InfluxHistorySink: gzip batches of 5,000 lines, synchronous, offsets committed after
           each acknowledged batch
  default  influxdb-client WriteApi with its default WriteOptions (batch 1,000, flush 1 s, no
           gzip), offsets committed automatically by the consumer

Reported: points/s (wall) and CPU seconds of the contender process per 100,000 points.
Usage: python -m benchmarks.history_sink [--frames 5000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import tempfile
import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, Producer

from benchmarks.report import Report, add_arguments, run_in_tree
from benchmarks.threshold_path import ASSETS, FrameMaker
from tocsin.connectors.influx_lines import readings_lines
from tocsin.connectors.kafka_admin import ensure_topics
from tocsin.contracts.readings import ReadingsFrame
from tocsin.services.influx import InfluxServer
from tocsin.services.kafka import KafkaBroker, free_port


def fill(broker: str, topic: str, frames: int, samples: int) -> int:
    maker = FrameMaker(samples)
    p = Producer({"bootstrap.servers": broker, "linger.ms": 20, "compression.type": "lz4"})
    t0 = time.time_ns() - frames * 10_000_000
    for i in range(frames):
        a = ASSETS[i % len(ASSETS)]
        data = maker.frame(a, i // len(ASSETS), t0 + i * 10_000_000)
        while True:
            try:
                p.produce(topic, data, key=a.encode())
                break
            except BufferError:
                p.poll(0.05)
    p.flush(60)
    return frames * len(maker.tags)


def create_bucket(url: str, token: str, org: str) -> str:
    from influxdb_client import InfluxDBClient

    name = f"bench_{uuid.uuid4().hex[:6]}"
    with InfluxDBClient(url=url, token=token, org=org) as c:
        org_id = c.organizations_api().find_organizations(org=org)[0].id
        c.buckets_api().create_bucket(bucket_name=name, org_id=org_id)
    return name


def count_points(url, token, org, bucket) -> int:
    from influxdb_client import InfluxDBClient

    q = (f'from(bucket: "{bucket}") |> range(start: -30d) |> filter(fn: (r) => '
         'r._field == "value") |> group() |> count()')
    with InfluxDBClient(url=url, token=token, org=org, timeout=60_000) as c:
        t = c.query_api().query(q)
    return int(t[0].records[0].get_value()) if t and t[0].records else 0


def run_tocsin(broker, topic, url, token, org, bucket, expected, out) -> None:
    from tocsin.connectors.influx_sink import InfluxHistorySink

    prefix = topic[: -len("plant.readings")]
    sk = InfluxHistorySink(broker, prefix, url, token, org, bucket,
                           group=f"bench-{uuid.uuid4().hex}")
    t0, c0 = time.perf_counter(), time.process_time()
    sk.run(stop=lambda: sk.stats.points >= expected)
    out.put((time.perf_counter() - t0, time.process_time() - c0, sk.stats.points))


def run_baseline(tree, *args) -> None:
    out = args[-1]
    out.put(run_in_tree(tree, "benchmarks.history_sink", "run_tocsin", *args[:-1]))


def run_default(broker, topic, url, token, org, bucket, expected, out) -> None:
    from influxdb_client import InfluxDBClient, WriteOptions

    c = Consumer({"bootstrap.servers": broker, "group.id": f"bench-{uuid.uuid4().hex}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": True})
    c.subscribe([topic])
    client = InfluxDBClient(url=url, token=token, org=org)
    wa = client.write_api(write_options=WriteOptions())  # the library's defaults
    t0, c0 = time.perf_counter(), time.process_time()
    n = 0
    while n < expected:
        for m in c.consume(2000, 0.2):
            if m.error():
                continue
            lines = readings_lines(ReadingsFrame.decode(m.value()))
            wa.write(bucket, org, lines)
            n += len(lines)
    wa.close()  # flushes what is batched
    client.close()
    c.close()
    out.put((time.perf_counter() - t0, time.process_time() - c0, n))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=5000)
    ap.add_argument("--samples", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=2)
    args = add_arguments(ap).parse_args()
    rep = Report("history_sink", vars(args))
    work = Path(tempfile.mkdtemp(prefix="tocsin-history-bench-"))
    kafka = KafkaBroker(work / "kafka", port=free_port(), controller_port=free_port()).start()
    influx = InfluxServer(work / "influx", port=free_port()).start()
    try:
        topic = "hb.plant.readings"
        ensure_topics(kafka.bootstrap, [topic], 4)
        points = fill(kafka.bootstrap, topic, args.frames, args.samples)
        print(f"{points:,} points waiting in Kafka", flush=True)
        for r in range(args.rounds):
            names = ["tocsin", "default"] + (["tocsin@baseline"] if args.baseline_tree else [])
            for name in names[r % len(names):] + names[:r % len(names)]:
                bucket = create_bucket(influx.url, influx.token, influx.org)
                q = mp.Queue()
                target = {"tocsin": run_tocsin, "default": run_default,
                          "tocsin@baseline": run_baseline}[name]
                pre = (args.baseline_tree,) if name == "tocsin@baseline" else ()
                p = mp.Process(target=target, args=(*pre, kafka.bootstrap, topic, influx.url,
                                                    influx.token, influx.org, bucket, points, q))
                p.start()
                wall, cpu, n = q.get(timeout=900)
                p.join()
                stored = count_points(influx.url, influx.token, influx.org, bucket)
                rep.add(name, points_per_s=points / wall,
                        cpu_s_per_100k=cpu / points * 100_000, stored=stored)
                print(f"round {r + 1} {name:>15}: {points / wall:,.0f} points/s, "
                      f"{cpu / points * 100_000:.2f} CPU s per 100k points, {stored:,} stored",
                      flush=True)
    finally:
        influx.stop()
        kafka.stop()
    rep.check("history sink vs influxdb-client defaults, points/s", "points_per_s", "tocsin",
              peer="default", op=">=", target=2.0)
    rep.check("history sink CPU per point vs the defaults' (no more)", "cpu_s_per_100k",
              "tocsin", peer="default", op="<=", target=1.0)
    if args.baseline_tree:
        rep.check("history sink, this tree vs the baseline tree", "points_per_s", "tocsin",
                  peer="tocsin@baseline")
    rep.finish(args)

if __name__ == "__main__":
    main()
