"""`tocsin` CLI: Record, replay, recordings and CSV import."""

from __future__ import annotations

import sys
import time

import click

from tocsin.cli.common import Group, broker_opt, prefix_opt, stop_flag, worker_settings


@click.command()
@click.argument("topics_", metavar="TOPIC...", nargs=-1, required=True)
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="recording file to write")
@broker_opt
@click.option("--start", default="beginning", show_default=True,
              help="beginning | end | offset:N | an ISO-8601 time")
@click.option("--until", default="end", show_default=True,
              help="end (the end as of now) | live (until Ctrl-C/--duration) | ISO-8601 time")
@click.option("--duration", type=float, default=None, help="seconds, for --until live")
def record(topics_, output, broker, start, until, duration) -> None:
    """Record TOPIC... (every partition) into a compressed recording file."""
    from rich.progress import Progress, TextColumn, TimeElapsedColumn

    from tocsin.connectors.recorder import RecordSpec
    from tocsin.connectors.recorder import record as do_record

    s = worker_settings(broker, None, None)
    stop = stop_flag()
    with Progress(TextColumn("{task.description}"), TimeElapsedColumn(),
                  transient=False) as bar:
        task = bar.add_task("recording", total=None)

        plain = not sys.stderr.isatty()
        told = {"n": -1, "at": 0.0}

        def progress(n, nbytes):
            bar.update(task, description=f"recording: {n:,} messages, {nbytes / 1e6:.1f} MB")
            # no live bar without a terminal: a plain line when the count moves (once a
            # second at most), so a log shows that it started and how far it got
            now = time.monotonic()
            if plain and n != told["n"] and (told["n"] < 0 or now - told["at"] >= 1.0):
                print(f"recording: {n} messages", file=sys.stderr, flush=True)
                told.update(n=n, at=now)

        n = do_record(s.broker, RecordSpec(list(topics_), start, until, duration), output,
                      progress=progress, stop=stop)
    click.echo(f"recorded {n:,} messages from {', '.join(topics_)} to {output}")


@click.command("replay")
@click.argument("recording", type=click.Path(exists=True, dir_okay=False))
@broker_opt
@prefix_opt
@click.option("--speed", default="max", show_default=True,
              help="max (as fast as possible), or a factor: 1 = original timing, 10 = 10x")
@click.option("--rename", multiple=True, metavar="OLD=NEW", help="publish OLD to NEW")
@click.option("--topic", "only", multiple=True, help="replay only these recorded topics")
@click.option("--rebase", is_flag=True, help="shift timestamps so the first message is now")
@click.option("--allow-truncated", is_flag=True,
              help="replay the whole blocks of a recording that ends early")
@click.option("--expect", type=click.Path(dir_okay=False), default=None,
              help="golden check: run an isolated pipeline and diff its alerts to this file")
@click.option("--update", is_flag=True, help="with --expect: (re)write the expected file")
@click.option("--shadow", nargs=2, type=click.Path(exists=True, dir_okay=False),
              default=None, metavar="PLANT_A PLANT_B",
              help="run two isolated pipelines with two plant configs and compare alerts")
@click.option("--plant-config", type=click.Path(exists=True, dir_okay=False), default=None,
              help="plant config for the --expect pipeline")
def replay_cmd(recording, broker, prefix, speed, rename, only, rebase, allow_truncated,
               expect, update, shadow, plant_config) -> None:
    """Publish a RECORDING to Kafka, or check it against expected alerts (--expect)."""
    s = worker_settings(broker, None, None)
    if expect or shadow:
        from tocsin.streams.golden_cli import golden, shadow_run

        if shadow:
            sys.exit(shadow_run(recording, s.broker, shadow[0], shadow[1], allow_truncated))
        sys.exit(golden(recording, s.broker, expect, update, plant_config, allow_truncated))
    from tocsin.connectors.replayer import ReplaySpec, replay

    try:
        factor = 0.0 if speed == "max" else float(speed)
        if factor < 0:
            raise ValueError
    except ValueError:
        raise click.BadParameter(f"{speed!r}: expected 'max' or a positive number",
                                 param_hint="--speed") from None
    ren = {}
    for r in rename:
        old, sep, new = r.partition("=")
        if not sep or not old or not new:
            raise click.BadParameter(f"{r!r}: expected OLD=NEW", param_hint="--rename")
        ren[old] = new

    def progress(res):
        click.echo(f"  {res.messages:,} messages, {res.samples:,} samples, "
                   f"{res.seconds:.1f} s", err=True)

    res = replay(recording, s.broker, ReplaySpec(factor, prefix or "", ren, list(only) or None,
                                                 rebase, allow_truncated),
                 progress=progress, stop=stop_flag())
    rate = res.messages / res.seconds if res.seconds else 0.0
    click.echo(f"replayed {res.messages:,} messages ({res.samples:,} samples) in "
               f"{res.seconds:.2f} s: {rate:,.0f} messages/s")


@click.group(cls=Group)
def recording() -> None:
    """Inspect recordings."""


@click.group("import", cls=Group)
def import_() -> None:
    """Turn exports and public data sets into recordings for `tocsin replay`."""


@import_.command("csv")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False))
@click.option("--asset", required=True, help="asset id the readings belong to")
@click.option("--timestamp-col", default=None, help="column with ISO-8601 or numeric times")
@click.option("--timestamp-unit", default="s", show_default=True,
              type=click.Choice(["s", "ms", "us", "ns"]))
@click.option("--start", default=None, help="ISO-8601 start, for files without a clock")
@click.option("--period", type=float, default=None, help="seconds between rows (with --start)")
@click.option("--sensor-cols", default=None, help="comma-separated (default: all others)")
@click.option("--label-cols", default="", help="comma-separated label columns")
@click.option("--sep", default=",", show_default=True, help="a character, or 'whitespace'")
@click.option("--no-header", is_flag=True, help="the first line is data")
@click.option("--names", default=None, help="comma-separated column names (no header)")
@click.option("--frame-rows", default=10, show_default=True, help="rows per readings frame")
def import_csv_cmd(path, output, asset, timestamp_col, timestamp_unit, start, period,
                   sensor_cols, label_cols, sep, no_header, names, frame_rows) -> None:
    """Import a labeled CSV file (timestamp, sensor columns, label columns)."""
    from tocsin.connectors.csv_import import CsvSpec, import_csv

    def split(v):
        return [c.strip() for c in v.split(",") if c.strip()] if v else None

    spec = CsvSpec(asset=asset, timestamp_col=timestamp_col, timestamp_unit=timestamp_unit,
                   start=start, period=period, sensor_cols=split(sensor_cols),
                   label_cols=split(label_cols) or [], sep=sep, header=not no_header,
                   names=split(names), frame_rows=frame_rows)
    rows, frames, labels = import_csv(path, output, spec)
    click.echo(f"imported {rows:,} rows into {frames:,} frames and {labels:,} label changes: "
               f"{output}")


@recording.command("info")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--allow-truncated", is_flag=True)
def recording_info(path, allow_truncated) -> None:
    """Header, topics and message counts of a recording (reads and checks every block)."""
    from collections import Counter

    import orjson

    from tocsin.connectors.recording import RecordingReader

    with RecordingReader(path, allow_truncated=allow_truncated) as r:
        counts = Counter(m.topic for m in r)
        click.echo(orjson.dumps(r.header, option=orjson.OPT_INDENT_2).decode())
        for t in r.topics:
            click.echo(f"{t}: {counts.get(t, 0):,} messages")
        click.echo(f"blocks: {r.blocks_read}, complete: {r.total is not None}")


@recording.command("expected")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False))
def recording_expected(path, output) -> None:
    """Write the alerts recorded in PATH (its *plant.alerts topic) as an --expect file."""
    from tocsin.streams.isolated import alerts_in_recording, save_expected

    alerts = alerts_in_recording(path)
    save_expected(output, alerts)
    click.echo(f"{len(alerts)} alert events written to {output}")


COMMANDS = (record, replay_cmd, recording, import_,)
