"""`tocsin payments ...` (fraud scoring: ingest, worker, simulator, scores, chargebacks, the
model registry). `tocsin train fraud` and `tocsin eval fraud` live in tocsin/cli/fraud.py.
Registered by tocsin/cli/__init__.py; heavy imports happen inside commands."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import click

from tocsin.cli.common import (
    Group,
    broker_opt,
    prefix_opt,
    run_until_signal,
    worker_settings,
)


def _ensure(s) -> None:
    from tocsin.connectors import kafka_admin
    from tocsin.contracts import topics

    kafka_admin.ensure_topics(s.broker, [s.topic(t) for t in topics.PAYMENTS], s.partitions,
                              replication=s.replication)




_dev = click.option("--dev", is_flag=True, default=None,
                    help="development mode: a public PAN key and an open HTTP ingest when "
                         "none are configured (env TOCSIN_DEV=1); never with real card data")


def _set_dev(dev: bool | None) -> None:
    if dev:
        import os

        os.environ["TOCSIN_DEV"] = "1"  # the same rule for every part of this process


_data_dir_opt = click.option("--data-dir", type=click.Path(file_okay=False), default=None,
                             help="worker state folder (env TOCSIN_DATA_DIR)")
_app_id_opt = click.option("--app-id", default=None,
                           help="Kafka consumer-group/app id prefix (env TOCSIN_APP_ID)")
_META = "tocsin.payments"


def _settings(broker, prefix, data_dir=None, app_id=None):
    """Worker settings: a command's own --data-dir/--app-id, else the ``tocsin payments``
    group's, else the environment (one rule for every payments command)."""
    ctx = click.get_current_context(silent=True)
    top = ctx.find_root().meta.get(_META, {}) if ctx else {}
    over = {k: v for k, v in (("data_dir", data_dir or top.get("data_dir")),
                              ("app_id", app_id or top.get("app_id"))) if v}
    return worker_settings(broker, prefix, **over)


def register(main: click.Group, train: click.Group) -> None:
    @main.group(cls=Group)
    @_data_dir_opt
    @_app_id_opt
    @click.pass_context
    def payments(ctx, data_dir, app_id) -> None:
        """Payment fraud scoring: feeds, the scoring worker, the simulated switch.

        --data-dir/--app-id here apply to every payments command (a command's own flag wins):
        the worker keeps its state in the data directory and names its consumer groups and
        changelogs by the app id; `demo` passes both to its worker; `tail` names its
        consumer group by the app id (a broker's prefixed group ACLs cover it)."""
        ctx.find_root().meta[_META] = {"data_dir": data_dir, "app_id": app_id}

    @payments.command("worker")
    @broker_opt
    @prefix_opt
    @click.option("--model-dir", type=click.Path(file_okay=False), default=None,
                  help="artifact from `tocsin train fraud` (env TOCSIN_FRAUD_MODEL_DIR)")
    @click.option("--batch-max", type=int, default=None, help="micro-batch size (64)")
    @click.option("--batch-wait-ms", type=float, default=None, help="micro-batch wait (2 ms)")
    @click.option("--budget-ms", type=float, default=None, help="latency budget (120 ms)")
    @click.option("--naive", is_flag=True, default=None,
                  help="per-transaction scorer: no batching (the benchmark's peer)")
    @click.option("--force-branch", type=click.Choice(["full", "light"]), default=None)
    @click.option("--backend", type=click.Choice(["onnxruntime", "tensorrt"]), default=None)
    @_dev
    @_data_dir_opt
    @_app_id_opt
    def payments_worker(broker, prefix, model_dir, batch_max, batch_wait_ms, budget_ms, naive,
                        force_branch, backend, dev, data_dir, app_id) -> None:
        """Score payments.transactions -> payments.scores (+ payments.alerts)."""
        from tocsin.config.ingest_security import load_pan_key
        from tocsin.config.payments import load_fraud_settings
        from tocsin.streams import metrics
        from tocsin.streams.payments_worker import run_payments

        _set_dev(dev)
        pan_key = load_pan_key()  # refuse to start without a PAN key, before anything else
        s = _settings(broker, prefix, data_dir, app_id)
        fs = load_fraud_settings(model_dir=model_dir, batch_max=batch_max, backend=backend,
                                 batch_wait_ms=batch_wait_ms, budget_ms=budget_ms,
                                 naive=naive, force_branch=force_branch)
        mode = "per-transaction model calls" if fs.naive else \
            f"batches of up to {fs.batch_max} (first record waited for {fs.batch_wait_ms:g} ms)"
        click.echo(f"payments worker: model {fs.model_dir}, {mode}, budget {fs.budget_ms:g} ms, "
                   f"{s.processing_guarantee}")
        metrics.serve(s.metrics_port, s.metrics_host, "payments")
        logging.basicConfig(level=s.log_level.upper(),
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        run_payments(s, fs, pan_key)

    @payments.command("ingest")
    @broker_opt
    @prefix_opt
    @click.option("--host", default="127.0.0.1", show_default=True)
    @click.option("--iso-port", type=int, default=8583, show_default=True,
                  help="ISO 8583 TCP port (-1: off)")
    @click.option("--http-port", type=int, default=8080, show_default=True,
                  help="HTTP JSON port (-1: off)")
    @click.option("--max-body", type=click.IntRange(1024, 64 << 20), default=1 << 20,
                  show_default=True, help="HTTP: bytes of a request body; over it: 413, and "
                  "a truncated copy is dead-lettered")
    @_dev
    def payments_ingest(broker, prefix, host, iso_port, http_port, max_body, dev) -> None:
        """ISO 8583 TCP listener and HTTP JSON endpoint -> payments.transactions (needs a PAN
        key and, for HTTP, bearer token hashes, unless --dev; docs/security.md)."""
        from tocsin.connectors import health
        from tocsin.connectors.payments_ingest import ingest_secrets, run_ingest
        from tocsin.contracts import topics
        from tocsin.contracts.eventtime import TimeGuard

        _set_dev(dev)
        ingest_secrets(http_port >= 0)  # refuse to start without the key/tokens, first
        s = _settings(broker, prefix)
        _ensure(s)
        # liveness = the port answers (no loop beat here); no readiness checks of its own
        health.configure("payments-ingest")
        health.serve(s.metrics_port, s.metrics_host)
        run_until_signal(lambda stop: run_ingest(
            s.broker, s.topic(topics.TRANSACTIONS), s.topic(topics.DEADLETTER), host=host,
            iso_port=None if iso_port < 0 else iso_port,
            http_port=None if http_port < 0 else http_port, stop=stop,
            label_topic=s.topic(topics.PAY_LABELS), max_body=max_body,
            deadletter_max_payload=s.deadletter_max_payload,
            guard=TimeGuard(s.max_future_skew_s, s.min_event_year)))

    @payments.command("sim")
    @broker_opt
    @prefix_opt
    @click.option("--via", type=click.Choice(["kafka", "iso", "http"]), default="kafka",
                  show_default=True, help="straight to Kafka, or through the ingest feeds")
    @click.option("--target", default=None, help="ingest host:port (iso: 8583, http: 8080)")
    @click.option("--days", type=int, default=7, show_default=True)
    @click.option("--customers", type=int, default=500, show_default=True)
    @click.option("--terminals", type=int, default=120, show_default=True)
    @click.option("--speed", type=float, default=3600.0, show_default=True,
                  help="simulated seconds per wall-clock second")
    @click.option("--limit", type=int, default=None, help="stop after N transactions")
    @click.option("--seed", type=int, default=11, show_default=True)
    def payments_sim(broker, prefix, via, target, days, customers, terminals, speed, limit,
                     seed) -> None:
        """Run the simulated payment switch live (simulated data, with fraud scenarios)."""
        from tocsin.connectors.simulator.payswitch_live import run_live
        from tocsin.contracts import topics

        s = _settings(broker, prefix)
        _ensure(s)
        target = target or ("127.0.0.1:8583" if via == "iso" else "127.0.0.1:8080")
        click.echo(f"simulator: {customers} customers, {terminals} terminals, {days} days at "
                   f"{speed:g}x via {via}", err=True)
        out = asyncio.run(run_live(bootstrap=s.broker, txn_topic=s.topic(topics.TRANSACTIONS),
                                   label_topic=s.topic(topics.PAY_LABELS), via=via,
                                   target=target, days=days, customers=customers,
                                   terminals=terminals, seed=seed, speed=speed, limit=limit,
                                   log=lambda m: click.echo(m, err=True)))
        click.echo(f"simulator: done: {out}")

    @payments.command("demo")
    @broker_opt
    @prefix_opt
    @click.option("--model-dir", type=click.Path(file_okay=False), default=None,
                  help="default: TOCSIN_FRAUD_MODEL_DIR (trained first if missing)")
    @click.option("--days", type=int, default=2, show_default=True)
    @click.option("--speed", type=float, default=3600.0, show_default=True)
    @click.option("--duration", type=float, default=0.0, help="seconds (0: until the "
                  "simulated days are sent)")
    @click.option("--data-dir", type=click.Path(file_okay=False), default=None,
                  help="logs and the worker's state (default: the services run folder's "
                       "payments-demo)")
    @_app_id_opt
    def payments_demo(broker, prefix, model_dir, days, speed, duration, data_dir,
                      app_id) -> None:
        """Simulated switch -> ISO 8583 ingest -> scoring worker -> decisions on screen."""
        import sys

        from tocsin.config.payments import load_fraud_settings
        from tocsin.demo.payments import run_payments_demo

        md = Path(model_dir) if model_dir else load_fraud_settings().model_dir
        top = click.get_current_context().find_root().meta.get(_META, {})
        dd = data_dir or top.get("data_dir")
        sys.exit(run_payments_demo(broker=broker, prefix=prefix, model_dir=md, days=days,
                                   speed=speed, duration=duration,
                                   data_dir=Path(dd) if dd else None,
                                   app_id=app_id or top.get("app_id")))

    @payments.command("simulate")
    @click.option("-o", "--output", type=click.Path(dir_okay=False), required=True)
    @click.option("--days", type=int, default=60, show_default=True)
    @click.option("--customers", type=int, default=2000, show_default=True)
    @click.option("--terminals", type=int, default=400, show_default=True)
    @click.option("--seed", type=int, default=7, show_default=True)
    @click.option("--switch-columns", is_flag=True,
                  help="a switch's own column names and ISO times (TX_DATETIME, CUSTOMER_ID, "
                       "...), to try the `--map` path of the payments guide")
    def payments_simulate(output, days, customers, terminals, seed, switch_columns) -> None:
        """Write simulated labeled transactions to a CSV (for `tocsin train fraud --data`)."""
        from tocsin.connectors.payments_data import write_csv
        from tocsin.connectors.simulator.payswitch import PaymentSwitch

        sim = PaymentSwitch(customers=customers, terminals=terminals, seed=seed).generate(days)
        if switch_columns:
            _write_switch_export(output, sim)
        else:
            write_csv(output, sim.transactions, sim.fraud, sim.labels)
        click.echo(f"{output}: {len(sim.transactions)} simulated transactions, "
                   f"{int(sim.fraud.sum())} fraud")

    @payments.command("tail")
    @broker_opt
    @prefix_opt
    @click.option("--from-beginning", is_flag=True)
    @click.option("--min-decision", type=click.Choice(["approve", "review", "decline"]),
                  default="approve", show_default=True)
    @_app_id_opt
    def payments_tail(broker, prefix, from_beginning, min_decision, app_id) -> None:
        """Follow payments.scores."""
        from tocsin.contracts import topics
        from tocsin.contracts.payments import FraudScore
        from tocsin.streams.follow import follow, tail_consumer

        s = _settings(broker, prefix, app_id=app_id)
        rank = {"approve": 0, "review": 1, "decline": 2}
        c = tail_consumer(s.broker, [s.topic(topics.PAY_SCORES)], from_beginning=from_beginning,
                          group=f"{s.app_id}-tail")
        try:
            for sc in follow(c, FraudScore.decode,
                             on_error=lambda line: click.echo(line, err=True)):
                if rank[sc.decision] >= rank[min_decision]:
                    click.echo(f"{sc.txn_id:>20} {sc.card_id:>22} {sc.score:6.3f} "
                               f"{sc.decision:8} {sc.branch:5} batch {sc.batch_size:3} "
                               f"{sc.latency_ms:7.1f} ms")
        except KeyboardInterrupt:
            pass
        finally:
            c.close()

    payments.add_command(payments_models)
    payments.add_command(labels_group)


def _write_switch_export(path: str, sim) -> None:
    """Simulated transactions as a switch might export them: its own names, ISO times."""
    import csv
    from datetime import datetime, timezone

    def iso(ns: int) -> str:
        return datetime.fromtimestamp(ns / 1e9, timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")

    reported = {lab.txn_id: lab.reported_ts for lab in sim.labels}
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["TX_ID", "TX_DATETIME", "CUSTOMER_ID", "TERMINAL_ID", "TX_AMOUNT", "MCC",
                    "ENTRY_MODE", "TX_FRAUD", "TX_FRAUD_REPORTED"])
        for t, f in zip(sim.transactions, sim.fraud):
            rep = reported.get(t.txn_id)
            w.writerow([t.txn_id, iso(t.ts), t.customer_id, t.terminal_id, t.amount, t.mcc,
                        t.pos_entry_mode, int(bool(f)), iso(rep) if rep else ""])


@click.command("models")
@click.option("--model-dir", type=click.Path(file_okay=False), default=None,
              help="the deployed artifact (env TOCSIN_FRAUD_MODEL_DIR)")
def payments_models(model_dir) -> None:
    """Deployed fraud model and the ones it replaced: validation quality, thresholds."""
    from tocsin.config.payments import load_fraud_settings
    from tocsin.models.fraud_registry import list_models

    md = Path(model_dir) if model_dir else load_fraud_settings().model_dir
    rows = list_models(md)
    if not rows:
        raise click.ClickException(f"no fraud model at {md}; train one with "
                                   f"`tocsin train fraud --simulate -o {md}`")
    click.echo("| deployed | version | kind | created | validation period | valid ROC AUC | "
               "valid AP | replaces | its valid ROC AUC | its valid AP |")
    click.echo("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        q, old = r["validation"] or {}, r["replaced_validation"] or {}
        click.echo(f"| {'yes' if r['deployed'] else ''} | {r['version']} | {r['kind']} | "
                   f"{r['created'] or ''} | {_period(r['valid_period'])} | "
                   f"{_f3(q.get('roc_auc'))} | {_f3(q.get('avg_precision'))} | "
                   f"{r['replaces'] or ''} | {_f3(old.get('roc_auc'))} | "
                   f"{_f3(old.get('avg_precision'))} |")


def _f3(v) -> str:
    return "" if v is None else f"{v:.3f}"


def _period(ns) -> str:
    """``[from, until)`` in ns -> ``YYYY-MM-DD .. YYYY-MM-DD`` (UTC, until exclusive)."""
    from datetime import datetime, timezone

    if not ns:
        return ""
    d = [datetime.fromtimestamp(v / 1e9, timezone.utc).strftime("%Y-%m-%d") for v in ns]
    return f"{d[0]} .. {d[1]}"


@click.group("labels", cls=Group)
def labels_group() -> None:
    """Fraud labels (chargebacks) into payments.labels."""

@labels_group.command("import")
@broker_opt
@prefix_opt
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--map", "mapping", default=None, metavar="COL=NAME,...",
              help="rename the file's columns to txn_id, card_id, terminal_id, txn_ts, "
                   "reported_ts[, fraud, scenario]")
@_dev
def labels_import(broker, prefix, path, mapping, dev) -> None:
    """Validate a chargeback file (CSV or Parquet) and publish it to payments.labels.

    Card numbers in ``card_id`` are tokenised with the PAN key (TOCSIN_PAN_TOKEN_KEY), as the
    ingest tokenises the transactions' PANs, so labels and transactions name the same card."""
    from tocsin.config.ingest_security import load_pan_key
    from tocsin.connectors.payments_data import parse_mapping, read_labels
    from tocsin.connectors.payments_labels import protect_label, publish_labels
    from tocsin.contracts import topics
    from tocsin.errors import SchemaError

    _set_dev(dev)
    key = load_pan_key()  # refuse to go on without the key the transactions were tokenised with
    s = _settings(broker, prefix)
    labels = read_labels(path, parse_mapping(mapping))  # all rows valid, or nothing sent
    try:
        labels = [protect_label(lab, key) for lab in labels]
    except SchemaError as exc:
        raise SchemaError(f"{path}: {exc}") from None
    _ensure(s)
    n = publish_labels(s.broker, s.topic(topics.PAY_LABELS), labels)
    click.echo(f"{path}: {n} labels -> {s.topic(topics.PAY_LABELS)}")
