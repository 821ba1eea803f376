"""Anomaly scores (topic ``plant.scores``, keyed by asset id): one message per asset and tick.

A tick is the close of the asset's smallest feature window (1 s by default), on event time:
``ts`` is the window end, taken from the source timestamps, so a replay gives the same scores.
Each model reports its raw ``score`` (higher = more anomalous), the ``threshold`` calibrated on
held-back normal data, and ``ratio`` = score / threshold (above 1 = anomalous). The LSTM
autoencoder also reports ``contributions``: each tag's share of the reconstruction error (the
shares sum to 1), which explains what drove the score. A model still warming up (the LSTM-AE
needs a full sequence) is ``null``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

from tocsin.contracts._codec import check_schema, loads
from tocsin.contracts._codec import field as get_field
from tocsin.contracts.strict import check_id, check_int, check_number
from tocsin.errors import SchemaError

NAME = "tocsin.scores"
VERSION = 1
_SCHEMA = f"{NAME}/{VERSION}"


@dataclass(slots=True)
class ModelScore:
    score: float
    threshold: float
    contributions: dict[str, float] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return self.score / self.threshold if self.threshold > 0 else float("inf")

    def to_dict(self) -> dict:
        return {"score": self.score, "threshold": self.threshold, "ratio": self.ratio,
                "contributions": self.contributions}

    @classmethod
    def from_dict(cls, d: object, key: str) -> "ModelScore | None":
        if d is None:
            return None
        if not isinstance(d, dict):
            raise SchemaError(f"{NAME}: field 'models.{key}' must be an object or null")
        try:
            contrib = d.get("contributions") or {}
            if not isinstance(contrib, dict):
                raise TypeError("contributions")
            w = f" (models.{key})"
            return cls(check_number(d["score"], "score", NAME, where=w),
                       check_number(d["threshold"], "threshold", NAME, where=w),
                       {str(k): check_number(v, f"contributions.{k}", NAME, where=w)
                        for k, v in contrib.items()})
        except (KeyError, TypeError) as exc:
            raise SchemaError(f"{NAME}: field 'models.{key}' is malformed ({exc!r})") from exc


@dataclass(slots=True)
class Scores:
    asset: str
    asset_type: str
    ts: int  # ns, event time: end of the window this tick closed
    models: dict[str, ModelScore | None]  # "iforest", "lstm_ae", "pca" (newer artifacts)
    model_version: str
    feature_hash: str
    emitted_ts: int = 0  # ns, wall clock (latency measurement only)
    source_ts: int = 0  # ns, newest source timestamp that went into this tick

    @property
    def anomalous(self) -> bool:
        return any(m is not None and m.ratio > 1.0 for m in self.models.values())

    def top_tags(self, k: int = 3) -> list[str]:
        ae = self.models.get("lstm_ae")
        if ae is None or not ae.contributions:
            return []
        return [t for t, _ in sorted(ae.contributions.items(), key=lambda kv: -kv[1])[:k]]

    def encode(self) -> bytes:
        return orjson.dumps({
            "schema": _SCHEMA, "asset": self.asset, "asset_type": self.asset_type,
            "ts": self.ts, "source_ts": self.source_ts, "emitted_ts": self.emitted_ts,
            "models": {k: (None if v is None else v.to_dict()) for k, v in self.models.items()},
            "anomalous": self.anomalous, "top_tags": self.top_tags(),
            "model_version": self.model_version, "feature_hash": self.feature_hash,
        })

    @classmethod
    def decode(cls, data: bytes) -> "Scores":
        obj = loads(data, NAME)
        check_schema(obj, NAME, VERSION)
        models = get_field(obj, "models", dict, NAME)
        return cls(
            asset=check_id(get_field(obj, "asset", str, NAME), "asset", NAME),
            asset_type=get_field(obj, "asset_type", str, NAME),
            ts=get_field(obj, "ts", int, NAME),
            models={str(k): ModelScore.from_dict(v, str(k)) for k, v in models.items()},
            model_version=get_field(obj, "model_version", str, NAME),
            feature_hash=get_field(obj, "feature_hash", str, NAME),
            emitted_ts=check_int(obj.get("emitted_ts") or 0, "emitted_ts", NAME),
            source_ts=check_int(obj.get("source_ts") or 0, "source_ts", NAME),
        )
