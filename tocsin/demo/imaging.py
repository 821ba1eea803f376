"""`tocsin imaging demo`: pydicom's CT_small.dcm and MR_small.dcm sent by C-STORE to the
receiver -> imaging.studies -> the imaging worker -> imaging.findings, shown here.

Uses the running local Kafka (`tocsin services up`) unless --broker is given, the trained
model folder (trains a quick one on simulated data first when there is none; needs torch),
and its own topic prefix per run. The findings on these two real files are a smoke test of
real-file handling: the model has only ever seen simulated data.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from rich.console import Console

from tocsin.config.worker import load_settings
from tocsin.connectors import kafka_admin
from tocsin.contracts import topics
from tocsin.demo.procs import spawn, stop_all, wait_log
from tocsin.models.imaging.artifacts import ArtifactError, ImagingArtifact, default_dir
from tocsin.services.registry import kafka_status, kafka_up, run_dir
from tocsin.streams.imaging_tail import tail_findings


def run_demo(*, broker: str | None, model_dir: Path | None, port: int = 0) -> int:
    from tocsin.connectors.dicom import sample_files
    from tocsin.connectors.dicom_scp import send_files
    from tocsin.services.kafka import free_port

    console = Console(soft_wrap=True)
    model_dir = model_dir or default_dir()
    try:
        art = ImagingArtifact.load(model_dir)
    except ArtifactError:
        console.print(f"[bold]model[/]: none at {model_dir}; training a quick one on simulated "
                      "data (about 3 minutes on 2 cores) ...")
        from tocsin.models.imaging.training import quick_config, train_with_progress

        art = train_with_progress(model_dir, quick_config())
    console.print(f"[bold]model[/]: {art.version} (trained on simulated data)")
    if broker is None:
        broker = (kafka_status() or kafka_up(9092, 9093))["bootstrap"]
    prefix = f"imdemo-{int(time.time())}."
    kafka_admin.ensure_topics(broker, [prefix + t for t in topics.IMAGING], 2)
    logs = run_dir() / "imaging-demo"
    logs.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    env = dict(os.environ, TOCSIN_BROKER=broker, TOCSIN_TOPIC_PREFIX=prefix,
               TOCSIN_PARTITIONS="2", TOCSIN_IMAGING_MODEL_DIR=str(model_dir),
               TOCSIN_DATA_DIR=str(logs / "data"), PYTHONUNBUFFERED="1")
    procs = {"worker": spawn(["imaging", "worker"], logs / "worker.log", env),
             "receiver": spawn(["imaging", "receive", "--port", str(port)],
                                logs / "receiver.log", env)}
    try:
        wait_log(logs / "receiver.log", "listening", procs["receiver"], 30)
        wait_log(logs / "worker.log", "Ready", procs["worker"], 90)
        console.print(f"[bold]receiver[/]: TOCSIN@127.0.0.1:{port}; [bold]worker[/]: ready "
                      f"(logs in {logs}); topics {prefix}*")
        files = sample_files()
        for p, status, comment in send_files(files, "127.0.0.1", port):
            console.print(f"[bold]C-STORE[/] {p.name}: status 0x{status & 0xFFFF:04X} {comment}")
        settings = load_settings(broker=broker, topic_prefix=prefix)
        seen = tail_findings(settings, 60, console=console,
                             until=lambda s: len(s) >= len(files))
        return 0 if len(seen) >= len(files) else 1
    finally:
        stop_all(procs.values())
