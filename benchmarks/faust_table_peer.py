"""The peer for benchmarks/features.py: a stock Faust agent keeping mean and std per asset and
tag in hopping-window tables (1 s, 10 s every 1 s, 60 s every 10 s), updated sample by sample,
the way the Faust documentation shows windowed aggregation. Run by the benchmark:

    python -m benchmarks.faust_table_peer worker -l warn   (env BENCH_BROKER, BENCH_TOPIC)
"""

from __future__ import annotations

import os
import sys
import time
from datetime import timedelta

import faust

from tocsin.contracts.readings import ReadingsFrame

broker = os.environ.get("BENCH_BROKER", "127.0.0.1:9092")
topic_name = os.environ.get("BENCH_TOPIC", "bench.readings")
app = faust.App(f"bench-faust-table-{topic_name}", broker=f"kafka://{broker}",
                web_enabled=False, topic_partitions=int(os.environ.get("BENCH_PARTITIONS", "4")),
                topic_replication_factor=1, consumer_auto_offset_reset="earliest",
                broker_commit_interval=1.0, datadir=os.environ.get("BENCH_DATADIR", "/tmp/bft"),
                store="memory://")
readings = app.topic(topic_name, key_type=bytes, value_type=bytes, key_serializer="raw",
                     value_serializer="raw")


def _tables(name: str, size: float, step: float):
    """count, sum and sum of squares: mean and std of a window follow from these three."""
    return tuple(app.Table(f"{name}-{part}", default=float,
                           partitions=app.conf.topic_partitions)
                 .hopping(size, step, expires=timedelta(seconds=size * 2))
                 for part in ("n", "sum", "sumsq"))


SCALES = [_tables("w1s", 1.0, 1.0), _tables("w10s", 10.0, 1.0), _tables("w60s", 60.0, 10.0)]


@app.agent(readings)
async def aggregate(stream):
    # Windows follow each message's timestamp (Faust's default, relative_to_stream), so a
    # frame's samples land in the windows of the frame's time: less work than true per-sample
    # event time, which favours this peer.
    done, mark = 0, 0
    async for value in stream:
        f = ReadingsFrame.decode(value)
        done += len(f)
        if done - mark >= 5_000:  # progress for the benchmark (commits stall under load)
            mark = done
            print(f"PEER {done} {time.monotonic():.3f}", file=sys.stderr, flush=True)
        # per frame and tag first (one table update per tag and frame instead of per
        # sample: ten times fewer changelog writes, again in the peer's favour)
        acc: dict[str, list[float]] = {}
        for tag, v in zip(f.tags, f.values.tolist()):
            a = acc.setdefault(tag, [0.0, 0.0, 0.0])
            a[0] += 1.0
            a[1] += v
            a[2] += v * v
        for tag, (cnt, sm, sq) in acc.items():
            key = f"{f.asset}:{tag}"
            for n, s, ss in SCALES:
                n[key] += cnt
                s[key] += sm
                ss[key] += sq


if __name__ == "__main__":
    app.main()
