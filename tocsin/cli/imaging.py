"""`tocsin imaging ...` and `tocsin train imaging`: the imaging commands (issue 9).

Registered by tocsin/cli/__init__.py; heavy imports (pynetdicom, faust, torch) happen inside commands.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from pathlib import Path

import click

from tocsin.cli.common import (
    broker_opt,
    launch_worker,
    prefix_opt,
    wait_for_signal,
    worker_settings,
)

_model_dir_opt = click.option("--model-dir", type=click.Path(file_okay=False, path_type=Path),
                              default=None, help="trained model folder (env "
                              "TOCSIN_IMAGING_MODEL_DIR; default "
                              "~/.local/share/tocsin/models/imaging)")




def _publisher(settings, worker: str):
    from tocsin.connectors import kafka_admin
    from tocsin.connectors.dicom import ImagePublisher
    from tocsin.contracts import topics

    kafka_admin.ensure_topics(settings.broker, [settings.topic(t) for t in topics.IMAGING],
                              settings.partitions, replication=settings.replication)
    return ImagePublisher(settings.broker, settings.topic(topics.IMAGING_STUDIES),
                          settings.topic(topics.DEADLETTER), worker,
                          failed_dir=settings.data_dir / "imaging-failed",
                          deadletter_max_payload=settings.deadletter_max_payload)




def register(main: click.Group, train: click.Group) -> None:
    group_cls = type(main)

    @main.group(cls=group_cls)
    def imaging() -> None:
        """Imaging: DICOM in (C-STORE, folder), nodule findings out (models trained on
        simulated data)."""

    @imaging.command("worker")
    @broker_opt
    @prefix_opt
    @_model_dir_opt
    @click.option("--model", type=click.Choice(["student-int8", "student-fp32"]), default=None,
                  help="served model (env TOCSIN_IMAGING_MODEL; default student-int8)")
    @click.option("--backend", type=click.Choice(["onnxruntime", "tensorrt"]), default=None,
                  help="env TOCSIN_IMAGING_BACKEND; default onnxruntime")
    @click.option("--max-batch", type=int, default=None, help="images per batch (default 16)")
    @click.option("--max-wait-ms", type=float, default=None, help="batch wait (default 20)")
    def worker(broker, prefix, model_dir, model, backend, max_batch, max_wait_ms) -> None:
        """Run the imaging stream processor: imaging.studies -> imaging.findings."""
        from tocsin.connectors import kafka_admin
        from tocsin.contracts import topics
        from tocsin.streams import metrics
        from tocsin.streams.imaging_app import create_imaging_app, load_imaging_settings

        settings = worker_settings(broker, prefix)
        im = load_imaging_settings(model_dir=model_dir, model=model, backend=backend,
                                   max_batch=max_batch, max_wait_ms=max_wait_ms)
        kafka_admin.ensure_topics(settings.broker, [settings.topic(t) for t in topics.IMAGING],
                                  settings.partitions, replication=settings.replication)
        app = create_imaging_app(settings, im)
        metrics.serve(settings.metrics_port, settings.metrics_host, "imaging")
        launch_worker(app, settings.log_level)

    @imaging.command("receive")
    @broker_opt
    @prefix_opt
    @click.option("--host", default="127.0.0.1", show_default=True)
    @click.option("--port", default=11112, show_default=True, help="DICOM port (0: any free)")
    @click.option("--ae-title", default="TOCSIN", show_default=True)
    def receive(broker, prefix, host, port, ae_title) -> None:
        """DICOM C-STORE receiver (storage SCP) publishing to imaging.studies."""
        from tocsin.connectors.dicom_scp import StoreReceiver

        settings = worker_settings(broker, prefix)
        rx = StoreReceiver(_publisher(settings, "dicom-receiver"), host, port, ae_title,
                           store_dir=settings.data_dir / "imaging-pixels")
        rx.start()
        from tocsin.connectors import health

        health.configure("imaging-receive")
        health.serve(settings.metrics_port, settings.metrics_host)
        click.echo(f"imaging receiver: listening as {ae_title} on {host}:{rx.port}", err=True)
        try:
            wait_for_signal()
        finally:
            rx.stop()
            click.echo(f"imaging receiver: stopped ({rx.received} stored, {rx.rejected} "
                       "refused)", err=True)

    @imaging.command("watch")
    @broker_opt
    @prefix_opt
    @click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
    @click.option("--interval", default=1.0, show_default=True, help="seconds between scans")
    def watch(broker, prefix, folder, interval) -> None:
        """Publish DICOM files dropped into FOLDER (moved to processed/ or failed/)."""
        from tocsin.connectors.dicom_scp import FolderWatcher

        settings = worker_settings(broker, prefix)
        w = FolderWatcher(_publisher(settings, "dicom-watch"), folder,
                          store_dir=settings.data_dir / "imaging-pixels", settle_s=interval)
        click.echo(f"imaging watcher: watching {folder}", err=True)
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        while not stop.is_set():
            w.scan_once()
            stop.wait(interval)

    @imaging.command("send")
    @click.argument("files", nargs=-1, type=click.Path(exists=True, dir_okay=False,
                                                       path_type=Path))
    @click.option("--host", default="127.0.0.1", show_default=True)
    @click.option("--port", default=11112, show_default=True)
    @click.option("--called", default="TOCSIN", show_default=True, help="called AE title")
    @click.option("--pydicom-samples", is_flag=True,
                  help="also send CT_small.dcm and MR_small.dcm that ship with pydicom")
    def send(files, host, port, called, pydicom_samples) -> None:
        """C-STORE DICOM files to a receiver (a small SCU for demos and checks)."""
        from tocsin.connectors.dicom import sample_files
        from tocsin.connectors.dicom_scp import send_files

        paths = list(files) + (sample_files() if pydicom_samples else [])
        if not paths:
            raise click.UsageError("no files given")
        bad = 0
        for p, status, comment in send_files(paths, host, port, called):
            ok = status == 0
            bad += not ok
            click.echo(f"{p.name}: status 0x{status & 0xFFFF:04X}"
                       f"{'' if ok else ' ' + comment}")
        sys.exit(1 if bad else 0)

    @imaging.command("tail")
    @broker_opt
    @prefix_opt
    @click.option("--timeout", default=0.0, help="stop after this many seconds (0: never)")
    def tail(broker, prefix, timeout) -> None:
        """Print findings from imaging.findings as they arrive."""
        from tocsin.streams.imaging_tail import tail_findings

        settings = worker_settings(broker, prefix)
        tail_findings(settings, timeout or None)

    @imaging.command("quality")
    @_model_dir_opt
    def quality(model_dir) -> None:
        """Print the quality measured at training time on held-back simulated data."""
        from tocsin.models.imaging.artifacts import ImagingArtifact, default_dir
        from tocsin.models.imaging.report import quality_markdown

        click.echo(quality_markdown(ImagingArtifact.load(model_dir or default_dir())))

    @imaging.command("evaluate")
    @_model_dir_opt
    @click.option("--n-test", type=int, default=None, help="held-back simulated cases")
    def evaluate_cmd(model_dir, n_test) -> None:
        """Re-measure quality (simulated held-back data) with ONNX Runtime; no torch needed.
        Thresholds are chosen again on simulated validation cases; meta.json is updated."""
        import dataclasses

        from tocsin.models.imaging.artifacts import ImagingArtifact, default_dir
        from tocsin.models.imaging.report import quality_markdown
        from tocsin.models.imaging.training import TrainImagingConfig, evaluate

        art = ImagingArtifact.load(model_dir or default_dir())
        names = {f.name for f in dataclasses.fields(TrainImagingConfig)}
        cfg = TrainImagingConfig(**{k: v for k, v in art.meta.get("config", {}).items()
                                    if k in names})
        if n_test:
            cfg.n_test = n_test
        evaluate(art, cfg, say=lambda m: click.echo(m, err=True))
        click.echo(quality_markdown(art))

    @imaging.command("demo")
    @broker_opt
    @_model_dir_opt
    @click.option("--port", default=0, help="DICOM port of the receiver (0: a free one)")
    def demo(broker, model_dir, port) -> None:
        """CT_small.dcm and MR_small.dcm (pydicom's) -> C-STORE -> Kafka -> worker ->
        findings, shown here. Trains a small model first if none exists (needs torch)."""
        from tocsin.demo.imaging import run_demo

        sys.exit(run_demo(broker=broker, model_dir=model_dir, port=port))

    @train.command("imaging")
    @click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
                  help="model folder (default ~/.local/share/tocsin/models/imaging)")
    @click.option("--quick", is_flag=True, help="a small run (about a minute) for demos")
    @click.option("--n-train", type=int, default=None)
    @click.option("--teacher-epochs", type=int, default=None)
    @click.option("--seed", type=int, default=None)
    @click.option("--threads", type=int, default=1, show_default=True,
                  help="torch threads (more than the idle cores slows training down)")
    def train_imaging_cmd(out, quick, n_train, teacher_epochs, seed, threads) -> None:
        """Train the cross-modal teacher and distil the INT8 student on simulated data."""
        from tocsin.models.imaging.artifacts import default_dir
        from tocsin.models.imaging.report import quality_markdown
        from tocsin.models.imaging.training import quick_config, train_with_progress

        cfg = quick_config() if quick else None
        art = train_with_progress(out or default_dir(), cfg, n_train=n_train,
                                  teacher_epochs=teacher_epochs, seed=seed, threads=threads)
        click.echo(quality_markdown(art))


logging.getLogger("pynetdicom").setLevel(logging.WARNING)
