"""A toy counting operator: the runtime's own test and benchmark subject.

Counts records per key in KeyedState and emits ``key:count:value`` for each record, so a
read_committed consumer can check exactly-once by eye: every input value once, counts per key
1, 2, 3, ... without a gap or a step back. Run it as a worker process:
``python -m tocsin.streams.runtime.counting --broker B --prefix P --worker w1``.
"""

from __future__ import annotations

from collections.abc import Sequence

from tocsin.streams.runtime.operator import Emitter, Record, Restore
from tocsin.streams.runtime.state import KeyedState

IN, OUT = "rt.in", "rt.out"


class Counting:
    name = "counting"

    def __init__(self, prefix: str = "", work_us: int = 0):
        self.src, self.dst = prefix + IN, prefix + OUT
        self.work_us = work_us
        self.states: dict[int, KeyedState] = {}

    def inputs(self) -> list[str]:
        return [self.src]

    def restore_mode(self) -> Restore:
        return Restore.changelog()

    def open(self, partition: int, state: KeyedState) -> None:
        self.states[partition] = state

    def close(self, partition: int) -> None:
        self.states.pop(partition, None)

    def process(self, records: Sequence[Record], out: Emitter) -> None:
        for r in records:
            st = self.states[r.partition]
            key = r.key or b""
            n = int(st.get(key, b"0")) + 1
            st[key] = str(n).encode()
            out.send(self.dst, key, b"%s:%d:%s" % (key, n, r.value))

    def tick(self, now_ns: int, out: Emitter) -> None:
        pass


def main() -> None:
    import argparse
    import logging

    from tocsin.config.worker import load_settings
    from tocsin.connectors import kafka_admin
    from tocsin.streams.runtime.runner import Runner
    from tocsin.streams.runtime.worker import serve

    ap = argparse.ArgumentParser()
    ap.add_argument("--broker", required=True)
    ap.add_argument("--prefix", default="")
    ap.add_argument("--worker", default="w1")
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--guarantee", default="exactly_once")
    ap.add_argument("--protocol", default="classic")
    ap.add_argument("--session-ms", type=int, default=3000)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    s = load_settings(broker=args.broker, topic_prefix=args.prefix, worker_name=args.worker,
                      processing_guarantee=args.guarantee, group_protocol=args.protocol,
                      session_timeout_ms=args.session_ms,
                      heartbeat_interval_ms=min(1000, args.session_ms // 3))
    kafka_admin.ensure_topics(s.broker, [s.topic(IN), s.topic(OUT), s.topic("tocsin.deadletter")],
                              args.partitions)
    serve([Runner(Counting(args.prefix), s)])


if __name__ == "__main__":
    main()
