"""Learn the fusion networks from labeled recordings: replay each recording's threshold alerts
and score ticks through the same evidence code the worker runs, label every tick with the
ground-truth fault type active at that event time, and fit the CPDs per asset type.

Pure: the caller brings the event-ordered inputs (from a recording or the simulator).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import cast

from tocsin.contracts.alerts import Alert, AlertEvent
from tocsin.contracts.scores import Scores
from tocsin.detectors.fusion import evidence_nodes
from tocsin.detectors.fusion_bn import (
    FAULT,
    FusionModel,
    NetworkSpec,
    fit_network,
    spec_for,
)
from tocsin.detectors.fusion_config import FusionConfig


def specs_for(cfg: FusionConfig, assets: dict[str, tuple[str, list[str]]]
              ) -> dict[str, NetworkSpec]:
    """One spec per asset type that the config knows, from the union of its assets' tags."""
    tags: dict[str, set] = {}
    for atype, t in assets.values():
        if atype in cfg.asset_types:
            tags.setdefault(atype, set()).update(t)
    return {at: spec_for(cfg, at, sorted(t)) for at, t in tags.items()}


def labeled_rows(cfg: FusionConfig, specs: dict[str, NetworkSpec],
                 assets: dict[str, tuple[str, list[str]]],
                 items: Iterable[tuple[str, object]],
                 label: Callable[[str, int], str | None]
                 ) -> dict[str, list[dict]]:
    """Evidence + ground-truth rows per asset type, one per score tick."""
    active: dict[str, dict[str, Alert]] = {}
    rows: dict[str, list[dict]] = {}
    for kind, x in items:
        if kind == "alert":
            a = cast(Alert, x)
            if a.kind != "threshold":
                continue
            act = active.setdefault(a.asset, {})
            if a.event is AlertEvent.CLEARED:
                act.pop(a.alert_id, None)
            else:
                act[a.alert_id] = a
            continue
        s = cast(Scores, x)
        atype = assets.get(s.asset, (s.asset_type, []))[0]
        spec = specs.get(atype)
        if spec is None:
            continue
        truth = label(s.asset, s.ts)
        if truth not in spec.faults:
            continue  # unlabeled (None), or a fault type this network does not model
        row = evidence_nodes(cfg, spec, active.get(s.asset, {}).values(), s)
        row[FAULT] = truth
        rows.setdefault(atype, []).append(row)
    return rows


def train(cfg: FusionConfig, assets: dict[str, tuple[str, list[str]]],
          streams: Iterable[tuple[Iterable, Callable[[str, int], str]]],
          trained_on: dict | None = None) -> FusionModel:
    specs = specs_for(cfg, assets)
    rows: dict[str, list[dict]] = {at: [] for at in specs}
    for items, label in streams:
        for at, r in labeled_rows(cfg, specs, assets, items, label).items():
            rows[at] += r
    nets = {at: fit_network(cfg, spec, rows[at]) for at, spec in specs.items()}
    info = dict(trained_on or {})
    info["ticks"] = {at: len(r) for at, r in rows.items()}
    info["labels"] = {at: _count(r) for at, r in rows.items()}
    return FusionModel(nets, info)


def _count(rows: list[dict]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in rows:
        out[r[FAULT]] = out.get(r[FAULT], 0) + 1
    return out


def assets_from_plant(plant) -> dict[str, tuple[str, list[str]]]:
    """asset id -> (asset type, tags) from a :class:`tocsin.config.plant.PlantConfig`."""
    return {a: (c.type, list(c.tags)) for a, c in plant.assets.items()}
