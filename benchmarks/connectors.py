"""Connector throughput, side by side with bare client loops in the same invocation.

modbus  10 simulated Modbus/TCP devices (one server process), 100 float32 tags each.
        tocsin: ModbusSource (coalesced reads, decode, frames) + KafkaFrameSink with its
                store-and-forward spool, publishing to Kafka, polling as fast as it can,
                through `tocsin connect`'s own loop (connectors.base.run_source)
        bare:   one pymodbus client per device reading the same register blocks in a loop and
                decoding them with struct; no frames, no Kafka (the stricter reference)
        bare+kafka: the same loop, also producing each device's read (its 400 packed float32
                bytes, keyed by asset) to a Kafka topic of the same broker and partition count
                with a plain confluent-kafka Producer (librdkafka defaults plus the sink's
                linger.ms 5), poll(0) per produce, flush at the end: issue #20's peer,
                "a bare pymodbus loop, Kafka included"
opcua   one asyncua server (own process) with 5,000 Double variables all updated every 1 s.
        tocsin: OpcUaSource subscribed to all 5,000 (publishing interval 1 s) + KafkaFrameSink
        bare:   an asyncua client subscribed the same way, counting notifications

Each contender runs in its own process; samples/s are counted over the measuring window after
a warm-up. Usage: python -m benchmarks.connectors [--broker HOST:PORT] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import struct
import tempfile
import time
import uuid
from pathlib import Path

from benchmarks.report import OUT, Report, add_arguments, run_in_tree
from tocsin.connectors.kafka_admin import ensure_topics
from tocsin.services.kafka import KafkaBroker, free_port

DEVICES, TAGS = 10, 100
OPC_TAGS = 5000


# --------------------------------------------------------------------------- servers
def modbus_servers(base_port: int, ready) -> None:
    from tocsin.connectors.modbus import DeviceConfig
    from tocsin.connectors.simulator.modbus_server import PlantModbusServer

    async def run():
        servers = []
        for d in range(DEVICES):
            dev = DeviceConfig.model_validate(modbus_device(d, base_port))
            static = {f"t{i}": float(i) + d / 10 for i in range(TAGS)}
            servers.append(await PlantModbusServer(dev, port=base_port + d, static=static,
                                                   rate_hz=1.0).start())
        ready.set()
        await asyncio.sleep(3600)

    asyncio.run(run())


def modbus_device(d: int, base_port: int) -> dict:
    return {"name": f"dev{d}", "host": "127.0.0.1", "port": base_port + d, "asset": f"m{d}",
            "timeout_s": 2.0, "groups": [{"interval_ms": 1, "tags": [
                {"name": f"t{i}", "address": 2 * i, "type": "float32"} for i in range(TAGS)]}]}


def opcua_server(port: int, ready) -> None:
    from asyncua import Server, ua

    async def run():
        srv = Server()
        await srv.init()
        srv.set_endpoint(f"opc.tcp://127.0.0.1:{port}/bench/")
        srv.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        idx = await srv.register_namespace("urn:tocsin:bench")
        obj = await srv.nodes.objects.add_object(ua.NodeId("Bench", idx), "Bench")
        nodes = [await obj.add_variable(ua.NodeId(f"v{i}", idx), f"v{i}", 0.0)
                 for i in range(OPC_TAGS)]
        await srv.start()
        ready.set()
        k = 0
        while True:
            k += 1
            t0 = time.monotonic()
            for i, n in enumerate(nodes):
                await srv.write_attribute_value(n.nodeid, ua.DataValue(ua.Variant(
                    float(k + i), ua.VariantType.Double)))
            await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - t0)))

    asyncio.run(run())


# --------------------------------------------------------------------------- contenders
def run_tocsin(kind: str, broker: str, port: int, seconds: float, warm: float, out, spool):
    from tocsin.connectors.base import run_source
    from tocsin.connectors.kafka_sink import KafkaFrameSink

    topic = f"bench{uuid.uuid4().hex[:6]}.plant.readings"
    ensure_topics(broker, [topic], 4)
    if kind == "modbus":
        from tocsin.connectors.modbus import ModbusConfig, ModbusSource

        src = ModbusSource(ModbusConfig.model_validate(
            {"devices": [modbus_device(d, port) for d in range(DEVICES)]}))
    else:
        from tocsin.connectors.opcua import OpcUaConfig, OpcUaSource

        src = OpcUaSource(OpcUaConfig(
            endpoint=f"opc.tcp://127.0.0.1:{port}/bench/", publishing_interval_ms=1000,
            frame_interval_ms=100, timeout_s=60,
            assets={"bench": {f"v{i}": f"ns=2;s=v{i}" for i in range(OPC_TAGS)}}))
    sink = KafkaFrameSink(broker, topic, spool_dir=spool)

    class Counting:
        """The sink as `tocsin connect`'s loop (run_source) sees it; counts the samples of
        the measuring window and sets the stop event at its end."""

        spool = sink.spool

        def __init__(self):
            self.counted, self.t_start, self.c0, self.t_stop, self.cpu = 0, None, 0.0, 0.0, 0.0
            self.left = 0

        def publish(self, f) -> None:
            sink.publish(f)
            now = time.monotonic()
            if self.t_start is None and now >= t_end - seconds:
                self.t_start, self.counted, self.c0 = now, 0, time.process_time()
            elif self.t_start is not None and not stop.is_set():
                self.counted += len(f)
                if now >= t_end:
                    self.t_stop, self.cpu = now, time.process_time() - self.c0
                    stop.set()

        def drain_forever(self):
            return sink.drain_forever()

        def flush(self, timeout: float = 30.0) -> int:
            self.left = sink.flush(30)
            return self.left

    async def go():
        nonlocal stop
        stop = asyncio.Event()
        c = Counting()
        await run_source(src, c, stop)
        out.put((c.counted / (c.t_stop - c.t_start), sink.delivered, c.left,
                 c.cpu / c.counted))

    stop = None
    t_end = time.monotonic() + warm + seconds
    asyncio.run(go())


BARE_KAFKA_LINGER_MS = 5  # KafkaFrameSink's default linger.ms


class BareKafka:
    """bare+kafka's producer: a plain confluent-kafka Producer (librdkafka defaults plus the
    sink's linger.ms) on a fresh topic with the partition count of Tocsin's, poll(0) after
    every produce, flush at the end."""

    def __init__(self, broker: str):
        from confluent_kafka import Producer

        self.topic = f"benchbare{uuid.uuid4().hex[:6]}.plant.readings"
        ensure_topics(broker, [self.topic], 4)
        self.producer = Producer({"bootstrap.servers": broker,
                                  "linger.ms": BARE_KAFKA_LINGER_MS})
        self.acked = 0

    def _on_delivery(self, err, msg) -> None:
        if err is None:
            self.acked += 1

    def send(self, key: bytes, value: bytes) -> None:
        while True:
            try:
                self.producer.produce(self.topic, value, key=key,
                                      on_delivery=self._on_delivery)
                break
            except BufferError:  # local queue full: serve callbacks, then retry
                self.producer.poll(0.05)
        self.producer.poll(0)

    def flush(self) -> int:
        return self.producer.flush(30)


def run_bare(kind: str, port: int, seconds: float, warm: float, out,
             broker: str | None = None) -> None:
    """The bare client loop; with `broker` (Modbus only) every read is also produced to Kafka."""
    kafka = BareKafka(broker) if broker is not None else None

    async def modbus():
        from pymodbus.client import AsyncModbusTcpClient

        clients = []
        for d in range(DEVICES):
            c = AsyncModbusTcpClient("127.0.0.1", port=port + d, timeout=2)
            await c.connect()
            clients.append(c)
        counted, t_start = 0, None
        t_end = time.monotonic() + warm + seconds
        unpack = struct.Struct(">" + "f" * (TAGS)).unpack

        async def dev_loop(d, c):
            nonlocal counted
            key = f"m{d}".encode()
            while time.monotonic() < t_end:
                a = await c.read_holding_registers(0, count=124, device_id=1)
                b = await c.read_holding_registers(124, count=2 * TAGS - 124, device_id=1)
                regs = a.registers + b.registers
                raw = b"".join(r.to_bytes(2, "big") for r in regs)
                unpack(raw)
                if kafka is not None:
                    kafka.send(key, raw)
                if t_start is not None:
                    counted += TAGS

        async def clock():
            nonlocal t_start
            nonlocal c0
            await asyncio.sleep(warm)
            t_start, c0 = time.monotonic(), time.process_time()

        c0 = 0.0
        await asyncio.gather(clock(), *(dev_loop(d, c) for d, c in enumerate(clients)))
        rate, cpu = counted / (time.monotonic() - t_start), time.process_time() - c0
        for c in clients:
            c.close()
        return rate, cpu / counted

    async def opcua():
        from asyncua import Client

        counted = [0]

        class H:
            def datachange_notification(self, node, val, data):
                counted[0] += 1

        async with Client(f"opc.tcp://127.0.0.1:{port}/bench/", timeout=60) as c:
            nodes = [c.get_node(f"ns=2;s=v{i}") for i in range(OPC_TAGS)]
            sub = await c.create_subscription(1000, H())
            await sub.subscribe_data_change(nodes)
            await asyncio.sleep(warm)
            counted[0] = 0
            t0 = time.monotonic()
            await asyncio.sleep(seconds)
            return counted[0] / (time.monotonic() - t0), None

    rate, cpu = asyncio.run(modbus() if kind == "modbus" else opcua())
    left = kafka.flush() if kafka is not None else 0
    out.put((rate, kafka.acked if kafka is not None else None, left, cpu))


def run_baseline(out, tree: Path, *args) -> None:
    out.put(run_in_tree(tree, "benchmarks.connectors", "run_tocsin", *args[:-1], OUT,
                        args[-1]))


def measure(kind: str, broker: str, port: int, seconds: float, warm: float, rounds: int,
            rep: Report, base: Path | None = None) -> None:
    names = (["bare"] + (["bare+kafka"] if kind == "modbus" else []) + ["tocsin"]
             + (["tocsin@baseline"] if base else []))
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            q = mp.Queue()
            if name == "tocsin@baseline":
                spool = tempfile.mkdtemp(prefix="tocsin-bench-spool-")
                p = mp.Process(target=run_baseline, args=(
                    q, base, kind, broker, port, seconds, warm, spool))
            elif name == "bare":
                p = mp.Process(target=run_bare, args=(kind, port, seconds, warm, q))
            elif name == "bare+kafka":
                p = mp.Process(target=run_bare, args=(kind, port, seconds, warm, q, broker))
            else:
                spool = tempfile.mkdtemp(prefix="tocsin-bench-spool-")
                p = mp.Process(target=run_tocsin,
                               args=(kind, broker, port, seconds, warm, q, spool))
            p.start()
            rate, delivered, left, *cpu = q.get(timeout=seconds + warm + 300)
            p.join()
            fig = {"samples_per_s": rate}
            if cpu and cpu[0] is not None:  # CPU seconds of the whole contender process
                fig["cpu_us_per_sample"] = cpu[0] * 1e6
            rep.add(f"{kind} {name}", **fig)
            extra = "" if delivered is None else f" ({delivered:,} frames acked, {left} left)"
            print(f"{kind} round {r + 1} {name:>15}: {rate:,.0f} samples/s{extra}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--broker")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--only", choices=["modbus", "opcua"])
    args = add_arguments(ap).parse_args()
    rep = Report("connectors", vars(args))
    work = Path(tempfile.mkdtemp(prefix="tocsin-conn-bench-"))
    broker_obj = None
    broker = args.broker
    if broker is None:
        broker_obj = KafkaBroker(work / "kafka", port=free_port(),
                                 controller_port=free_port()).start()
        broker = broker_obj.bootstrap
    try:
        for kind in [args.only] if args.only else ["modbus", "opcua"]:
            ready = mp.Event()
            if kind == "modbus":
                port = free_port() + 0
                srv = mp.Process(target=modbus_servers, args=(port, ready), daemon=True)
                warm = 3.0
            else:
                port = free_port()
                srv = mp.Process(target=opcua_server, args=(port, ready), daemon=True)
                warm = 15.0  # subscribing 5,000 items takes a while
            srv.start()
            ready.wait(120)
            try:
                measure(kind, broker, port, args.seconds, warm, args.rounds, rep,
                        args.baseline_tree)
            finally:
                srv.terminate()
    finally:
        if broker_obj:
            broker_obj.stop()
    if args.only != "opcua":
        # issue #20's peer: the bare loop with Kafka included; the no-Kafka bare loop stays
        # as the stricter reference
        rep.check("Modbus connector vs bare pymodbus loop, Kafka included (issue #20's peer)",
                  "samples_per_s", "modbus tocsin", peer="modbus bare+kafka", op=">=",
                  target=0.8)
        rep.check("Modbus connector vs bare pymodbus loop without Kafka (stricter reference)",
                  "samples_per_s", "modbus tocsin", peer="modbus bare", op=">=", target=0.8)
        rep.check("Modbus CPU per sample vs bare+kafka (information)", "cpu_us_per_sample",
                  "modbus tocsin", peer="modbus bare+kafka")
        rep.check("Modbus CPU per sample vs bare (information)", "cpu_us_per_sample",
                  "modbus tocsin", peer="modbus bare")
        if args.baseline_tree:
            rep.check("Modbus connector, this tree vs the baseline tree", "samples_per_s",
                      "modbus tocsin", peer="modbus tocsin@baseline")
    if args.only != "modbus":
        rep.check("OPC UA connector vs bare asyncua subscription", "samples_per_s",
                  "opcua tocsin", peer="opcua bare")
    rep.finish(args)


if __name__ == "__main__":
    main()
