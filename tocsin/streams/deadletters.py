"""The one dead-letter helper every Faust app uses: the input kept whole, with the reason."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from tocsin.contracts import pan
from tocsin.contracts.deadletter import DeadLetter
from tocsin.streams import metrics

log = logging.getLogger("tocsin.worker")


def dead_letterer(topic, worker: str,
                  mask_pans: bool = False) -> Callable[..., Awaitable[None]]:
    """-> ``async dead_letter(event, error, stage)`` sending to ``topic`` (a Faust topic).
    ``mask_pans``: card numbers in the key, payload and error are masked (payments)."""

    async def dead_letter(event, error: str, stage: str) -> None:
        msg = event.message
        key, value = msg.key, msg.value
        if mask_pans:
            key = None if key is None else pan.mask_pans(key)
            value, error = pan.mask_pans(value or b""), pan.mask_text(error)
        dl = DeadLetter.wrap(source_topic=msg.topic, partition=msg.partition, offset=msg.offset,
                             key=key, payload=value, error=error, stage=stage,
                             worker=worker, ts=time.time_ns())
        await topic.send(key=msg.topic.encode(), value=dl.encode())
        metrics.DEADLETTERS.labels(msg.topic, stage).inc()
        log.warning("dead-lettered %s[%d]@%d: %s", msg.topic, msg.partition, msg.offset, error)

    return dead_letter
