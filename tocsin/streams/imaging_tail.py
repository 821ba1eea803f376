"""Follow `imaging.findings` and print each finding readably (rich)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from confluent_kafka import Consumer, KafkaError
from rich.console import Console

from tocsin.contracts.imaging import Finding
from tocsin.errors import SchemaError
from tocsin.streams import topics


def format_finding(f: Finding) -> str:
    style = "bold red" if f.positive else "green"
    r = f.roi
    return (f"[{style}]{'NODULE?' if f.positive else 'clear':>7}[/] {f.modality} "
            f"{f.vendor or '-'} sop {f.sop_uid[-16:]}  p={f.probability:.3f} "
            f"(thr {f.threshold:.3f})  ROI rows {r['row']}-{r['row'] + r['rows']} cols "
            f"{r['col']}-{r['col'] + r['cols']}  {f.model['name']}/{f.model['branch']} on "
            f"{f.model['backend']}  batch {f.batch_size}  "
            f"[dim]end-to-end {f.latency_ms.get('end_to_end', 0):.1f} ms[/]")


def tail_findings(settings, timeout: float | None = None, *, from_beginning: bool = True,
                  until: Callable[[list[Finding]], bool] = lambda seen: False,
                  console: Console | None = None) -> list[Finding]:
    console = console or Console(soft_wrap=True)
    c = Consumer({"bootstrap.servers": settings.broker,
                  "group.id": f"tocsin-imaging-tail-{uuid.uuid4().hex}",
                  "auto.offset.reset": "earliest" if from_beginning else "latest",
                  "enable.auto.commit": False})
    c.subscribe([settings.topic(topics.IMAGING_FINDINGS)])
    seen: list[Finding] = []
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while not until(seen) and (deadline is None or time.monotonic() < deadline):
            msg = c.poll(0.2)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() != KafkaError._PARTITION_EOF:
                    console.print(f"[red]kafka: {msg.error()}[/]")
                continue
            try:
                f = Finding.decode(msg.value())
            except SchemaError as exc:
                console.print(f"[red]undecodable finding at offset {msg.offset()}: {exc}[/]")
                continue
            seen.append(f)
            console.print(format_finding(f), highlight=False)
    except KeyboardInterrupt:
        pass
    finally:
        c.close()
    return seen
