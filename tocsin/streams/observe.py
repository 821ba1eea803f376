"""Health and lag for a Faust app: a timer that beats the liveness heartbeat, marks the app
ready once it runs, and publishes consumer lag per input topic.

Lag is read from the app's own consumer (log end offset minus the last offset read, over the
partitions this worker holds), so every replica reports only its share and the sum over
replicas is the group's lag; KEDA reads the same figure from the broker.
"""

from __future__ import annotations

import logging

import faust

from tocsin.connectors import telemetry
from tocsin.connectors.health import HEALTH, Health

log = logging.getLogger(__name__)


def instrument(app: faust.App, *, topic_prefix: str = "", every_s: float = 2.0,
               health: Health = HEALTH) -> None:
    state = {"running": False}

    def _running() -> bool | str:
        return state["running"] or "the app has not started its agents yet"

    def _not_rebalancing() -> bool | str:
        return not getattr(app, "rebalancing", False) or "consumer group rebalancing"

    health.add_check("faust_running", _running)
    health.add_check("not_rebalancing", _not_rebalancing)

    @app.timer(every_s, name="tocsin-observe")
    async def _observe() -> None:
        health.beat()
        state["running"] = True
        consumer = app.consumer
        try:
            lags = telemetry.lag_by_topic(consumer.assignment(), consumer.highwater,
                                          consumer._read_offset)
        except Exception as exc:  # no assignment yet, consumer restarting: try again later
            log.debug("lag not available: %r", exc)
            return
        telemetry.set_lag(lags, topic_prefix)
