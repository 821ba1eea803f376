"""`tocsin eval csv|tep|sim`: detection quality of the anomaly models on labelled data."""

from __future__ import annotations

from pathlib import Path

import click

from tocsin.cli.common import console, progress_say, train_config, train_opts

_common = [
    click.option("--detector", type=click.Choice(["any", "iforest", "lstm_ae", "pca"]),
                 default="pca", show_default=True,
                 help="which model's alarm counts (any: any of them). pca: PCA T²/Q "
                 "calibrated out-of-fold, the one whose threshold holds on new normal data"),
    click.option("--persistence", default=1, show_default=True,
                 help="alarm only after this many consecutive anomalous ticks"),
    click.option("--markdown", type=click.Path(dir_okay=False), default=None,
                 help="also write the table as Markdown (for the README)"),
]


def _common_opts(f):
    for opt in reversed(_common):
        f = opt(f)
    return f


def _pct(v) -> str:
    return "" if v is None else f"{100 * v:.1f}"


def _report(results, title: str, markdown: str | None, extra_cols=()) -> None:
    from rich.table import Table

    cols = ["case", "precision %", "recall %", "F1 %", "false alarms %", "missed %",
            "delay"] + [c for c, _ in extra_cols]
    rows = []
    for r in results:
        m = r.metrics
        delay = "" if m["delay_rows"] is None else (
            f"{m['delay_s']:.0f} s" if m.get("delay_s") is not None else f"{m['delay_rows']}")
        if m["fault_rows"] == 0:
            prec = rec = f1 = miss = delay = "–"
        else:
            prec, rec, f1, miss = (_pct(m["precision"]), _pct(m["recall"]), _pct(m["f1"]),
                                   _pct(m["missed_alarm_rate"]))
        rows.append([r.name, prec, rec, f1, _pct(m["false_alarm_rate"]), miss, delay]
                    + [str(fn(m)) for _, fn in extra_cols])
    table = Table(title=title)
    for c in cols:
        table.add_column(c)
    for row in rows:
        table.add_row(*row)
    console().print(table)
    if markdown:
        lines = [f"| {' | '.join(cols)} |", "|" + "---|" * len(cols)]
        lines += [f"| {' | '.join(r)} |" for r in rows]
        Path(markdown).write_text("\n".join(lines) + "\n")


def _spec_from(windows: tuple[str, ...], features: str | None, acf: str | None, period):
    from tocsin.detectors.windows import FeatureSpec, ScaleSpec

    kw = {}
    if windows:
        scales = []
        for w in windows:
            try:
                name, _, rest = w.partition("=")
                size, _, hop = rest.partition("/")
                scales.append(ScaleSpec(name=name, size_s=float(size),
                                        hop_s=float(hop) if hop else None))
            except ValueError:
                raise click.BadParameter(f"{w!r}: use NAME=SIZE_S[/HOP_S], e.g. 10s=10/1",
                                         param_hint="--window") from None
        kw["scales"] = scales
    if features:
        kw["features"] = [f.strip() for f in features.split(",") if f.strip()]
    if acf is not None:
        kw["acf_lags"] = [int(x) for x in acf.split(",") if x.strip()]
    if period:
        kw["allowed_lateness_s"] = 0.0
    try:
        return FeatureSpec(**kw)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--window/--features") from None


@click.group("eval")
def eval_group() -> None:
    """Detection quality on labelled data (tables: precision, recall, F1, false and missed
    alarm rates, detection delay)."""


@eval_group.command("csv")
@click.argument("test_files", nargs=-1, required=True, type=click.Path(exists=True,
                                                                          dir_okay=False))
@click.option("--train-file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="normal data to train on")
@click.option("--train-rows", type=int, default=None,
              help="instead: train on the first N rows of each test file (per-file model)")
@click.option("--timestamp-col", default=None)
@click.option("--timestamp-unit", default="s", show_default=True,
              type=click.Choice(["s", "ms", "us", "ns"]))
@click.option("--period", type=float, default=None,
              help="seconds between rows, for files without a time column")
@click.option("--sensors", default=None, help="comma-separated sensor columns (default: all "
              "but the time and label columns)")
@click.option("--label-col", default=None, help="column with 0 = normal, other = fault")
@click.option("--onset-row", type=int, default=None,
              help="instead of a label column: rows from this one (1-based) are faulty")
@click.option("--sep", default=",", show_default=True, help="separator, or 'whitespace'")
@click.option("--no-header", is_flag=True, help="the files have no header row")
@click.option("--window", "windows", multiple=True, metavar="NAME=SIZE_S[/HOP_S]",
              help="feature window (repeat); default 1 s, 10 s/1 s, 60 s/10 s")
@click.option("--features", default=None, help="comma-separated feature names")
@click.option("--acf-lags", default=None, help="comma-separated autocorrelation lags")
@click.option("--out-dir", type=click.Path(file_okay=False), default=None,
              help="write per-row scores and predictions (<file>.scores.csv) here")
@click.option("--model-dir", type=click.Path(file_okay=False), default=None,
              help="keep the trained artifact here (default: a temporary folder)")
@_common_opts
@train_opts
def eval_csv(test_files, train_file, train_rows, timestamp_col, timestamp_unit, period,
             sensors, label_col, onset_row, sep, no_header, windows, features, acf_lags,
             out_dir, model_dir, detector, persistence, markdown, **tkw) -> None:
    """Train on normal data, then score each labelled TEST_FILE with the stream's code."""
    from tocsin.connectors.csv_import import CsvSpec
    from tocsin.connectors.model_sources import load_table
    from tocsin.offline.plant_eval import (
        eval_table,
        train_table,
        with_temp_root,
        write_rows,
    )

    if (train_file is None) == (train_rows is None):
        raise click.UsageError("give exactly one of --train-file and --train-rows")
    if (label_col is None) == (onset_row is None):
        raise click.UsageError("give exactly one of --label-col and --onset-row")
    say = progress_say(console())
    spec = _spec_from(windows, features, acf_lags, period)
    cfg = train_config(**tkw)
    cs = CsvSpec(asset="csv", timestamp_col=timestamp_col, timestamp_unit=timestamp_unit,
                 period=period, sep=sep, header=not no_header,
                 sensor_cols=sensors.split(",") if sensors else None,
                 label_cols=[label_col] if label_col else [])
    results = []
    out = Path(out_dir) if out_dir else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
    with with_temp_root(model_dir) as root:
        if train_file:
            train_table(load_table(train_file, cs), spec, cfg, Path(root), train_file, say)
        for path in test_files:
            table = load_table(path, cs, label_col=label_col, onset_row=onset_row)
            if train_rows:
                from tocsin.connectors.model_sources import Table

                head = Table(table.columns, table.ts[:train_rows], table.values[:train_rows],
                             None)
                train_table(head, spec, cfg, Path(root), f"{path} rows 1-{train_rows}", say)
            res = eval_table(table, Path(path).name, spec, Path(root), detector, persistence)
            say(f"{res.name}: recall {_pct(res.metrics['recall'])} %, false alarms "
                f"{_pct(res.metrics['false_alarm_rate'])} %")
            results.append(res)
            if out:
                write_rows(out / f"{Path(path).name}.scores.csv", res)
    _report(results, f"detector {detector}, persistence {persistence}", markdown)


@eval_group.command("tep")
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--out-dir", type=click.Path(file_okay=False), default=None,
              help="write per-row scores and predictions here")
@click.option("--model-dir", type=click.Path(file_okay=False), default=None)
@click.option("--seq-len", default=10, show_default=True, help="rows in the LSTM-AE window")
@click.option("--score-steps", default=1, show_default=True)
@click.option("--epochs", default=40, show_default=True)
@click.option("--quantile", default=0.99, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--threads", default=1, show_default=True)
@_common_opts
def eval_tep(data_dir, out_dir, model_dir, seq_len, score_steps, epochs, quantile, seed,
             threads, detector, persistence, markdown) -> None:
    """The Tennessee Eastman protocol: train on d00.dat, test on every d*_te.dat (fault from
    row 161; d00_te.dat is normal), 3-minute rows, windows of 1 and 10 rows."""
    from tocsin.models.training import TrainConfig
    from tocsin.offline.plant_eval import (
        eval_table,
        tep_spec,
        tep_tables,
        train_table,
        with_temp_root,
        write_rows,
    )

    say = progress_say(console())
    spec = tep_spec()
    cfg = TrainConfig(seq_len=seq_len, score_steps=score_steps, epochs=epochs,
                      quantile=quantile, seed=seed, threads=threads, seq_stride=1,
                      n_estimators=200, hidden=32)
    train, tests = tep_tables(Path(data_dir))
    out = Path(out_dir) if out_dir else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
    results = []
    with with_temp_root(model_dir) as root:
        train_table(train, spec, cfg, Path(root), f"{data_dir}/d00.dat", say)
        for name, table in tests:
            res = eval_table(table, name, spec, Path(root), detector, persistence)
            results.append(res)
            if out:
                write_rows(out / f"{name}.scores.csv", res)
        say("done")
    _report(results, f"Tennessee Eastman (simulated process data), detector {detector}, "
            f"persistence {persistence}", markdown)


@eval_group.command("sim")
@click.option("--model-dir", type=click.Path(file_okay=False), default=None,
              envvar="TOCSIN_MODEL_DIR", help="trained artifacts (tocsin train)")
@click.option("--seconds", default=300.0, show_default=True)
@click.option("--onset", default=150.0, show_default=True, help="fault start, seconds")
@click.option("--seed", default=101, show_default=True,
              help="simulator seed (training uses 1, the demo 7)")
@click.option("--backend", default="onnxruntime", show_default=True)
@_common_opts
def eval_sim(model_dir, seconds, onset, seed, backend, detector, persistence, markdown) -> None:
    """Every fault of the simulated plant's fault library on a fresh run, plus a normal run
    per asset, scored by the trained models (tick level, 1 s ticks)."""
    from tocsin.config.plant import load_plant
    from tocsin.models import artifacts
    from tocsin.offline.plant_eval import eval_sim_case, sim_cases

    root = Path(model_dir) if model_dir else artifacts.default_root()
    if not artifacts.asset_types(root):
        raise click.ClickException(f"no trained models under {root}; run `tocsin train` first")
    plant = load_plant(None)
    say = progress_say(console())
    results = []
    for asset, fault in sim_cases(seconds, onset):
        r = eval_sim_case(asset, fault, seconds=seconds, onset=onset, seed=seed, plant=plant,
                          root=root, detector=detector, persistence=persistence,
                          backend=backend)
        say(f"{r.name}: recall {_pct(r.metrics['recall'])} %")
        results.append(r)
    _report(results, f"simulated plant, detector {detector}, persistence {persistence}",
            markdown, extra_cols=[("top tag", lambda m: m.get("top_tag", ""))])
