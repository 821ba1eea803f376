"""What every `tocsin` command shares, defined once: the error handling group, the Kafka and
topic-prefix options, worker settings, stopping on a signal, launching a Faust worker, and the
console used for progress. Heavy imports happen inside the functions."""

from __future__ import annotations

import asyncio
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import click

from tocsin.errors import TocsinError

DATA = Path(__file__).resolve().parent.parent / "data"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def fail(exc: Exception) -> None:
    click.secho(f"error: {exc}", fg="red", err=True)
    sys.exit(2)


class Group(click.Group):
    """A click group that prints a Tocsin error as one red line (exit 2), not a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except TocsinError as exc:
            fail(exc)


broker_opt = click.option("--broker", default=None, help="Kafka host:port (env TOCSIN_BROKER)")
prefix_opt = click.option("--prefix", default=None,
                          help="topic prefix (env TOCSIN_TOPIC_PREFIX)")
fmt_opt = click.option("--format", "fmt", default="table", show_default=True,
                       type=click.Choice(["table", "csv", "json"]))
model_dir_opt = click.option("--model-dir", type=click.Path(file_okay=False), default=None,
                             envvar="TOCSIN_MODEL_DIR",
                             help="artifact root [env TOCSIN_MODEL_DIR; default "
                                  "~/.local/share/tocsin/models]")
plant_config_opt = click.option("--plant-config", type=click.Path(exists=True, dir_okay=False),
                                default=None,
                                help="plant YAML (default: the simulated plant's)")


def worker_settings(broker=None, prefix=None, plant_config=None, **overrides):
    """Worker settings from the environment (``TOCSIN_*``) with command-line overrides."""
    from tocsin.config.worker import load_settings

    return load_settings(broker=broker, topic_prefix=prefix, plant_config=plant_config,
                         **overrides)


def stop_flag() -> Callable[[], bool]:
    """A callable that turns true on Ctrl-C/SIGTERM, for clean stops of long loops."""
    flag = threading.Event()
    for sig in STOP_SIGNALS:
        signal.signal(sig, lambda *_: flag.set())
    return flag.is_set


def wait_for_signal() -> None:
    """Block the main thread until Ctrl-C/SIGTERM (servers running in other threads)."""
    is_set = stop_flag()
    while not is_set():
        time.sleep(0.5)


def run_until_signal(coro_fn: Callable[[asyncio.Event], Awaitable[object]]):
    """Run ``coro_fn(stop)`` on a new event loop; ``stop`` is set on Ctrl-C/SIGTERM."""

    async def main():
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, stop.set)
        return await coro_fn(stop)

    return asyncio.run(main())


async def until_signal() -> None:
    """Wait (inside a running event loop) until Ctrl-C/SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def launch_worker(app, loglevel: str = "info") -> None:
    """Run a Faust app as a worker in this process until it is stopped (the one launcher every
    `... worker` command uses)."""
    from faust.worker import Worker

    Worker(app, loglevel=loglevel, quiet=True).execute_from_commandline()


def console():
    from rich.console import Console

    return Console(stderr=True, soft_wrap=True, width=None if sys.stderr.isatty() else 160)


def progress_say(con) -> Callable[[str], None]:
    """A ``say(msg)`` that prints ``msg`` with the seconds since it was made."""
    t0 = time.perf_counter()

    def say(msg: str) -> None:
        con.print(f"[dim]{time.perf_counter() - t0:7.1f}s[/dim] {msg}", highlight=False)

    return say


def train_opts(f):
    """The anomaly-model training options shared by `tocsin train plant` and `tocsin eval`."""
    for opt in reversed([
        click.option("--epochs", default=200, show_default=True,
                     help="most LSTM-AE epochs (it stops early on a held-out normal part)"),
        click.option("--seq-len", default=20, show_default=True,
                     help="ticks in the LSTM-AE window (20 x 1 s = 20 s)"),
        click.option("--score-steps", default=5, show_default=True,
                     help="last ticks of the window that are scored"),
        click.option("--ae-arch", default="step", show_default=True,
                     type=click.Choice(["step", "sequence"]),
                     help="LSTM-AE shape: per-step bottleneck, or one code per window (old)"),
        click.option("--threshold-surprise", default=4.0, show_default=True,
                     help="Isolation Forest and LSTM-AE thresholds: a normal tick that "
                          "extreme once in 10^N (tail fit on held-back normal ticks)"),
        click.option("--quantile", type=float, default=None,
                     help="instead: this empirical quantile of the held-back scores"),
        click.option("--seed", default=0, show_default=True),
        click.option("--threads", default=1, show_default=True, help="torch threads"),
    ]):
        f = opt(f)
    return f


def train_config(epochs, seq_len, score_steps, quantile, seed, threads, ae_arch="step",
                 threshold_surprise=4.0, **extra):
    from tocsin.models.training import TrainConfig

    return TrainConfig(epochs=epochs, seq_len=seq_len, score_steps=score_steps,
                       quantile=quantile, seed=seed, threads=threads, arch=ae_arch,
                       threshold_surprise=threshold_surprise, **extra)
