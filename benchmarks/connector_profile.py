"""Where the Modbus connector's CPU goes, per frame, next to the bare pymodbus loops (#20).

Runs the contenders of ``benchmarks.connectors --only modbus`` one after another against the
same 10 simulated devices (100 float32 tags each, one frame = one device poll = 100 samples)
and times the parts of each with the CPU clock of the thread that runs them
(``time.thread_time_ns`` around wrapped functions):

  pymodbus send      TransactionManager.pdu_send: frame build + transport write (syscall)
  pymodbus receive   TransactionManager.datagram_received: framer, response decode, future
  epoll              the event loop's selector.select (the wait for the devices' replies)
  decode             BlockDecoder (tocsin) / bytes join + struct.unpack (bare)
  frame build        PollLayout.new_poll/split + ReadingsFrame construction (tocsin)
  telemetry          telemetry.observe_frame (tocsin)
  wire encode        ReadingsFrame.encode (orjson JSON)
  spool append       DiskSpool.append (header, CRC32, buffered write, memory copy)
  spool take / ack   DiskSpool.take (incl. the buffer's write call) / DiskSpool.ack
  produce            Producer.produce (librdkafka enqueue, Python callback object)
  producer poll      Producer.poll(0) (delivery callbacks run here)
  sink publish/pump  KafkaFrameSink.publish/pump minus the parts they call (their own Python)
  rest               the main thread's CPU minus every part above: asyncio (tasks, futures,
                     pymodbus' per-request lock and wait_for), the poll loop, the source's
                     queue, run_source's loop
  librdkafka threads the CPU of the process's other threads (/proc/self/task), i.e.
                     librdkafka's broker and main threads (batching, compression, sends)

Every timed call costs one extra clock read inside its window; that cost is measured and
subtracted. The instrumented run is slower than the benchmark's (the wrappers), so the table
also gives the uninstrumented CPU per frame of each contender, measured right before.
Usage: python -m benchmarks.connector_profile --broker 127.0.0.1:9092 [--seconds 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import struct
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path

from benchmarks.connectors import DEVICES, TAGS, modbus_device, modbus_servers
from tocsin.connectors.kafka_admin import ensure_topics
from tocsin.services.kafka import free_port

_now = time.thread_time_ns


class Parts:
    """Exclusive CPU time per named part: a timed call inside another timed call is
    subtracted from its parent, so nested parts (the sink's publish -> pump -> produce) add up
    to the thread's time without double counting."""

    def __init__(self) -> None:
        self.ns: dict[str, int] = defaultdict(int)
        self.calls: dict[str, int] = defaultdict(int)
        self.top = 0  # timed calls not inside another timed call
        self.on = False
        self._child = [0]  # per open window: time spent in timed children

    def wrap(self, name: str, fn):
        ns, calls, child = self.ns, self.calls, self._child

        def timed(*a, **kw):
            if not self.on:
                return fn(*a, **kw)
            child.append(0)
            t0 = _now()
            try:
                return fn(*a, **kw)
            finally:
                el = _now() - t0
                mine = child.pop()
                ns[name] += el - mine
                calls[name] += 1
                if len(child) == 1:
                    self.top += 1
                child[-1] += el
        return timed

    def reset(self) -> None:
        self.ns.clear()
        self.calls.clear()
        self.top = 0


def _calibrate() -> tuple[float, float]:
    """(ns a timed call adds inside its own window, ns it adds outside it: to the parent
    window or, at top level, to the thread), measured on no-op functions."""
    n = 100_000
    p = Parts()
    p.on = True
    noop = p.wrap("noop", lambda: None)
    for _ in range(1000):
        noop()
    p.reset()
    t0 = _now()
    for _ in range(n):
        noop()
    wrapped = _now() - t0
    inside = p.ns["noop"] / n

    def raw():
        return None
    t0 = _now()
    for _ in range(n):
        raw()
    plain = _now() - t0
    return inside, max((wrapped - plain) / n - inside, 0.0)


def _threads_cpu() -> dict[str, float]:
    """CPU seconds of each thread of this process, by tid (utime + stime)."""
    out = {}
    tick = os.sysconf("SC_CLK_TCK")
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                st = f.read().rsplit(")", 1)[1].split()
            out[tid] = (int(st[11]) + int(st[12])) / tick
        except OSError:
            pass
    return out


def _instrument_pymodbus(parts: Parts) -> None:
    from pymodbus.transaction.transaction import TransactionManager

    TransactionManager.pdu_send = parts.wrap("pymodbus send", TransactionManager.pdu_send)
    TransactionManager.datagram_received = parts.wrap(
        "pymodbus receive", TransactionManager.datagram_received)


def _instrument_loop(parts: Parts) -> None:
    loop = asyncio.get_running_loop()
    sel = loop._selector  # type: ignore[attr-defined]
    sel.select = parts.wrap("epoll", sel.select)


class _TimedProducer:
    """The sink's Producer with timed produce and poll (the C type takes no patches)."""

    def __init__(self, p, parts: Parts):
        self._p = p
        self.produce = parts.wrap("produce", p.produce)
        self.poll = parts.wrap("producer poll", p.poll)
        self.flush = p.flush

    def __len__(self) -> int:
        return len(self._p)


def profile_tocsin(broker: str, port: int, seconds: float, warm: float, out) -> None:
    from tocsin.connectors import kafka_sink, modbus, modbus_block, spool, telemetry
    from tocsin.connectors.base import run_source
    from tocsin.contracts.readings import ReadingsFrame

    parts = Parts()
    _instrument_pymodbus(parts)
    modbus_block.BlockDecoder.__call__ = parts.wrap("decode", modbus_block.BlockDecoder.__call__)
    new_poll, split = modbus_block.PollLayout.new_poll, modbus_block.PollLayout.split
    modbus_block.PollLayout.new_poll = parts.wrap("frame build", new_poll)
    eager = parts.wrap("frame build", lambda *a: list(split(*a)))
    modbus_block.PollLayout.split = lambda *a: iter(eager(*a))  # type: ignore[method-assign]
    modbus.ReadingsFrame = parts.wrap("frame build", ReadingsFrame)  # type: ignore[misc]
    telemetry.observe_frame = parts.wrap("telemetry", telemetry.observe_frame)
    ReadingsFrame.encode = parts.wrap("wire encode", ReadingsFrame.encode)
    spool.DiskSpool.append = parts.wrap("spool append", spool.DiskSpool.append)
    spool.DiskSpool.take = parts.wrap("spool take", spool.DiskSpool.take)
    spool.DiskSpool.ack = parts.wrap("spool ack", spool.DiskSpool.ack)
    kafka_sink.KafkaFrameSink.publish = parts.wrap("sink publish",
                                                   kafka_sink.KafkaFrameSink.publish)
    kafka_sink.KafkaFrameSink.pump = parts.wrap("sink pump",
                                                kafka_sink.KafkaFrameSink.pump)

    topic = f"benchprof{uuid.uuid4().hex[:6]}.plant.readings"
    ensure_topics(broker, [topic], 4)
    src = modbus.ModbusSource(modbus.ModbusConfig.model_validate(
        {"devices": [modbus_device(d, port) for d in range(DEVICES)]}))
    sink = kafka_sink.KafkaFrameSink(broker, topic,
                                     spool_dir=tempfile.mkdtemp(prefix="tocsin-prof-spool-"))
    sink.producer = _TimedProducer(sink.producer, parts)  # type: ignore[assignment]

    async def go():
        _instrument_loop(parts)
        stop = asyncio.Event()
        res = {}

        async def clock():
            await asyncio.sleep(warm)
            parts.reset()
            parts.on = True
            th0, c0, d0 = _threads_cpu(), time.thread_time(), sink.delivered
            await asyncio.sleep(seconds)
            parts.on = False
            th1, c1 = _threads_cpu(), time.thread_time()
            main = str(threading.get_native_id())
            res.update(main_cpu=c1 - c0, other_cpu=sum(th1[t] - th0.get(t, 0.0)
                                                       for t in th1 if t != main),
                       frames=parts.calls["sink publish"],
                       acked=sink.delivered - d0)
            stop.set()

        task = asyncio.create_task(clock())
        await run_source(src, sink, stop)
        await task
        return res

    res = asyncio.run(go())
    out.put(_table("tocsin", parts, res))


def profile_bare(broker: str | None, port: int, seconds: float, warm: float, out) -> None:
    from pymodbus.client import AsyncModbusTcpClient

    parts = Parts()
    _instrument_pymodbus(parts)
    kafka = None
    if broker:
        from benchmarks.connectors import BareKafka

        kafka = BareKafka(broker)  # the benchmark's bare+kafka producer, timed
        kafka.producer = _TimedProducer(kafka.producer, parts)  # type: ignore[assignment]
    unpack = struct.Struct(">" + "f" * TAGS).unpack

    def decode(a, b):
        raw = b"".join(r.to_bytes(2, "big") for r in a.registers + b.registers)
        unpack(raw)
        return raw

    decode = parts.wrap("decode", decode)
    frames = [0]

    async def go():
        _instrument_loop(parts)
        clients = []
        for d in range(DEVICES):
            c = AsyncModbusTcpClient("127.0.0.1", port=port + d, timeout=2)
            await c.connect()
            clients.append(c)
        t_end = time.monotonic() + warm + seconds
        res = {}

        async def dev_loop(d, c):
            key = f"m{d}".encode()
            while time.monotonic() < t_end:
                a = await c.read_holding_registers(0, count=124, device_id=1)
                b = await c.read_holding_registers(124, count=2 * TAGS - 124, device_id=1)
                raw = decode(a, b)
                if kafka is not None:
                    kafka.send(key, raw)
                if parts.on:
                    frames[0] += 1

        async def clock():
            await asyncio.sleep(warm)
            parts.reset()
            parts.on = True
            th0, c0 = _threads_cpu(), time.thread_time()
            await asyncio.sleep(seconds - 0.05)
            parts.on = False
            th1, c1 = _threads_cpu(), time.thread_time()
            main = str(threading.get_native_id())
            res.update(main_cpu=c1 - c0, other_cpu=sum(th1[t] - th0.get(t, 0.0)
                                                       for t in th1 if t != main),
                       frames=frames[0])

        await asyncio.gather(clock(), *(dev_loop(d, c) for d, c in enumerate(clients)))
        for c in clients:
            c.close()
        if kafka is not None:
            kafka.flush()
        return res

    res = asyncio.run(go())
    out.put(_table("bare+kafka" if broker else "bare", parts, res))


LEAVES = ["pymodbus send", "pymodbus receive", "epoll", "decode", "frame build", "telemetry",
          "wire encode", "spool append", "spool take", "spool ack", "produce", "producer poll",
          "sink publish", "sink pump"]


def _table(name: str, parts: Parts, res: dict) -> dict:
    """µs per frame of each part (clock overhead subtracted); the rest computed."""
    inside, outside = _calibrate()
    n = max(res["frames"], 1)
    calls = parts.calls
    # a part's window holds one clock read of its own and the wrapper costs of its children;
    # children's calls are known only in total, so charge them to the glue parts that make
    # them (the sink's publish and pump), where they happen
    row = {k: max(parts.ns[k] - inside * calls[k], 0) / 1e3 / n for k in parts.ns}
    nested = sum(calls.values()) - parts.top
    glue = [k for k in ("sink publish", "sink pump") if k in row]
    if glue:
        share = outside * nested / 1e3 / n / len(glue)
        for k in glue:
            row[k] = max(row[k] - share, 0.0)
    main_us = res["main_cpu"] * 1e6 / n
    timed_total = sum(row.values())
    overhead = (inside + outside) * sum(calls.values()) / 1e3 / n
    row["rest"] = main_us - timed_total - overhead
    row["instrumentation (subtracted)"] = overhead
    row["main thread"] = main_us
    row["librdkafka threads"] = res["other_cpu"] * 1e6 / n
    row["process"] = main_us + row["librdkafka threads"]
    return {"name": name, "frames": res["frames"], "us_per_frame": row,
            "calls_per_frame": {k: calls[k] / n for k in calls},
            "clock_ns": [inside, outside], **{k: v for k, v in res.items() if k != "frames"}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--broker", default="127.0.0.1:9092")
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--port", type=int, help="first of the 10 device ports (default: a free "
                    "port and the 9 above it)")
    args = ap.parse_args()
    port = args.port or free_port()
    ready = mp.Event()
    srv = mp.Process(target=modbus_servers, args=(port, ready), daemon=True)
    srv.start()
    ready.wait(120)
    results = []
    try:
        for _name, target, a in [("bare", profile_bare, (None,)),
                                ("bare+kafka", profile_bare, (args.broker,)),
                                ("tocsin", profile_tocsin, (args.broker,))]:
            q = mp.Queue()
            p = mp.Process(target=target, args=(*a, port, args.seconds, 3.0, q))
            p.start()
            results.append(q.get(timeout=args.seconds + 300))
            p.join()
    finally:
        srv.terminate()
    keys = LEAVES + ["rest", "instrumentation (subtracted)", "main thread", "librdkafka threads",
                     "process"]
    print(f"load average {os.getloadavg()}")
    print("| part | " + " | ".join(f"{r['name']} µs/frame (µs/sample)" for r in results) + " |")
    print("|---|" + "---|" * len(results))
    for k in keys:
        cells = []
        for r in results:
            v = r["us_per_frame"].get(k)
            cells.append("" if v is None else f"{v:.1f} ({v / TAGS:.3f})")
        print(f"| {k} | " + " | ".join(cells) + " |")
    print("frames measured: " + ", ".join(f"{r['name']} {r['frames']:,}" for r in results))
    print("calls per frame: " + "; ".join(
        r["name"] + ": " + ", ".join(f"{k} {v:.2f}" for k, v in sorted(r["calls_per_frame"].items()))
        for r in results))
    if args.json:
        args.json.write_text(json.dumps({"loadavg_end": os.getloadavg(), "results": results},
                                        indent=1))


if __name__ == "__main__":
    main()
