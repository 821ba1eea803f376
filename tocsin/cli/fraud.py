"""`tocsin train fraud` and `tocsin eval fraud`: the fraud model from a switch's export (or the
simulator) to a deployed artifact, and its quality next to peers on the same features."""

from __future__ import annotations

from pathlib import Path

import click

_DATA_OPTS = [
    click.option("--simulate", is_flag=True, help="the simulated switch's data (see --days ...)"),
    click.option("--data", "--csv", "data_path", type=click.Path(exists=True, dir_okay=False),
                 help="labelled transactions: CSV, or Parquet (.parquet, needs pyarrow)"),
    click.option("--recording", type=click.Path(exists=True, dir_okay=False),
                 help="a `tocsin record` of payments.transactions and payments.labels"),
    click.option("--map", "mapping", default=None, metavar="COL=NAME,...",
                 help="rename the file's columns, e.g. tx_datetime=timestamp,"
                      "customer_id=card_id,terminal_id=terminal_id,tx_amount=amount,"
                      "tx_fraud=label"),
    click.option("--label-delay-days", type=float, default=7.0, show_default=True,
                 help="file without label_ts: labels known this long after the transaction"),
    click.option("--days", type=int, default=60, show_default=True, help="--simulate: days"),
    click.option("--customers", type=int, default=2000, show_default=True),
    click.option("--terminals", type=int, default=400, show_default=True),
    click.option("--sim-seed", type=int, default=7, show_default=True),
    click.option("--history-from", default=None, metavar="TIME",
                 help="warm-up from here (ISO 8601 or epoch; default: the data's start)"),
]


def _data_opts(f):
    for opt in reversed(_DATA_OPTS):
        f = opt(f)
    return f


def _time(text: str | None, name: str) -> int | None:
    from tocsin.connectors.payments_data import parse_time

    return None if text is None else parse_time(text, name)


def _load(simulate, data_path, recording, mapping, label_delay_days, days, customers,
          terminals, sim_seed):
    from tocsin.errors import ConfigError

    if sum(map(bool, (simulate, data_path, recording))) != 1:
        raise ConfigError("give exactly one of --simulate, --data FILE, --recording FILE")
    if simulate:
        from tocsin.connectors.simulator.payswitch import PaymentSwitch

        sim = PaymentSwitch(customers=customers, terminals=terminals,
                            seed=sim_seed).generate(days)
        return sim.transactions, sim.labels, sim.fraud, (
            f"simulated: {days} days, {customers} customers, {terminals} terminals, "
            f"seed {sim_seed}")
    if data_path:
        from tocsin.connectors.payments_data import parse_mapping, read_csv

        txns, labels, y = read_csv(data_path, int(label_delay_days * 86400e9),
                                   parse_mapping(mapping))
        return txns, labels, y, f"file: {data_path}"
    from tocsin.connectors.payments_data import read_recording

    txns, labels, y = read_recording(recording)
    return txns, labels, y, f"recording: {recording}"


@click.command("fraud")
@_data_opts
@click.option("--train-from", default=None, metavar="TIME",
              help="training period start (default: after 20 % of the data as warm-up)")
@click.option("--train-until", default=None, metavar="TIME", help="(default: at 70 %)")
@click.option("--valid-until", default=None, metavar="TIME",
              help="validation period end (default: 15 % of the span after --train-until); "
                   "later data is the test period of the quality table")
@click.option("--kind", type=click.Choice(["gbdt", "hybrid"]), default="gbdt",
              show_default=True, help="boosted trees, or the torch hybrid (sequence tower)")
@click.option("--alerts-per-day", type=float, default=100.0, show_default=True,
              help="review threshold: at most this many alerts a day on validation")
@click.option("--decline-precision", type=float, default=0.9, show_default=True,
              help="decline threshold: the lowest score with this precision on validation")
@click.option("-o", "--output", type=click.Path(file_okay=False), default=None,
              help="artifact folder the worker loads (default: TOCSIN_FRAUD_MODEL_DIR); the "
                   "one it replaces moves to <folder>.history/")
@click.option("--sequence/--no-sequence", default=True, show_default=True,
              help="gbdt: also read a summary of the card's last 16 transactions")
@click.option("--stack", type=click.Choice(["auto", "always", "never"]), default="auto",
              show_default=True,
              help="gbdt: full branch = the trees stacked with a random forest on the same "
                   "inputs (weights fitted on the validation period); auto: only if the "
                   "stack's cross-fitted validation AP beats the trees'")
@click.option("--max-iter", type=int, default=400, show_default=True, help="gbdt: trees")
@click.option("--learning-rate", type=float, default=0.05, show_default=True)
@click.option("--max-features", type=click.FloatRange(0.0, 1.0, min_open=True), default=0.5,
              show_default=True, help="gbdt: share of the columns each split chooses from")
@click.option("--epochs", type=int, default=4, show_default=True, help="hybrid: epochs")
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--threads", type=int, default=2, show_default=True)
def train_fraud(simulate, data_path, recording, mapping, label_delay_days, days, customers,
                terminals, sim_seed, history_from, train_from, train_until, valid_until, kind,
                alerts_per_day, decline_precision, output, sequence, stack, max_iter,
                learning_rate, max_features, epochs, seed, threads) -> None:
    """Train the fraud model on the stream's own features, calibrate it, choose thresholds."""
    from tocsin.config.payments import load_fraud_settings
    from tocsin.models.fraud_train import Periods
    from tocsin.models.fraud_train import train_fraud as fit

    txns, labels, y, note = _load(simulate, data_path, recording, mapping, label_delay_days,
                                  days, customers, terminals, sim_seed)
    if not txns:
        raise click.ClickException("no transactions in the input")
    periods = Periods.default(txns[0].ts, txns[-1].ts, _time(history_from, "--history-from"),
                              _time(train_from, "--train-from"),
                              _time(train_until, "--train-until"),
                              _time(valid_until, "--valid-until"))
    out = Path(output) if output else load_fraud_settings().model_dir
    kw = {"max_iter": max_iter, "learning_rate": learning_rate, "max_features": max_features,
          "sequence": sequence,
          "stack": {"auto": "auto", "always": True, "never": False}[stack]} \
        if kind == "gbdt" else {}
    meta = fit(txns, labels, y, out, kind=kind, periods=periods, epochs=epochs, seed=seed,
               threads=threads, alerts_per_day=alerts_per_day,
               decline_precision=decline_precision, data_note=note,
               log=lambda m: click.echo(m, err=True), **kw)
    click.echo(f"model {meta['version']} ({meta['kind']}) -> {out}")
    if meta.get("replaces"):
        click.echo(f"replaces {meta['replaces']['version']}")
    click.echo(quality_table(meta))
    v = meta["thresholds"]["validation"]
    click.echo(f"thresholds: review {meta['thresholds']['review']:.4f} "
               f"({v['review']['alerts_per_day']:.1f} alerts/day on validation, precision "
               f"{v['review']['precision']:.2f}); decline {meta['thresholds']['decline']:.4f} "
               f"(precision {v['decline']['precision']:.2f})")


def quality_table(meta: dict) -> str:
    rows = ["| period | model | ROC AUC | average precision | recall at 1 % FPR |",
            "|---|---|---|---|---|"]
    names = {"full": f"{meta.get('kind', 'hybrid')} full", "light": "light branch",
             "random_forest": "random forest (same features)"}
    for period, qs in meta.get("quality", {}).items():
        for k, q in qs.items():
            rows.append(f"| {period} | {names.get(k, k)} | {q['roc_auc']:.3f} | "
                        f"{q['avg_precision']:.3f} | {q['recall_at_1pct_fpr']:.3f} |")
    return "\n".join(rows)


@click.command("fraud")
@_data_opts
@click.option("--model", "models", multiple=True, type=click.Path(file_okay=False),
              help="artifact folder (repeat to compare; default: TOCSIN_FRAUD_MODEL_DIR)")
@click.option("--from", "test_from", default=None, metavar="TIME",
              help="test period start (default: the first model's test period)")
@click.option("--until", "test_until", default=None, metavar="TIME")
@click.option("--k", type=int, default=100, show_default=True, help="card precision@k per day")
@click.option("--fpr", type=float, default=0.01, show_default=True,
              help="recall at this false-positive rate")
@click.option("--known-compromised", "exclude_known", is_flag=True,
              help="leave out, each day, cards with a fraud reported before that day")
@click.option("--both-protocols", is_flag=True,
              help="two tables from one replay: all test transactions, and known-compromised "
                   "cards left out")
@click.option("--peer/--no-peer", default=True, show_default=True,
              help="a random forest on the same features of the first model's training period")
@click.option("--peer-sequence", is_flag=True,
              help="a second random forest that also reads the card-sequence summary")
@click.option("--branch", type=click.Choice(["full", "light"]), default="full",
              show_default=True)
@click.option("--scores-out", type=click.Path(dir_okay=False), default=None,
              help="write each test transaction's scores (CSV)")
@click.option("--markdown", type=click.Path(dir_okay=False), default=None)
@click.option("--threads", type=int, default=2, show_default=True)
def eval_fraud(simulate, data_path, recording, mapping, label_delay_days, days, customers,
               terminals, sim_seed, history_from, models, test_from, test_until, k, fpr,
               exclude_known, both_protocols, peer, peer_sequence, branch, scores_out, markdown,
               threads) -> None:
    """Score a labelled file with the stream's features and models; compare side by side."""
    from tocsin.config.payments import load_fraud_settings
    from tocsin.models.fraud_serving import FraudModel
    from tocsin.offline.fraud_eval import evaluate_protocols, table

    txns, labels, y, _ = _load(simulate, data_path, recording, mapping, label_delay_days, days,
                               customers, terminals, sim_seed)
    folders = list(models) or [str(load_fraud_settings().model_dir)]
    loaded = {}
    for f in folders:
        m = FraudModel(f)
        loaded[f"{Path(f).name} ({m.kind}, {m.version})"] = m
    protocols = ("plain", "known_compromised") if both_protocols else \
        ("known_compromised",) if exclude_known else ("plain",)
    results = evaluate_protocols(
        txns, labels, y, loaded, protocols=protocols,
        history_from=_time(history_from, "--history-from"),
        test_from=_time(test_from, "--from"), test_until=_time(test_until, "--until"), k=k,
        fpr=fpr, random_forest=peer, peer_sequence=peer_sequence, branch=branch,
        threads=threads, log=lambda msg: click.echo(msg, err=True))
    texts = []
    for proto, res in results.items():
        head = "" if len(results) == 1 else \
            f"{'all test transactions' if proto == 'plain' else 'known-compromised cards left out'}:\n\n"
        texts.append(head + table(res, k, fpr))
    text = "\n\n".join(texts)
    click.echo(text)
    if markdown:
        Path(markdown).write_text(text + "\n")
    if scores_out:
        _write_scores(scores_out, results[protocols[0]])


def _write_scores(path: str, res) -> None:
    import csv

    names = list(res.scores)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["txn_id", "label", *names])
        for i, tid in enumerate(res.txn_ids):
            w.writerow([tid, int(res.y[i]), *(f"{res.scores[n][i]:.7f}" for n in names)])


def register(main: click.Group, train: click.Group) -> None:
    from tocsin.cli.eval import eval_group

    train.add_command(train_fraud)
    eval_group.add_command(eval_fraud)
