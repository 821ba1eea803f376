"""Watch plant.scores: a compact line per asset every few seconds, and a summary of how the
scores moved around a moment (the demo's injected fault)."""

from __future__ import annotations

import threading
import time
import uuid
from collections import defaultdict
from typing import Callable

import numpy as np
from confluent_kafka import Consumer, KafkaError
from rich.console import Console

from tocsin.config.kafka_security import client_conf
from tocsin.contracts.scores import Scores
from tocsin.errors import SchemaError


class ScoresWatch:
    """Collects every score; prints the newest per asset every ``every`` seconds."""

    def __init__(self, bootstrap: str, topic: str, *, every: float = 5.0,
                 console: Console | None = None, from_beginning: bool = False):
        self.console = console or Console(soft_wrap=True)
        self.every = every
        self.history: dict[str, list[tuple[float, Scores]]] = defaultdict(list)
        self.consumer = Consumer(client_conf(bootstrap, {"group.id": f"tocsin-scores-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest" if from_beginning else "latest",
            "enable.auto.commit": False}))
        self.consumer.subscribe([topic])
        self._stop = threading.Event()
        self._closed = threading.Event()

    def run(self, until: Callable[[], bool] = lambda: False) -> None:
        last = time.monotonic()
        try:
            while not self._stop.is_set() and not until():
                msg = self.consumer.poll(0.2)
                if msg is not None and not msg.error():
                    try:
                        s = Scores.decode(msg.value())
                    except SchemaError as exc:
                        self.console.print(f"[red]undecodable score: {exc}[/]")
                    else:
                        self.history[s.asset].append((time.monotonic(), s))
                elif msg is not None and msg.error().code() != KafkaError._PARTITION_EOF:
                    self.console.print(f"[red]kafka: {msg.error()}[/]")
                if time.monotonic() - last >= self.every:
                    last = time.monotonic()
                    self.print_latest()
        finally:
            self.consumer.close()
            self._closed.set()

    def stop(self, wait_s: float = 5.0) -> None:
        """Stop polling; waits (up to ``wait_s``) until the consumer is closed when `run`
        started in another thread, so that the broker can go away after this returns."""
        self._stop.set()
        self._closed.wait(wait_s)

    def print_latest(self) -> None:
        for asset in sorted(self.history):
            s = self.history[asset][-1][1]
            self.console.print(format_scores(s), highlight=False)

    def summary(self, asset: str, since: float) -> tuple[float, float] | None:
        """Median of the larger model ratio before and after the monotonic time ``since``."""
        h = self.history.get(asset, [])
        before = [_ratio(s) for t, s in h if t < since]
        after = [_ratio(s) for t, s in h if t >= since + 5]
        if not before or not after:
            return None
        return float(np.median(before)), float(np.median(after))


def _ratio(s: Scores) -> float:
    return max((m.ratio for m in s.models.values() if m is not None), default=0.0)


def format_scores(s: Scores) -> str:
    parts = []
    for name, m in s.models.items():
        if m is None:
            parts.append(f"{name} (warming up)")
        else:
            colour = "red" if m.ratio > 1 else "green"
            parts.append(f"{name} [{colour}]{m.ratio:5.2f}x[/{colour}]")
    top = s.top_tags(2)
    when = time.strftime("%H:%M:%S", time.gmtime(s.ts / 1e9))
    flag = "[bold red]ANOMALOUS[/]" if s.anomalous else "normal   "
    return (f"  scores {when} {s.asset:<8} {flag} " + "  ".join(parts)
            + (f"  top: {', '.join(top)}" if top else ""))
