"""`tocsin` CLI: The anomaly scores view."""

from __future__ import annotations

import click

from tocsin.cli.common import Group, broker_opt, prefix_opt, worker_settings


@click.group(cls=Group)
def scores() -> None:
    """Watch anomaly scores."""


@scores.command("tail")
@broker_opt
@prefix_opt
@click.option("--every", default=5.0, show_default=True, help="seconds between updates")
@click.option("--from-beginning", is_flag=True)
def scores_tail(broker, prefix, every: float, from_beginning: bool) -> None:
    """Print the newest scores of each asset every few seconds until Ctrl-C."""
    from tocsin.contracts import topics
    from tocsin.streams.scores_view import ScoresWatch

    s = worker_settings(broker, prefix, None)
    w = ScoresWatch(s.broker, s.topic(topics.SCORES), every=every, from_beginning=from_beginning)
    try:
        w.run()
    except KeyboardInterrupt:
        pass


COMMANDS = (scores,)
