"""`tocsin payments ...` (fraud scoring: ingest, worker, simulator, scores) and
`tocsin train fraud`. Registered by tocsin/cli/__init__.py; heavy imports happen inside commands."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from tocsin.cli.common import (
    Group,
    broker_opt,
    launch_worker,
    prefix_opt,
    run_until_signal,
    worker_settings,
)


def _ensure(s) -> None:
    from tocsin.connectors import kafka_admin
    from tocsin.contracts import topics

    kafka_admin.ensure_topics(s.broker, [s.topic(t) for t in topics.PAYMENTS], s.partitions)




_dev = click.option("--dev", is_flag=True, default=None,
                    help="development mode: a public PAN key and an open HTTP ingest when "
                         "none are configured (env TOCSIN_DEV=1); never with real card data")


def _set_dev(dev: bool | None) -> None:
    if dev:
        import os

        os.environ["TOCSIN_DEV"] = "1"  # the same rule for every part of this process


def register(main: click.Group, train: click.Group) -> None:
    @main.group(cls=Group)
    def payments() -> None:
        """Payment fraud scoring: feeds, the scoring worker, the simulated switch."""

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
    def payments_worker(broker, prefix, model_dir, batch_max, batch_wait_ms, budget_ms, naive,
                        force_branch, backend, dev) -> None:
        """Score payments.transactions -> payments.scores (+ payments.alerts)."""
        from tocsin.config.ingest_security import load_pan_key
        from tocsin.config.payments import load_fraud_settings
        from tocsin.streams import metrics
        from tocsin.streams.payments_app import create_payments_app

        _set_dev(dev)
        load_pan_key()  # refuse to start without a PAN key, before anything else
        s = worker_settings(broker, prefix)
        fs = load_fraud_settings(model_dir=model_dir, batch_max=batch_max, backend=backend,
                                 batch_wait_ms=batch_wait_ms, budget_ms=budget_ms,
                                 naive=naive, force_branch=force_branch)
        _ensure(s)
        app = create_payments_app(s, fs)
        mode = "per-transaction" if fs.naive else \
            f"micro-batches of up to {fs.batch_max} or {fs.batch_wait_ms:g} ms"
        click.echo(f"payments worker: model {fs.model_dir}, {mode}, budget {fs.budget_ms:g} ms")
        metrics.serve(s.metrics_port, s.metrics_host)
        launch_worker(app, s.log_level)

    @payments.command("ingest")
    @broker_opt
    @prefix_opt
    @click.option("--host", default="127.0.0.1", show_default=True)
    @click.option("--iso-port", type=int, default=8583, show_default=True,
                  help="ISO 8583 TCP port (-1: off)")
    @click.option("--http-port", type=int, default=8080, show_default=True,
                  help="HTTP JSON port (-1: off)")
    @_dev
    def payments_ingest(broker, prefix, host, iso_port, http_port, dev) -> None:
        """ISO 8583 TCP listener and HTTP JSON endpoint -> payments.transactions (needs a PAN
        key and, for HTTP, bearer token hashes, unless --dev; docs/security.md)."""
        from tocsin.connectors.payments_ingest import ingest_secrets, run_ingest
        from tocsin.contracts import topics

        _set_dev(dev)
        ingest_secrets(http_port >= 0)  # refuse to start without the key/tokens, first
        s = worker_settings(broker, prefix)
        _ensure(s)
        run_until_signal(lambda stop: run_ingest(
            s.broker, s.topic(topics.TRANSACTIONS), s.topic(topics.DEADLETTER), host=host,
            iso_port=None if iso_port < 0 else iso_port,
            http_port=None if http_port < 0 else http_port, stop=stop))

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

        s = worker_settings(broker, prefix)
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
    def payments_demo(broker, prefix, model_dir, days, speed, duration) -> None:
        """Simulated switch -> ISO 8583 ingest -> scoring worker -> decisions on screen."""
        import sys

        from tocsin.config.payments import load_fraud_settings
        from tocsin.demo.payments import run_payments_demo

        md = Path(model_dir) if model_dir else load_fraud_settings().model_dir
        sys.exit(run_payments_demo(broker=broker, prefix=prefix, model_dir=md, days=days,
                                   speed=speed, duration=duration))

    @payments.command("simulate")
    @click.option("-o", "--output", type=click.Path(dir_okay=False), required=True)
    @click.option("--days", type=int, default=60, show_default=True)
    @click.option("--customers", type=int, default=2000, show_default=True)
    @click.option("--terminals", type=int, default=400, show_default=True)
    @click.option("--seed", type=int, default=7, show_default=True)
    def payments_simulate(output, days, customers, terminals, seed) -> None:
        """Write simulated labeled transactions to a CSV (for `tocsin train fraud --csv`)."""
        from tocsin.connectors.payments_data import write_csv
        from tocsin.connectors.simulator.payswitch import PaymentSwitch

        sim = PaymentSwitch(customers=customers, terminals=terminals, seed=seed).generate(days)
        write_csv(output, sim.transactions, sim.fraud, sim.labels)
        click.echo(f"{output}: {len(sim.transactions)} simulated transactions, "
                   f"{int(sim.fraud.sum())} fraud")

    @payments.command("tail")
    @broker_opt
    @prefix_opt
    @click.option("--from-beginning", is_flag=True)
    @click.option("--min-decision", type=click.Choice(["approve", "review", "decline"]),
                  default="approve", show_default=True)
    def payments_tail(broker, prefix, from_beginning, min_decision) -> None:
        """Follow payments.scores."""
        from tocsin.contracts import topics
        from tocsin.contracts.payments import FraudScore
        from tocsin.streams.follow import follow, tail_consumer

        s = worker_settings(broker, prefix)
        rank = {"approve": 0, "review": 1, "decline": 2}
        c = tail_consumer(s.broker, [s.topic(topics.PAY_SCORES)], from_beginning=from_beginning)
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

    @train.command("fraud")
    @click.option("--simulate", "simulate", is_flag=True,
                  help="train on the simulated switch's data")
    @click.option("--csv", "csv_path", type=click.Path(exists=True, dir_okay=False))
    @click.option("--recording", type=click.Path(exists=True, dir_okay=False))
    @click.option("-o", "--output", type=click.Path(file_okay=False), default=None,
                  help="artifact folder (default: TOCSIN_FRAUD_MODEL_DIR)")
    @click.option("--days", type=int, default=60, show_default=True)
    @click.option("--customers", type=int, default=2000, show_default=True)
    @click.option("--terminals", type=int, default=400, show_default=True)
    @click.option("--epochs", type=int, default=4, show_default=True)
    @click.option("--seed", type=int, default=7, show_default=True)
    @click.option("--threads", type=int, default=2, show_default=True)
    @click.option("--label-delay-days", type=float, default=7.0, show_default=True,
                  help="CSV without label_ts: labels known this long after the transaction")
    def train_fraud(simulate, csv_path, recording, output, days, customers, terminals, epochs,
                    seed, threads, label_delay_days) -> None:
        """Train the hybrid fraud model (light + sequence tower + gate) and export ONNX."""
        from tocsin.config.payments import load_fraud_settings
        from tocsin.errors import ConfigError

        if sum(map(bool, (simulate, csv_path, recording))) != 1:
            raise ConfigError("give exactly one of --simulate, --csv FILE, --recording FILE")
        from tocsin.models.fraud_train import train_fraud as fit

        if simulate:
            from tocsin.connectors.simulator.payswitch import PaymentSwitch

            sim = PaymentSwitch(customers=customers, terminals=terminals,
                                seed=seed).generate(days)
            txns, labels, y = sim.transactions, sim.labels, sim.fraud
            note = (f"simulated: {days} days, {customers} customers, {terminals} terminals, "
                    f"seed {seed}")
        elif csv_path:
            from tocsin.connectors.payments_data import read_csv

            txns, labels, y = read_csv(csv_path, int(label_delay_days * 86400e9))
            note = f"csv: {csv_path}"
        else:
            from tocsin.connectors.payments_data import read_recording

            txns, labels, y = read_recording(recording)
            note = f"recording: {recording}"
        out = Path(output) if output else load_fraud_settings().model_dir
        meta = fit(txns, labels, y, out, epochs=epochs, seed=seed, threads=threads,
                   data_note=note, log=lambda m: click.echo(m, err=True))
        click.echo(f"model {meta['version']} -> {out}")
        click.echo(quality_table(meta))


def quality_table(meta: dict) -> str:
    rows = ["| model | ROC AUC | average precision | recall at 1 % FPR |",
            "|---|---|---|---|"]
    names = {"full": "hybrid (full: both towers + gate)", "light": "light tower alone",
             "random_forest": "RandomForest baseline (same features)"}
    for k, label in names.items():
        q = meta["quality_test_period"][k]
        rows.append(f"| {label} | {q['roc_auc']:.3f} | {q['avg_precision']:.3f} | "
                    f"{q['recall_at_1pct_fpr']:.3f} |")
    return "\n".join(rows)
