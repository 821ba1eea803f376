"""`tocsin fusion worker|feed-sim` and `tocsin train fusion`: the Bayesian-network fusion of
threshold alerts and anomaly scores. Heavy imports happen inside the commands."""

from __future__ import annotations

import click

from tocsin.cli.common import (
    Group,
    broker_opt,
    prefix_opt,
    worker_settings,
)

_config_opt = click.option("--config", "config_path", envvar="TOCSIN_FUSION_CONFIG",
                           type=click.Path(exists=True, dir_okay=False), default=None,
                           help="fusion network YAML (default: tocsin/data/fusion.yaml)")


_model_dir_opt = click.option("--model-dir", type=click.Path(file_okay=False), default=None,
                              envvar="TOCSIN_MODEL_DIR",
                              help="model root: anomaly models and fusion/ networks [env "
                                   "TOCSIN_MODEL_DIR; default ~/.local/share/tocsin/models]")
_stand_in_opt = click.option("--stand-in", is_flag=True,
                             help="score with the SIMULATED stand-in scorer (window z-scores, "
                                  "tocsin/connectors/simulator/scores.py) instead of the "
                                  "trained anomaly models; for development only")


def _logging(level: str) -> None:
    import logging

    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO),
                        format="[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: "
                               "%(message)s")


def register(main: click.Group, train: click.Group) -> None:
    @main.group("fusion", cls=Group)
    def fusion() -> None:
        """Bayesian-network fusion of threshold alerts and anomaly scores."""

    @fusion.command("worker")
    @broker_opt
    @prefix_opt
    @click.option("--plant-config", type=click.Path(exists=True, dir_okay=False), default=None,
                  help="plant YAML (env TOCSIN_PLANT_CONFIG; default: the demo plant)")
    @_config_opt
    @_model_dir_opt
    @click.option("--model", "model_path", envvar="TOCSIN_FUSION_MODEL",
                  type=click.Path(exists=True), default=None,
                  help="pin a trained network (folder or network.json); default: the newest "
                       "under <model dir>/fusion/, reloaded when a newer one is trained, else "
                       "the config's expert priors")
    def fusion_worker(broker, prefix, plant_config, config_path, model_dir, model_path):
        """Run the fusion worker: plant.alerts + plant.scores -> fused alerts (exactly-once
        runtime; state per asset in a changelog; run as many as you like per prefix)."""
        from tocsin.models import fusion_store
        from tocsin.streams import metrics
        from tocsin.streams.fusion_app import ensure_fusion_topics, load_engine, serve_fusion

        s = worker_settings(broker, prefix, plant_config, model_dir=model_dir)
        ensure_fusion_topics(s)
        watch = None if model_path else fusion_store.fusion_root(s.model_dir)
        model_path = model_path or fusion_store.newest(s.model_dir)
        engine = load_engine(s, config_path, model_path)
        click.echo(f"fusion: network {engine.model.version} "
                   f"({model_path or 'expert priors'}); asset types "
                   f"{sorted(engine.model.networks)}"
                   + (f"; watching {watch} for newer networks" if watch else ""))
        metrics.serve(s.metrics_port, s.metrics_host, "fusion")
        _logging(s.log_level)
        serve_fusion(s, engine, watch=watch, current=str(model_path) if model_path else None)

    @fusion.command("feed-sim")
    @broker_opt
    @prefix_opt
    @_model_dir_opt
    @_stand_in_opt
    @click.option("--asset", default="pump-1", show_default=True)
    @click.option("--fault", default="bearing_wear", show_default=True)
    @click.option("--at", "fault_at", default=100.0, show_default=True,
                  help="seconds (after the models' 90 s warm-up)")
    @click.option("--until", "fault_until", default=160.0, show_default=True, help="seconds")
    @click.option("--seconds", default=200.0, show_default=True)
    @click.option("--seed", default=77, show_default=True)
    @click.option("--speed", default=0.0, show_default=True,
                  help="1 = real time; 0 = as fast as possible")
    @click.option("--scores-only", is_flag=True,
                  help="publish only the scores (a plant worker makes the threshold alerts)")
    def fusion_feed_sim(broker, prefix, model_dir, stand_in, asset, fault, fault_at,
                        fault_until, seconds, seed, speed, scores_only):
        """Publish fusion inputs for one SIMULATED fault: the simulator's threshold alerts and
        the trained anomaly models' scores on the same simulated readings, stamped from now."""
        from tocsin.streams.fusion_feed import feed_simulated

        s = worker_settings(broker, prefix, model_dir=model_dir)
        n = feed_simulated(s, _score_source(s.model_dir, stand_in, [asset]), asset=asset,
                           fault=fault, at=fault_at, until=fault_until, seconds=seconds,
                           seed=seed, speed=speed, scores_only=scores_only)
        click.echo(f"feed-sim: published {n} simulated messages ({fault} on {asset})")

    @train.command("fusion")
    @_config_opt
    @_model_dir_opt
    @_stand_in_opt
    @click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
                  help="artifact folder (default: <model dir>/fusion/<time>-<version>)")
    @click.option("--seed", "seeds", multiple=True, type=int, default=(1, 2, 3),
                  show_default=True, help="simulator seeds of the training scenarios")
    def train_fusion(config_path, model_dir, stand_in, out_dir, seeds):
        """Learn the fusion network's CPDs from labeled SIMULATED scenarios (every fault of
        the fault library on its asset, per seed), scored by the trained anomaly models
        (`tocsin train` first), and save it beside them."""
        from pathlib import Path

        from tocsin.models import fusion_store
        from tocsin.streams.fusion_feed import train_simulated

        root = Path(model_dir) if model_dir else None
        scores = _score_source(root, stand_in, None)
        click.echo(f"scores: {scores.label}", err=True)
        model, took = train_simulated(scores, config_path, seeds,
                                      progress=lambda m: click.echo(m, err=True))
        path = model.save(Path(out_dir)) if out_dir else fusion_store.save(model, root)
        click.echo(f"fusion network {model.version}: {model.trained_on['ticks']} labeled "
                   f"ticks in {took:.0f}s -> {path}")


def _score_source(model_root, stand_in: bool, assets):
    """The trained anomaly models (default), or the SIMULATED stand-in when asked for."""
    if stand_in:
        from tocsin.connectors.simulator.fusion_stream import fit_scorers

        click.secho("scores: SIMULATED stand-in scorer (--stand-in), not the anomaly models",
                    fg="yellow", err=True)
        return fit_scorers()
    from tocsin.connectors.simulator.fusion_stream import ModelScores
    from tocsin.errors import ModelError

    try:
        return ModelScores(model_root, assets=assets)
    except ModelError as exc:
        raise click.ClickException(str(exc)) from exc
