"""`tocsin` CLI: The plant stream worker and topic creation."""

from __future__ import annotations

import click

from tocsin.cli.common import (
    Group,
    broker_opt,
    launch_worker,
    prefix_opt,
    worker_settings,
)


@click.command()
@broker_opt
@prefix_opt
@click.option("--plant-config", type=click.Path(exists=True, dir_okay=False), default=None,
              help="plant YAML with limits (env TOCSIN_PLANT_CONFIG; default: the demo plant)")
@click.option("--agents", default=None, help="comma-separated subset of thresholds,features,"
              "anomaly (env TOCSIN_AGENTS; default: all)")
@click.option("--model-dir", type=click.Path(file_okay=False), default=None,
              help="model artifacts (env TOCSIN_MODEL_DIR; default ~/.local/share/tocsin/models)")
@click.option("--backend", type=click.Choice(["onnxruntime", "tensorrt", "torch"]), default=None,
              help="inference backend (env TOCSIN_BACKEND; default onnxruntime)")
@click.option("--worker-name", default=None, help="this worker's name, unique in the group "
              "(env TOCSIN_WORKER_NAME; default HOST-PID): static membership and "
              "transactional id")
def worker(broker, prefix, plant_config, agents, model_dir, backend, worker_name) -> None:
    """Run the stream worker: thresholds (plant.readings -> plant.alerts, exactly once on the
    runtime), features (-> plant.features) and anomaly scores (-> plant.scores). Start it N
    times with different TOCSIN_WORKER_NAME values to split the partitions."""
    from tocsin.config.worker import load_settings
    from tocsin.connectors import kafka_admin
    from tocsin.contracts import topics
    from tocsin.errors import ConfigError
    from tocsin.streams import metrics, plant_worker

    settings = load_settings(broker=broker, topic_prefix=prefix, plant_config=plant_config,
                             agents=agents, model_dir=model_dir, backend=backend,
                             worker_name=worker_name)
    if settings.backend == "tensorrt":  # fail at start-up, not on the first message
        import onnxruntime as ort

        if "TensorrtExecutionProvider" not in ort.get_available_providers():
            raise ConfigError("TOCSIN_BACKEND=tensorrt needs onnxruntime-gpu with TensorRT and "
                              "an NVIDIA GPU (pip install onnxruntime-gpu tensorrt); this machine "
                              f"offers {ort.get_available_providers()}")
    kafka_admin.ensure_topics(settings.broker, [settings.topic(t) for t in topics.ALL],
                              settings.partitions, replication=settings.replication)
    metrics.serve(settings.metrics_port, settings.metrics_host, "worker")
    plant_worker.run(settings, launch_worker)


@click.group(cls=Group)
def topics() -> None:
    """Manage Tocsin's topics."""


@topics.command("create")
@broker_opt
@prefix_opt
def topics_create(broker, prefix) -> None:
    """Create every Tocsin topic that is missing."""
    from tocsin.connectors import kafka_admin
    from tocsin.contracts import topics as t

    s = worker_settings(broker, prefix, None)
    names = [s.topic(n) for n in t.ALL]
    kafka_admin.ensure_topics(s.broker, names, s.partitions, replication=s.replication)
    click.echo("topics: " + ", ".join(names))


COMMANDS = (worker, topics,)
