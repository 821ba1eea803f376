"""The fusion network's config (tocsin/data/fusion.yaml), validated once with pydantic.

Kept apart from the network code so the CLI, the worker and the trainer validate the same
file the same way, and errors name the field (``asset_types.induction-motor.prior``).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tocsin.detectors.lifecycle import LifecycleConfig


class ScoreLevels(BaseModel):
    model_config = ConfigDict(extra="forbid")
    edges: list[float] = Field(min_length=1)
    names: list[str]

    @model_validator(mode="after")
    def _check(self) -> "ScoreLevels":
        if len(self.names) != len(self.edges) + 1:
            raise ValueError("names must have one more entry than edges")
        if sorted(self.edges) != self.edges:
            raise ValueError("edges must be increasing")
        return self

    def level(self, ratio: float) -> str:
        for edge, name in zip(self.edges, self.names):
            if ratio < edge:
                return name
        return self.names[-1]


class AssetTypeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prior: dict[str, float]

    @model_validator(mode="after")
    def _check(self) -> "AssetTypeConfig":
        if "normal" not in self.prior:
            raise ValueError("prior must include the 'normal' state")
        if any(p <= 0 for p in self.prior.values()):
            raise ValueError("prior probabilities must be > 0")
        total = sum(self.prior.values())
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"prior probabilities must sum to 1 (got {total:.4f})")
        return self


class FusionConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tag_groups: dict[str, list[str]]
    score_levels: ScoreLevels
    signatures: dict[str, list[str]]
    prior_strength: float = Field(30.0, gt=0)
    asset_types: dict[str, AssetTypeConfig]
    lifecycle: LifecycleConfig = Field(default_factory=LifecycleConfig)
    lateness_s: float = Field(0.0, ge=0)
    history_window_s: tuple[float, float] = (60.0, 30.0)

    @model_validator(mode="after")
    def _check(self) -> "FusionConfig":
        seen: dict[str, str] = {}
        for group, tags in self.tag_groups.items():
            for t in tags:
                if t in seen:
                    raise ValueError(f"tag {t!r} is in two tag groups: {seen[t]}, {group}")
                seen[t] = group
        for fault, groups in self.signatures.items():
            bad = [g for g in groups if g not in self.tag_groups]
            if bad:
                raise ValueError(f"signatures.{fault}: unknown tag groups {bad}")
        for name, at in self.asset_types.items():
            missing = [s for s in at.prior if s != "normal" and s not in self.signatures]
            if missing:
                raise ValueError(f"asset_types.{name}.prior: fault states without a "
                                 f"signature: {missing}")
        return self

    def group_of(self, tag: str) -> str | None:
        for group, tags in self.tag_groups.items():
            if tag in tags:
                return group
        return None
