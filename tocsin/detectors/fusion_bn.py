"""The fault-type Bayesian network (pgmpy), one per asset type: build, learn, save, infer.

Structure: ``fault -> thr_<group>, iforest, lstm_ae, top_group`` (see tocsin/data/fusion.yaml).
The fault prior comes from the config (it describes the plant, not the training scenarios,
which are fault-heavy by design); the evidence CPDs are learned from labeled recordings with
pgmpy's BayesianEstimator, using the config's expert signatures as the Dirichlet prior, so a
fault state the recordings never show keeps the engineer's numbers.

Inference: every evidence node is discrete, so the posterior is a function of a finite
evidence tuple. pgmpy's VariableElimination is exact but costs milliseconds per query
(benchmarks/fusion_inference.py); the network memoises the exact VE result per evidence
combination (at most a few thousand), so the per-tick cost after warm-up is a dict lookup.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from tocsin.detectors.fusion_config import FusionConfig
from tocsin.errors import ConfigError, ModelError, TocsinError

FAULT = "fault"
YES_NO = ("no", "yes")
ARTIFACT = "network.json"
FORMAT = "tocsin.fusion-network/1"


class FusionModelError(ModelError):
    """A fusion network artifact is missing, malformed or does not match the config."""


def _quiet_pgmpy() -> None:
    """pgmpy 1.1 announces its 1.3 renames (FutureWarning) on import and on every estimator;
    they are about pgmpy's API, not the user's data, and pyproject pins pgmpy below 1.3."""
    import logging
    import warnings

    logging.getLogger("pgmpy").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=r".*pgmpy.*(deprecated|removed)",
                            category=FutureWarning)


def _pgmpy():
    try:
        _quiet_pgmpy()
        from pgmpy.factors.discrete import TabularCPD
        from pgmpy.inference import VariableElimination
        from pgmpy.models import DiscreteBayesianNetwork
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise TocsinError("the fusion network needs pgmpy: pip install 'tocsin[fusion]'") from exc
    return DiscreteBayesianNetwork, TabularCPD, VariableElimination


@dataclass(frozen=True)
class NetworkSpec:
    """Nodes and their states for one asset type."""

    asset_type: str
    faults: tuple[str, ...]  # states of the fault node, "normal" first
    groups: tuple[str, ...]  # tag groups the asset type has
    levels: tuple[str, ...]

    @property
    def states(self) -> dict[str, tuple[str, ...]]:
        s = {FAULT: self.faults}
        s.update({f"thr_{g}": YES_NO for g in self.groups})
        s["iforest"] = self.levels
        s["lstm_ae"] = self.levels
        s["top_group"] = ("none",) + self.groups
        return s

    @property
    def evidence_nodes(self) -> tuple[str, ...]:
        return tuple(n for n in self.states if n != FAULT)


def spec_for(cfg: FusionConfig, asset_type: str, tags: list[str]) -> NetworkSpec:
    at = cfg.asset_types.get(asset_type)
    if at is None:
        raise ConfigError(f"fusion config: no asset_types entry for {asset_type!r}; known: "
                          f"{sorted(cfg.asset_types)}")
    present = {cfg.group_of(t) for t in tags}
    groups = tuple(g for g in cfg.tag_groups if g in present)
    faults = ("normal",) + tuple(s for s in at.prior if s != "normal")
    return NetworkSpec(asset_type, faults, groups, tuple(cfg.score_levels.names))


def expert_cpds(cfg: FusionConfig, spec: NetworkSpec) -> dict[str, np.ndarray]:
    """P(node | fault) from the signatures: columns are fault states, rows node states."""
    out: dict[str, np.ndarray] = {}
    n_lv = len(spec.levels)
    for node, states in spec.states.items():
        if node == FAULT:
            continue
        cols = []
        for f in spec.faults:
            sig = cfg.signatures.get(f, [])
            if node.startswith("thr_"):
                g = node[4:]
                p = 0.005 if f == "normal" else (0.5 if g in sig else 0.03)
                col = [1 - p, p]
            elif node in ("iforest", "lstm_ae"):
                col = ([0.97] + [0.03 / (n_lv - 1)] * (n_lv - 1) if f == "normal"
                       else [0.2] + [0.8 / (n_lv - 1)] * (n_lv - 1))
            else:  # top_group
                w = np.full(len(states), 0.05)
                if f == "normal":
                    w[0] = 3.0
                else:
                    w[0] = 0.5
                    for rank, g in enumerate(sig):
                        if g in spec.groups:
                            w[1 + spec.groups.index(g)] = 2.0 / (rank + 1)
                col = list(w / w.sum())
            cols.append(col)
        out[node] = np.asarray(cols, float).T
    return out


@dataclass
class FaultNetwork:
    """One asset type's network with a memoised exact posterior."""

    spec: NetworkSpec
    prior: dict[str, float]
    cpds: dict[str, np.ndarray]  # node -> (states, faults)
    _cache: dict = field(default_factory=dict, repr=False)
    _ve: Any = field(default=None, repr=False)

    def model(self):
        Net, Cpd, _ = _pgmpy()
        states = self.spec.states
        net = Net([(FAULT, n) for n in self.spec.evidence_nodes])
        net.add_cpds(Cpd(FAULT, len(self.spec.faults),
                         [[self.prior[f]] for f in self.spec.faults],
                         state_names={FAULT: list(self.spec.faults)}))
        for node in self.spec.evidence_nodes:
            net.add_cpds(Cpd(node, len(states[node]), self.cpds[node].tolist(),
                             evidence=[FAULT], evidence_card=[len(self.spec.faults)],
                             state_names={node: list(states[node]),
                                          FAULT: list(self.spec.faults)}))
        net.check_model()
        return net

    def posterior_ve(self, evidence: dict[str, str | None]) -> dict[str, float]:
        """Exact posterior by pgmpy VariableElimination (no cache); None = unobserved."""
        if self._ve is None:
            self._ve = _pgmpy()[2](self.model())
        ev = {k: v for k, v in evidence.items() if v is not None}
        q = self._ve.query([FAULT], evidence=ev or None, show_progress=False)
        names = q.state_names[FAULT]
        return {str(s): float(p) for s, p in zip(names, q.values)}

    def posterior(self, evidence: dict[str, str | None]) -> dict[str, float]:
        """The same exact posterior, memoised per evidence combination."""
        key = tuple(evidence.get(n) for n in self.spec.evidence_nodes)
        hit = self._cache.get(key)
        if hit is None:
            hit = self._cache[key] = self.posterior_ve(dict(zip(self.spec.evidence_nodes, key)))
        return hit

    def warm(self) -> int:
        """Fill the cache for every evidence combination the worker can see (score nodes
        may be unobserved), so no tick ever waits for pgmpy; returns the table size."""
        nodes = self.spec.evidence_nodes
        choices = [self.spec.states[n] + ((None,) if not n.startswith("thr_") else ())
                   for n in nodes]
        for combo in itertools.product(*choices):
            self.posterior(dict(zip(nodes, combo)))
        return len(self._cache)

    def to_dict(self) -> dict:
        return {"faults": list(self.spec.faults), "groups": list(self.spec.groups),
                "levels": list(self.spec.levels), "prior": self.prior,
                "cpds": {n: a.round(6).tolist() for n, a in self.cpds.items()}}

    @classmethod
    def from_dict(cls, asset_type: str, d: dict) -> "FaultNetwork":
        try:
            spec = NetworkSpec(asset_type, tuple(d["faults"]), tuple(d["groups"]),
                               tuple(d["levels"]))
            cpds = {n: np.asarray(v, float) for n, v in d["cpds"].items()}
            net = cls(spec, {str(k): float(v) for k, v in d["prior"].items()}, cpds)
        except (KeyError, TypeError, ValueError) as exc:
            raise FusionModelError(f"network for {asset_type}: malformed ({exc!r})") from exc
        for node, states in spec.states.items():
            if node != FAULT and cpds.get(node, np.empty(0)).shape != (len(states),
                                                                      len(spec.faults)):
                raise FusionModelError(f"network for {asset_type}: CPD of {node!r} has the "
                                       f"wrong shape")
        return net


def expert_network(cfg: FusionConfig, spec: NetworkSpec) -> FaultNetwork:
    return FaultNetwork(spec, dict(cfg.asset_types[spec.asset_type].prior),
                        expert_cpds(cfg, spec))


def fit_network(cfg: FusionConfig, spec: NetworkSpec, rows: list[dict]) -> FaultNetwork:
    """Learn the evidence CPDs from labeled rows ({fault: state, node: state, ...}) with
    pgmpy's BayesianEstimator; the expert CPDs times ``prior_strength`` are the pseudo-counts."""
    import pandas as pd

    _quiet_pgmpy()
    from pgmpy.estimators import BayesianEstimator

    expert = expert_network(cfg, spec)
    if not rows:
        return expert
    states = spec.states
    df = pd.DataFrame(rows, columns=list(states))
    for node, st in states.items():
        bad = set(df[node].dropna()) - set(st)
        if bad:
            raise FusionModelError(f"training rows: node {node!r} has unknown states {bad}")
    df = df.dropna()
    model = expert.model()
    est = BayesianEstimator(model, df, state_names={k: list(v) for k, v in states.items()})
    cpds = {}
    for node in spec.evidence_nodes:
        cpd = est.estimate_cpd(node, prior_type="dirichlet",
                               pseudo_counts=expert.cpds[node] * cfg.prior_strength)
        cpd_states = [str(s) for s in cpd.state_names[node]]
        order = [cpd_states.index(s) for s in states[node]]
        fault_order = [str(s) for s in cpd.state_names[FAULT]]
        cols = [fault_order.index(f) for f in spec.faults]
        cpds[node] = np.asarray(cpd.get_values())[np.ix_(order, cols)]
    return FaultNetwork(spec, dict(expert.prior), cpds)


@dataclass
class FusionModel:
    """All asset types' networks plus where they came from; saved as one readable JSON."""

    networks: dict[str, FaultNetwork]
    trained_on: dict = field(default_factory=dict)
    version: str = ""

    def __post_init__(self):
        if not self.version:
            body = orjson.dumps({k: n.to_dict() for k, n in sorted(self.networks.items())},
                                option=orjson.OPT_SORT_KEYS)
            self.version = "fusion-" + hashlib.blake2b(body, digest_size=6).hexdigest()

    def save(self, directory: str | Path) -> Path:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        path = d / ARTIFACT
        path.write_bytes(orjson.dumps({
            "format": FORMAT, "version": self.version, "trained_on": self.trained_on,
            "networks": {k: n.to_dict() for k, n in self.networks.items()}},
            option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "FusionModel":
        p = Path(path)
        if p.is_dir():
            p = p / ARTIFACT
        try:
            obj = orjson.loads(p.read_bytes())
        except OSError as exc:
            raise FusionModelError(f"{p}: cannot read fusion network ({exc.strerror})") from exc
        except orjson.JSONDecodeError as exc:
            raise FusionModelError(f"{p}: not valid JSON ({exc})") from exc
        if obj.get("format") != FORMAT:
            raise FusionModelError(f"{p}: field 'format' must be {FORMAT!r}")
        nets = {k: FaultNetwork.from_dict(k, v) for k, v in obj.get("networks", {}).items()}
        return cls(nets, obj.get("trained_on", {}), obj.get("version", ""))


def all_evidence(spec: NetworkSpec):
    """Every fully observed evidence combination (for warm-up and benchmarks)."""
    nodes = spec.evidence_nodes
    for combo in itertools.product(*(spec.states[n] for n in nodes)):
        yield dict(zip(nodes, combo))
