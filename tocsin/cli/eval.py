"""`tocsin eval csv|tep|sim`: detection quality of the anomaly models on labelled data."""

from __future__ import annotations

from pathlib import Path

import click

from tocsin.cli.common import console, progress_say, train_config, train_opts
from tocsin.cli.eval_report import _line, _pct, _report, _spec_from

RULE_NAMES = ("raw", "s4", "2of3", "s2_2of3", "3of5", "ewma", "ewma25")  # decision.RULES

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


@click.group("eval")
def eval_group() -> None:
    """Detection quality on labelled data (tables: precision, recall, F1, false and missed
    alarm rates, detection delay)."""


SUITE = ["pca_t2", "pca_q", "mahalanobis", "knn", "residual_mean", "residual_var", "mode_q",
         "mode_mean", "mode_var", "mode_slow", "diff_var", "missing", "stuck", "pca_t2q",
         "q_quality", "q_resid", "mode_resid", "mode_noise", "mode_slow_resid",
         "mode_noise_slow", "mode_noise_fisher", "mode_noise_top2", "ensemble", "all",
         "online_z", "online_lik", "online"]
UNIVARIATE_DEFAULT, MULTIVARIATE_DEFAULT = "online", "mode_noise"


def default_detector(tables) -> str:
    """``eval csv`` without --detector: ``online`` when every file has one sensor column (a
    univariate stream: a model frozen on its head drifts into alarm, and there are no
    correlations for Q to use), ``mode_noise`` otherwise (docs/short-training.md: why)."""
    return UNIVARIATE_DEFAULT if all(len(t.columns) == 1 for _, t in tables) \
        else MULTIVARIATE_DEFAULT
STREAM = ["any", "iforest", "lstm_ae", "pca"]


@eval_group.command("csv")
@click.argument("inputs", nargs=-1, required=True)
@click.option("--pattern", default="*.csv", show_default=True,
              help="files taken from a folder given as input")
@click.option("--train-file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="normal data to train on")
@click.option("--train-rows", type=int, default=None,
              help="instead: train on the first N rows of each file (a model per file)")
@click.option("--train-fraction", type=float, default=None,
              help="instead: train on the first fraction of each file's rows")
@click.option("--timestamp-col", default=None)
@click.option("--timestamp-unit", default="s", show_default=True,
              type=click.Choice(["s", "ms", "us", "ns"]))
@click.option("--period", type=float, default=None,
              help="seconds between rows, for files without a time column")
@click.option("--sensors", default=None, help="comma-separated sensor columns (default: all "
              "but the time, label and excluded columns)")
@click.option("--exclude", default=None, help="comma-separated columns that are neither "
              "sensors nor labels")
@click.option("--label-col", default=None, help="column with 0 = normal, other = fault")
@click.option("--onset-row", type=int, default=None,
              help="instead of a label column: rows from this one (1-based) are faulty")
@click.option("--sep", default=",", show_default=True, help="separator, or 'whitespace'")
@click.option("--no-header", is_flag=True, help="the files have no header row")
@click.option("--window", "windows", multiple=True, metavar="NAME=SIZE_S[/HOP_S]",
              help="feature window (repeat); default for the pure detectors: 1 and 10 rows "
              "of the data's sampling period (mean, sd); for the stream models 1, 10, 60 rows")
@click.option("--features", default=None, help="comma-separated feature names")
@click.option("--acf-lags", default=None, help="comma-separated autocorrelation lags")
@click.option("--detector", type=click.Choice(SUITE + STREAM), default=None,
              help="default: online when every file has ONE sensor column, else mode_noise. "
              "Pure detectors, each calibrated out-of-fold on the "
              "training rows: pca_t2, pca_q, mahalanobis, knn, and the raw-row checks missing "
              "and stuck; ensembles of their calibrated scores: pca_t2q, q_quality (Q, "
              "missing, stuck), "
              "q_resid (Q, the residual EWMA charts residual_mean and residual_var, missing, stuck), "
              "mode_resid (mode_q, mode_mean, mode_var: Q and the charts with a leverage limit "
              "for operating-point changes; missing, stuck), mode_noise (mode_resid and diff_var, "
              "a chart of the raw rows' row-to-row differences: extra noise, oscillations; the "
              "default for 2+ sensors), mode_slow_resid / mode_noise_slow (with mode_slow, a "
              "longer-memory chart), "
              "mode_noise_fisher / mode_noise_top2 (mode_noise's members fused: Fisher's sum "
              "or the two largest surprises summed, recalibrated out-of-fold), "
              "ensemble (T², Q, k-NN, missing, stuck), all. Online detectors for univariate, "
              "non-stationary streams (each row against a trailing window, warm-started from "
              "the training rows, calibrated on their own online scores): online_z (robust z "
              "of the value, deseasonalised when the training rows show a period, and of its "
              "difference), online_lik (its anomaly likelihood), online (both, missing, "
              "stuck). Or the stream's trained models: pca, iforest, lstm_ae, any")
@click.option("--rule", type=click.Choice(sorted(RULE_NAMES)), default="s2_2of3",
              show_default=True, help="decision rule of the pure detectors (surprise "
              "threshold, smoothing, k of n; see docs/detection.md)")
@click.option("--grid", is_flag=True, help="also print every pure detector under every rule "
              "(pooled totals)")
@click.option("--persistence", default=1, show_default=True,
              help="stream models only: alarm after this many consecutive anomalous ticks")
@click.option("--markdown", type=click.Path(dir_okay=False), default=None,
              help="also write the table as Markdown")
@click.option("--out-dir", type=click.Path(file_okay=False), default=None,
              help="write per-row scores and predictions here, one file per input named "
              "by its path (a/0.csv -> a__0.csv.scores.csv); pure detectors: columns row, ts, "
              "evaluated, label, surprise (capped at 12), pred, score (the surprise uncapped: "
              "continuous, to threshold yourself)")
@click.option("--model-dir", type=click.Path(file_okay=False), default=None,
              help="stream models: keep the trained artifact here (default: a temporary "
              "folder)")
@train_opts
def eval_csv(inputs, pattern, train_file, train_rows, train_fraction, timestamp_col,
             timestamp_unit, period, sensors, exclude, label_col, onset_row, sep, no_header,
             windows, features, acf_lags, detector, rule, grid, persistence, markdown, out_dir,
             model_dir, **tkw) -> None:
    """Train on normal data, then score each input (files, folders, globs). Metrics count
    only the rows after each file's training part; without --label-col or --onset-row the
    files are scored and the alarm rate reported."""
    from tocsin.connectors.csv_import import CsvSpec
    from tocsin.errors import DataError
    from tocsin.offline import table_eval as te

    if sum(v is not None for v in (train_file, train_rows, train_fraction)) != 1:
        raise click.UsageError("give exactly one of --train-file, --train-rows and "
                               "--train-fraction")
    if label_col is not None and onset_row is not None:
        raise click.UsageError("give at most one of --label-col and --onset-row")
    say = progress_say(console())
    cs = CsvSpec(asset="csv", timestamp_col=timestamp_col, timestamp_unit=timestamp_unit,
                 period=period, sep=sep, header=not no_header,
                 sensor_cols=te.split_names(sensors), exclude_cols=te.split_names(exclude) or [],
                 label_cols=[label_col] if label_col else [])
    try:
        paths = te.expand_inputs(list(inputs), pattern)
    except DataError as exc:
        raise click.ClickException(str(exc)) from None
    tables = [(p, _load(p, cs, label_col, onset_row, sep, timestamp_col)) for p in paths]
    for path, table in tables:
        for w in te.clock(table.ts).warnings(str(path)):
            say(f"[yellow]{w}[/]")
    try:
        ks = {p: te.train_count(len(t.ts), train_rows, train_fraction, str(p))
              for p, t in tables}
    except DataError as exc:
        raise click.ClickException(str(exc)) from None
    train = _load(Path(train_file), cs, None, None, sep, timestamp_col) if train_file else None
    out = Path(out_dir) if out_dir else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
    run = dict(tables=tables, ks=ks, train=train, out=out, names=te.output_names(paths),
               say=say, markdown=markdown)
    if detector is None:
        detector = default_detector(tables)
        say(f"detector {detector} (the default for "
            + ("one sensor column" if detector == UNIVARIATE_DEFAULT else "2+ sensor columns")
            + "; --detector overrides)")
    if detector in SUITE:
        _eval_suite(detector, rule, grid, windows, features, acf_lags, period, **run)
    else:
        _eval_stream(detector, persistence, windows, features, acf_lags, period,
                     train_config(**tkw), model_dir, train_file, **run)


def _eval_suite(detector, rule, grid, windows, features, acf_lags, period, *, tables, ks,
                train, out, names, say, markdown) -> None:
    from tocsin.detectors.decision import RULES
    from tocsin.detectors.evaluation import pooled
    from tocsin.offline import plant_eval as pe
    from tocsin.offline.table_eval import clock

    step = period or clock(tables[0][1].ts).period_s or 1.0
    if windows or features or acf_lags is not None:
        spec = _spec_from(windows, features, acf_lags, period, tables[0][1], say)
    else:
        spec = pe.short_spec(step)
        say(f"windows follow the data's period ({step:g} s): 1 and 10 rows, mean and sd "
            "(override with --window/--features)")
    names_run = SUITE if grid else [detector]
    rules = RULES if grid else {rule: RULES[rule]}
    chosen, cells, cache = [], {}, {}
    for path, table in tables:
        res = pe.eval_table_suite(table, str(path), spec, names_run, rules, ks[path], train,
                                  cache=cache)
        r = res[(detector, rule)]
        say(_line(r))
        chosen.append(r)
        for key, v in res.items():
            cells.setdefault(key, []).append(v.metrics)
        if out:
            pe.write_suite_rows(out / names[path], r, ks[path], table.labels)
    labelled = [r.metrics for r in chosen if r.metrics.get("labelled")]
    if len(labelled) > 1:
        chosen.append(pe.EvalResult(f"total ({len(labelled)} files, pooled)", pooled(labelled)))
    rd = RULES[rule]
    _report(chosen, f"detector {detector}, rule {rule} ({rd.name}; clears at most "
            f"{rd.clear_rows(12.0)} rows after the score falls back); metrics on the rows "
            "after each file's training part", markdown)
    if grid and all(m.get("labelled") for m in cells[(detector, rule)]):
        from tocsin.offline.plant_eval import EvalResult

        _report([EvalResult(f"{d} | {rn} ({RULES[rn].name})", pooled(ms))
                 for (d, rn), ms in cells.items()],
                "every detector x rule, pooled over files", None)


def _eval_stream(detector, persistence, windows, features, acf_lags, period, cfg, model_dir,
                 train_file, *, tables, ks, train, out, names, say, markdown) -> None:
    from tocsin.detectors.evaluation import pooled
    from tocsin.offline.plant_eval import (
        EvalResult,
        eval_table,
        train_table,
        with_temp_root,
        write_rows,
    )

    spec = _spec_from(windows, features, acf_lags, period, tables[0][1], say)
    results = []
    with with_temp_root(model_dir) as root:
        if train is not None:
            train_table(train, spec, cfg, Path(root), train_file, say)
        for path, table in tables:
            k = ks[path]
            if k:
                train_table(table.head(k), spec, cfg, Path(root), f"{path} rows 1-{k}", say)
            res = eval_table(table, str(path), spec, Path(root), detector, persistence, k)
            say(_line(res))
            results.append(res)
            if out:
                write_rows(out / names[path], res)
    labelled = [r.metrics for r in results if r.metrics.get("labelled")]
    if len(labelled) > 1:
        results.append(EvalResult(f"total ({len(labelled)} files, pooled)", pooled(labelled)))
    _report(results, f"detector {detector}, persistence {persistence}"
            + (" (metrics on the rows after each file's training part)"
               if any(ks.values()) else ""), markdown)


def _load(path, cs, label_col, onset_row, sep, timestamp_col):
    from tocsin.connectors.model_sources import load_table
    from tocsin.errors import DataError
    from tocsin.offline.table_eval import hint

    try:
        return load_table(path, cs, label_col=label_col, onset_row=onset_row)
    except DataError as exc:
        h = hint(exc, sep, timestamp_col)
        raise click.ClickException(f"{exc}" + (f"\n{h}" if h else "")) from None


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
@click.option("--train-rows", type=int, default=None,
              help="train on the first N rows of d00.dat only (short-training protocol)")
@click.option("--detector", type=click.Choice(SUITE + STREAM), default="pca", show_default=True,
              help="the stream's trained models (pca, iforest, lstm_ae, any) or the pure "
              "detectors and ensembles of `eval csv` (raw rows, see --rule)")
@click.option("--rule", type=click.Choice(sorted(RULE_NAMES)), default="s2_2of3",
              show_default=True, help="decision rule of the pure detectors")
@click.option("--grid", is_flag=True, help="pure detectors: every detector x rule, pooled")
@click.option("--persistence", default=1, show_default=True,
              help="stream models: alarm after this many consecutive anomalous ticks")
@click.option("--markdown", type=click.Path(dir_okay=False), default=None)
def eval_tep(data_dir, out_dir, model_dir, seq_len, score_steps, epochs, quantile, seed,
             threads, train_rows, detector, rule, grid, persistence, markdown) -> None:
    """The Tennessee Eastman protocol: train on d00.dat, test on every d*_te.dat (fault from
    row 161; d00_te.dat is normal), 3-minute rows. Stream models: windows of 1 and 10 rows;
    pure detectors: each row and the mean and sd of the last 10."""
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
    if train_rows:
        train = train.head(train_rows)
    out = Path(out_dir) if out_dir else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
    if detector in SUITE:
        from tocsin.offline.plant_eval import TEP_PERIOD_S

        _eval_suite(detector, rule, grid, (), None, None, TEP_PERIOD_S,
                    tables=[(Path(n), t) for n, t in tests], ks={Path(n): 0 for n, _ in tests},
                    train=train, out=out, names={Path(n): f"{n}.scores.csv" for n, _ in tests},
                    say=say, markdown=markdown)
        return
    results = []
    with with_temp_root(model_dir) as root:
        train_table(train, spec, cfg, Path(root),
                    f"{data_dir}/d00.dat" + (f" rows 1-{train_rows}" if train_rows else ""), say)
        for name, table in tests:
            res = eval_table(table, name, spec, Path(root), detector, persistence)
            results.append(res)
            if out:
                write_rows(out / f"{name}.scores.csv", res)
        say("done")
    _report(results, f"Tennessee Eastman (simulated process data), detector {detector}, "
            f"persistence {persistence}", markdown)


@eval_group.command("library")
@click.option("--kinds", default="pump,motor,press,plant", show_default=True,
              help="asset kinds (plant: all three assets in one 17-column table)")
@click.option("--seeds", default="1,2", show_default=True)
@click.option("--cases", default=None, help="comma-separated cases (default: every case of "
              "each kind: mode_only, drift, noise, stuck, flatline, missing, ramp_<fault>)")
@click.option("--train-rows", default=400, show_default=True,
              help="normal rows at the head of each scenario that train the detectors")
@click.option("--write", "write_dir", type=click.Path(file_okay=False), default=None,
              help="write the labelled CSVs here (KIND/CASE-sSEED.csv, scenarios.json), "
              "for `tocsin eval csv DIR --timestamp-col timestamp --label-col label "
              "--train-rows 400`")
@click.option("--detector", type=click.Choice(SUITE), default=MULTIVARIATE_DEFAULT, show_default=True)
@click.option("--rule", type=click.Choice(sorted(RULE_NAMES)), default="s2_2of3",
              show_default=True)
@click.option("--grid", is_flag=True, help="also every detector x rule, pooled")
@click.option("--markdown", type=click.Path(dir_okay=False), default=None)
def eval_library(kinds, seeds, cases, train_rows, write_dir, detector, rule, grid,
                 markdown) -> None:
    """The simulator's harder fault library (gradual onsets, drift, noise, stuck / flatline /
    missing sensors, and mode changes that are not faults), one scenario per case and seed,
    short training on each scenario's head; metrics after the training rows."""
    from tocsin.connectors.model_sources import Table
    from tocsin.connectors.simulator import hard

    say = progress_say(console())
    kinds_l = [k.strip() for k in kinds.split(",") if k.strip()]
    seeds_l = [int(v) for v in seeds.split(",") if v.strip()]
    only = [c.strip() for c in cases.split(",")] if cases else None
    try:
        for kind in kinds_l:
            bad = sorted(set(only or []) - set(hard.cases(kind)))
            if bad:
                raise ValueError(f"cases {bad} do not apply to {kind}; its cases: "
                                 f"{hard.cases(kind)}")
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--kinds/--cases") from None
    if write_dir:
        files = hard.write_library(write_dir, kinds_l, seeds_l, train_rows, only=only)
        say(f"wrote {len(files)} scenarios under {write_dir}")
    tables, ks = [], {}
    for kind in kinds_l:
        for case in only or hard.cases(kind):
            for seed in seeds_l:
                r = hard.run(hard.random_scenario(kind, case, seed, train_rows))
                key = Path(f"{kind}/{case}-s{seed}")
                tables.append((key, Table(r.columns, r.ts, r.values, r.labels)))
                ks[key] = train_rows
    _eval_suite(detector, rule, grid, (), None, None, 1.0, tables=tables, ks=ks, train=None,
                out=None, names={}, say=say, markdown=markdown)


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
    old = [t for t in artifacts.asset_types(root)
           if "pca" not in artifacts.newest(root, t).manifest]
    if detector == "pca" and old:
        raise click.ClickException(f"the newest models of {', '.join(old)} under {root} have no "
                                   "PCA T²/Q (trained before it existed): run `tocsin train` "
                                   "again, or choose --detector iforest / lstm_ae")
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
