"""Scoring feature windows with the newest model of each asset type, batched across assets.

:class:`AnomalyModel` wraps one artifact: standardise, Isolation Forest and PCA T²/Q on tick
vectors, LSTM-AE on sequences, thresholds, per-tag contributions. :class:`ModelRegistry` finds the
newest artifact per asset type and reloads when a newer one appears. :class:`AnomalyScorer`
keeps the per-asset state (latest windows, sequence buffers) and turns a batch of feature rows
into :class:`~tocsin.contracts.scores.Scores`, one model call per asset type per batch.
A reload keeps that state when the feature hash is unchanged; a model with another feature
layout starts its assets' sequences afresh (the old ones do not fit it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path

import numpy as np

from tocsin.contracts.features import FeatureRow
from tocsin.contracts.scores import ModelScore, Scores
from tocsin.detectors.calibrated import PCAMonitor, combine
from tocsin.detectors.model_input import SequenceBuffer, Tick, TickAssembler
from tocsin.errors import ModelError
from tocsin.models import artifacts
from tocsin.models.backends import open_session

log = logging.getLogger("tocsin.models")
CLIP = 20.0  # standardised inputs are clipped: one wild sensor must not swamp the rest


class AnomalyModel:
    def __init__(self, art: artifacts.Artifact, backend: str = "onnxruntime", threads: int = 1):
        m = art.manifest
        self.artifact = art
        self.version = art.version
        self.feature_hash = art.feature_hash
        self.spec = art.spec
        self.tags = art.tags
        self.nf = len(self.spec.names)
        self.mean = art.array("mean")
        self.std = art.array("std")
        self.d_step = len(self.tags) * self.nf
        self.seq_len = int(m["lstm_ae"]["seq_len"])
        self.score_steps = int(m["lstm_ae"]["score_steps"])
        self.thr = {k: float(v) for k, v in m["thresholds"].items()}
        # PCA T²/Q (artifacts from before it have none): numpy matrices from the manifest
        self.pca = PCAMonitor.from_dict(m["pca"]) if "pca" in m else None
        self.iforest = open_session(art.file(m["iforest"]["file"]),
                                    "onnxruntime" if backend == "torch" else backend,
                                    threads=threads)
        hidden, d = int(m["lstm_ae"]["hidden"]), self.d_step
        arch, code = m["lstm_ae"].get("arch", "sequence"), m["lstm_ae"].get("code")

        def builder():  # the torch backend only; older artifacts have the "sequence" shape
            from tocsin.models import lstm_ae
            return lstm_ae.build(d, hidden, arch=arch, code=code)

        self.ae = open_session(art.file(m["lstm_ae"]["file"]), backend, threads=threads,
                               torch_builder=builder)
        self.backend = self.ae.backend
        for sess, want, f in ((self.iforest, "score", m["iforest"]["file"]),
                              (self.ae, "sqerr", m["lstm_ae"]["file"])):
            if want not in sess.outputs:
                raise ModelError(f"{art.path / f}: no output {want!r} (has {sess.outputs}); "
                                 "an artifact from another Tocsin version? retrain it")

    def standardize(self, x: np.ndarray, step: bool = False) -> np.ndarray:
        mu, sd = (self.mean[:self.d_step], self.std[:self.d_step]) if step else (self.mean,
                                                                                 self.std)
        z = (x - mu) / sd
        z = np.where(np.isfinite(z), z, 0.0)
        return np.clip(z, -CLIP, CLIP).astype(np.float32)

    def score_vectors(self, z: np.ndarray) -> np.ndarray:
        return self.iforest.run(z)["score"].ravel().astype(np.float64)

    def score_pca(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """-> (surprise (n,), per-tag shares of Q (n x tags)) of standardised tick vectors."""
        c, sur = self.pca.score_and_contributions(z)
        s = combine(sur)
        per_tag = c.reshape(len(z), -1, len(self.tags), self.nf).sum(axis=(1, 3))
        return s, per_tag

    def score_sequences(self, zs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """-> (scores (n,), per-tag error shares (n x tags)) over the last score_steps."""
        sq = self.ae.run(zs)["sqerr"][:, -self.score_steps:, :].astype(np.float64)
        per_tag = sq.reshape(len(zs), self.score_steps, len(self.tags), self.nf).sum(axis=(1, 3))
        total = per_tag.sum(axis=1)
        scores = total / (self.score_steps * self.d_step)
        shares = per_tag / np.where(total > 0, total, 1.0)[:, None]
        return scores, shares


class ModelRegistry:
    """The newest artifact per asset type under ``root``; :meth:`refresh` picks up new ones."""

    def __init__(self, root: Path, backend: str = "onnxruntime", threads: int = 1):
        self.root = Path(root)
        self.backend = backend
        self.threads = threads
        self.models: dict[str, AnomalyModel] = {}
        self.errors: dict[str, str] = {}

    def get(self, asset_type: str) -> AnomalyModel | None:
        return self.models.get(asset_type)

    def refresh(self) -> list[tuple[str, str | None, str]]:
        """Load newer versions; -> [(asset type, old version or None, new version)]."""
        changed = []
        for at in artifacts.asset_types(self.root):
            newest = artifacts.versions(self.root, at)[-1]
            cur = self.models.get(at)
            if cur is not None and cur.artifact.path == newest:
                continue
            if self.errors.get(at) == str(newest):
                continue  # already failed on this version; do not retry every tick
            try:
                model = AnomalyModel(artifacts.load(newest), self.backend, self.threads)
            except ModelError as exc:
                self.errors[at] = str(newest)
                log.error("model %s not loaded, keeping %s: %s", newest,
                          cur.version if cur else "none", exc)
                continue
            self.models[at] = model
            changed.append((at, cur.version if cur else None, model.version))
        return changed


def reorder(row: FeatureRow, tags: list[str]) -> FeatureRow | None:
    """The row with its tags in the model's order (configs may list tags in any order);
    None when the tag sets differ."""
    if sorted(row.tags) != sorted(tags):
        return None
    idx = [row.tags.index(t) for t in tags]
    return FeatureRow(row.asset, row.end, list(tags), {k: v[idx] for k, v in row.scales.items()},
                      {k: v[idx] for k, v in row.counts.items()}, row.source_ts)


@dataclass
class _Group:
    """The ticks of one model in one batch, in arrival order."""
    model: AnomalyModel
    seqbuf: SequenceBuffer
    ticks: list[Tick] = field(default_factory=list)


@dataclass
class AnomalyScorer:
    registry: ModelRegistry
    asset_types: dict[str, str]  # asset -> type
    unscored: dict[str, str] = field(default_factory=dict)  # asset -> why (configured only)
    unknown_rows: int = 0  # rows of assets outside the config: counted, never a key

    def __post_init__(self):
        self._asm: dict[str, TickAssembler] = {}
        self._seq: dict[str, SequenceBuffer] = {}
        self._hash: dict[str, str] = {}

    def refresh(self) -> list[tuple[str, str | None, str]]:
        changed = self.registry.refresh()
        self.adopt(changed)
        return changed

    def adopt(self, changed: list[tuple[str, str | None, str]]) -> None:
        """Take the registry's newly loaded models (several scorers may share a registry:
        one per input partition)."""
        for at, _old, _new in changed:
            m = self.registry.get(at)
            if self._hash.get(at) not in (None, m.feature_hash):
                log.warning("model for %s has a new feature layout; its sequences restart", at)
                self._asm.pop(at, None)
                self._seq.pop(at, None)
            self._hash[at] = m.feature_hash

    def seq_len(self) -> int:
        """The longest sequence any loaded model needs (ticks), for the replay horizon."""
        return max((m.seq_len for m in self.registry.models.values()), default=0)

    def process(self, rows: list[FeatureRow], now_ns: int = 0, score: bool = True
                ) -> list[Scores]:
        """``score=False``: only move the per-asset state on (a replay after a restart).

        Per row only the cheap checks and the tick assembly run in Python; standardising,
        the sequence windows and both models run once per model and batch (:meth:`_score`),
        so a batch of n assets costs one call per model, not n."""
        groups: dict[int, _Group] = {}
        for row in rows:
            at = self.asset_types.get(row.asset)
            if at is None:  # ids from the wire must not grow a dict without bound
                self.unknown_rows += 1
                continue
            model = self.registry.get(at)
            if model is None:
                self.unscored[row.asset] = f"no model for asset type {at!r}"
                continue
            if row.tags != model.tags:
                fixed = reorder(row, model.tags)
                if fixed is None:
                    self.unscored[row.asset] = (f"tags {sorted(row.tags)} differ from the "
                                                f"model's {sorted(model.tags)}")
                    continue
                row = fixed
            asm = self._asm.get(at)
            if asm is None:  # (setdefault would build a throw-away assembler per row)
                asm = self._asm[at] = TickAssembler(model.spec)
            tick = asm.push(row)
            if tick is None:
                continue
            g = groups.get(id(model))
            if g is None:
                g = groups[id(model)] = _Group(
                    model, self._seq.setdefault(at, SequenceBuffer(model.seq_len)))
            g.ticks.append(tick)
        out: list[Scores] = []
        for g in groups.values():
            out += self._score(g, now_ns, score)
        return out

    def _score(self, g: _Group, now_ns: int, score: bool) -> list[Scores]:
        model, ticks = g.model, g.ticks
        # one standardisation for the whole group (elementwise: the same values as per row)
        steps = model.standardize(np.stack([t.step for t in ticks]), step=True)
        seqs = np.empty((len(ticks), model.seq_len, model.d_step), np.float32) if score else None
        with_seq: list[int] = []
        for i, t in enumerate(ticks):
            seq = g.seqbuf.push(t.asset, steps[i])
            if seq is not None and seqs is not None:
                # copied at once: the ring buffer moves on if this asset ticks again
                seqs[len(with_seq)] = seq
                with_seq.append(i)
        if not score:
            return []
        z_vecs = model.standardize(np.stack([t.vector for t in ticks]))
        if_scores = model.score_vectors(z_vecs).tolist()
        pca = None
        if model.pca is not None:
            p_s, p_sh = model.score_pca(z_vecs)
            pca = (p_s.tolist(), p_sh.tolist())
        ae: dict[int, tuple[float, list[float]]] = {}
        if with_seq:
            s, shares = model.score_sequences(seqs[:len(with_seq)])
            ae = dict(zip(with_seq, zip(s.tolist(), shares.tolist())))
        tags, thr = model.tags, model.thr
        t_if, t_ae, t_pca = thr["iforest"], thr["lstm_ae"], thr.get("pca")
        types, version, fhash = self.asset_types, model.version, model.feature_hash
        four = repeat(4)
        out = []
        for i, t in enumerate(ticks):
            models: dict[str, ModelScore | None] = {"iforest": ModelScore(if_scores[i], t_if)}
            got = ae.get(i)
            if got is not None:  # contributions rounded to 4 places (Python's round)
                models["lstm_ae"] = ModelScore(got[0], t_ae, dict(zip(tags, map(round, got[1],
                                                                             four))))
            else:
                models["lstm_ae"] = None
            if pca is not None:
                models["pca"] = ModelScore(pca[0][i], t_pca, dict(zip(tags, map(round, pca[1][i],
                                                                             four))))
            out.append(Scores(t.asset, types[t.asset], t.end, models, version, fhash,
                              emitted_ts=now_ns, source_ts=t.source_ts))
        return out
