"""The one dead-letter helper every Faust app uses, and the poison rule it serves.

Poison rule (DESIGN.md principle 13): any exception while decoding or processing one record
sends that record here with the reason and its origin (topic, partition, offset, timestamp);
the agent acknowledges it and goes on. The dead letter always fits (see
:mod:`tocsin.contracts.deadletter`); if even sending it fails, that is logged and the stream
still goes on: one bad record must never stop the alarms. Log lines are throttled per stage,
so a flood of bad input is one line a minute, not one per record.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from tocsin.contracts import pan
from tocsin.contracts.deadletter import PAYLOAD_LIMIT, Origin, envelope
from tocsin.detectors.bounds import Throttled
from tocsin.streams import metrics

log = logging.getLogger("tocsin.worker")


def reason(exc: BaseException) -> str:
    """A dead letter's reason: SchemaError text as is, anything else with its type."""
    from tocsin.errors import SchemaError

    return str(exc) if isinstance(exc, SchemaError) else f"{type(exc).__name__}: {exc}"


def origin_of(msg, key: bytes | None = None) -> Origin:
    ts = getattr(msg, "timestamp", None)
    return Origin(msg.topic, msg.partition, msg.offset,
                  int(ts * 1e9) if isinstance(ts, (int, float)) and ts > 0 else 0, key)


def dead_letterer(topic, worker: str, limit: int = PAYLOAD_LIMIT, interval_s: float = 60.0,
                  mask_pans: bool = False) -> Callable[..., Awaitable[None]]:
    """-> ``async dead_letter(event, error, stage)`` sending to ``topic`` (a Faust topic).
    ``mask_pans``: card numbers in the key, payload and error are masked (payments) before
    the envelope is built, so its SHA-256 is of the masked bytes."""
    report = Throttled(log, f"{worker}: records dead-lettered", interval_s)

    async def dead_letter(event, error: str, stage: str) -> None:
        msg = event.message
        try:
            key, value = msg.key, msg.value
            if mask_pans:
                key = None if key is None else pan.mask_pans(key)
                value, error = pan.mask_pans(value or b""), pan.mask_text(error)
            dl = envelope(value, error, origin_of(msg, key), stage=stage, worker=worker,
                          ts=time.time_ns(), limit=limit)
            await topic.send(key=msg.topic.encode(), value=dl.encode())
        except Exception as exc:  # never let the dead letter stop the stream
            log.error("could not dead-letter %s[%d]@%d (%s): %r", msg.topic, msg.partition,
                      msg.offset, error[:200], exc)
            return
        metrics.DEADLETTERS.labels(msg.topic, stage).inc()
        report.note(stage, example=f"{msg.topic}[{msg.partition}]@{msg.offset}: {error[:300]}")

    return dead_letter
