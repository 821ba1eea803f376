"""The ceiling for the threshold path: a bare confluent-kafka consume -> check -> produce loop.

It does the same pure work as the Tocsin worker (decode the frame, run the same
ThresholdAlerter, encode alerts) with the lightest Kafka client path (librdkafka, no Faust,
no asyncio), so the ratio Tocsin / bare isolates the cost of the Faust shell.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time

from confluent_kafka import Consumer, Producer

from tocsin.config.plant import load_plant
from tocsin.contracts.readings import ReadingsFrame
from tocsin.detectors.threshold_alerts import alerter_from_plant


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--broker", required=True)
    ap.add_argument("--prefix", required=True)
    ap.add_argument("--plant-config", required=True)
    ap.add_argument("--linger-ms", type=float, default=0.0,
                    help="producer linger.ms (0: each alert sent at once, the latency ceiling; "
                    "a few ms batch the alerts like the runtime's transaction does)")
    args = ap.parse_args()
    alerter = alerter_from_plant(load_plant(args.plant_config))
    consumer = Consumer({"bootstrap.servers": args.broker, "group.id": f"{args.prefix}bare",
                         "auto.offset.reset": "earliest", "fetch.wait.max.ms": 10,
                         "enable.auto.commit": True})
    producer = Producer({"bootstrap.servers": args.broker, "linger.ms": args.linger_ms, "acks": "all",
                         "enable.idempotence": True})
    consumer.subscribe([args.prefix + "plant.readings"])
    out_topic = args.prefix + "plant.alerts"
    running = True

    def stop(*_):
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    announced = False
    while running:
        # block for the first message only, then take what is already fetched: consume(n, t)
        # alone would wait for n messages or t seconds and add up to t to every latency
        first = consumer.poll(0.05)
        msgs = [] if first is None else [first, *consumer.consume(499, 0)]
        if not announced and consumer.assignment():
            print("ready", flush=True)
            announced = True
        for msg in msgs:
            if msg.error():
                continue
            frame = ReadingsFrame.decode(msg.value())
            for alert in alerter.process(frame, time.time_ns()):
                producer.produce(out_topic, alert.encode(), key=alert.alert_id.encode())
        producer.poll(0)
    producer.flush(10)
    consumer.close()
    sys.exit(0)


if __name__ == "__main__":
    main()
