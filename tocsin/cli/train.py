"""CLI for the plant's anomaly models: `tocsin train plant`, `tocsin models`, `tocsin eval`."""

from __future__ import annotations

from pathlib import Path

import click

from tocsin.cli.common import (
    console,
    model_dir_opt,
    plant_config_opt,
    progress_say,
    train_config,
    train_opts,
)


@click.command("plant")
@plant_config_opt
@model_dir_opt
@click.option("--sim-seconds", default=1800.0, show_default=True,
              help="with no other source: seconds of simulated normal operation to train on")
@click.option("--sim-runs", default=10, show_default=True, type=click.IntRange(1, 100),
              help="split them into this many runs, each started at its own clock phase "
                   "(a live plant's cycles meet the feature windows at any phase)")
@click.option("--sim-seed", default=1, show_default=True,
              help="simulator seed for the training data (the demo runs seed 7)")
@click.option("--recording", type=click.Path(exists=True, dir_okay=False), default=None,
              help="train on the readings of a recording (tocsin record)")
@click.option("--csv", "csv_path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="train on a CSV export (one asset; see --asset, --timestamp-col)")
@click.option("--influx-start", default=None,
              help="train on InfluxDB history from this time (e.g. -24h) for every asset")
@click.option("--asset", default=None, help="asset id of the CSV's rows")
@click.option("--timestamp-col", default=None)
@click.option("--period", type=float, default=None, help="seconds between CSV rows "
              "(files without a time column)")
@click.option("--sep", default=",", show_default=True, help="CSV separator or 'whitespace'")
@click.option("--asset-type", "only_types", multiple=True,
              help="train only these asset types (default: all in the plant config)")
@train_opts
def train_plant(plant_config, model_dir, sim_seconds, sim_runs, sim_seed, recording, csv_path,
                influx_start, asset, timestamp_col, period, sep, only_types, **tkw) -> None:
    """Train the anomaly models (Isolation Forest + LSTM-AE) per asset type.

    With no source option it trains on simulated normal operation of the demo plant. Each
    asset type gets a new versioned artifact folder; running workers pick it up by themselves.
    """
    from tocsin.config.plant import load_plant
    from tocsin.connectors import model_sources as ms
    from tocsin.models import artifacts
    from tocsin.models.training import collect_run_ticks, collect_ticks, train_asset_type

    con = console()
    say = progress_say(con)
    plant = load_plant(plant_config)
    root = Path(model_dir) if model_dir else artifacts.default_root()
    cfg = train_config(**tkw)
    tags = plant.asset_tags()
    if sum(x is not None for x in (recording, csv_path, influx_start)) > 1:
        raise click.UsageError("choose one source: --recording, --csv or --influx-start")
    if recording:
        frames, source = ms.recording_frames(recording), f"recording {recording}"
    elif csv_path:
        from tocsin.connectors.csv_import import CsvSpec

        if not asset or asset not in tags:
            raise click.BadParameter(f"{asset!r}; the CSV's rows need an asset of the plant "
                                     f"config: {sorted(tags)}", param_hint="--asset")
        spec = CsvSpec(asset=asset, timestamp_col=timestamp_col, period=period, sep=sep,
                       sensor_cols=tags[asset])
        frames, source = ms.load_table(csv_path, spec).frames(asset), f"csv {csv_path}"
    elif influx_start:
        from tocsin.connectors.history import History

        hist = History.from_env()
        frames = (f for a in tags for f in ms.influx_frames(hist, a, influx_start))
        source = f"influxdb {hist.url} bucket {hist.bucket} from {influx_start}"
    else:
        frames = None
        runs = ms.simulated_runs(sim_seconds, runs=sim_runs, seed=sim_seed)
        source = (f"simulated plant, {sim_seconds:.0f}s normal operation in {sim_runs} runs "
                  f"at spread clock phases, seed {sim_seed}")
    say(f"training data: {source}")
    ticks = (collect_ticks(frames, plant.features, tags, say) if frames is not None
             else collect_run_ticks(runs, plant.features, tags, say))
    types = plant.asset_types()
    wanted = set(only_types) or set(types.values())
    unknown = wanted - set(types.values())
    if unknown:
        raise click.BadParameter(f"{sorted(unknown)}; asset types: {sorted(set(types.values()))}",
                                 param_hint="--asset-type")
    for at in sorted(wanted):
        assets = [a for a, t in types.items() if t == at and a in ticks]
        if not assets:
            say(f"[yellow]{at}: no data, skipped[/yellow]")
            continue
        at_tags = tags[assets[0]]
        if any(tags[a] != at_tags for a in assets):
            raise click.ClickException(f"assets of type {at} have different tags; give them "
                                       "different types in the plant config")
        art = train_asset_type(at, {a: ticks[a] for a in assets}, plant.features, at_tags,
                               cfg, root, source, say)
        con.print(f"[green]{at}[/green] -> {art.version}")


@click.group("models")
def models_group() -> None:
    """Inspect trained model artifacts."""


@models_group.command("list")
@model_dir_opt
def models_list(model_dir) -> None:
    """Every artifact version per asset type, newest last (the one workers load)."""
    from rich.table import Table

    from tocsin.models import artifacts

    root = Path(model_dir) if model_dir else artifacts.default_root()
    table = Table(title=str(root))
    for col in ("asset type", "version", "created", "iforest thr", "lstm_ae thr", "source"):
        table.add_column(col)
    for at in artifacts.asset_types(root):
        for p in artifacts.versions(root, at):
            m = artifacts.load(p).manifest
            table.add_row(at, m["version"], m["created"], f"{m['thresholds']['iforest']:.4f}",
                          f"{m['thresholds']['lstm_ae']:.4f}", m["training"]["source"])
    console().print(table)


def register(main: click.Group, train: click.Group) -> None:
    from tocsin.cli.eval import eval_group

    train.add_command(train_plant)
    main.add_command(models_group)
    main.add_command(eval_group)
