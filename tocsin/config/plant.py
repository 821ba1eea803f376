"""The plant configuration: assets, their tags, units and alarm limits (``config/plant.yaml``)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, Strict, model_validator

from tocsin.config.yamlfile import load_model
from tocsin.detectors.thresholds import TagLimits
from tocsin.detectors.windows import FeatureSpec

_BAD = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]")


def _name(v: str) -> str:
    if not v.strip():
        raise ValueError("a name must not be empty")
    if _BAD.search(v):
        raise ValueError(f"a name must not hold control or formatting characters: {v!r}")
    return v


Name = Annotated[str, AfterValidator(_name)]
# a limit is a finite number: `high: true` (YAML's boolean) or `.nan` is a typo, not 1.0
Limit = Annotated[float, Strict()]


class TagConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    unit: str = ""
    description: str = ""
    high: Limit | None = None
    low: Limit | None = None
    rate: Limit | None = Field(None, gt=0, description="max |change| per second")
    deadband: Limit = Field(0.0, ge=0)
    severity: Literal["info", "warning", "critical"] = "warning"

    @model_validator(mode="after")
    def _order(self) -> "TagConfig":
        if self.high is not None and self.low is not None and self.low >= self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        return self

    def limits(self) -> TagLimits:
        return TagLimits(high=self.high, low=self.low, rate=self.rate,
                         deadband=self.deadband, severity=self.severity)


class AssetConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Name = "generic"
    description: str = ""
    tags: dict[Name, TagConfig]


class PlantConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    plant: Name = "plant"
    assets: dict[Name, AssetConfig]
    features: FeatureSpec = Field(default_factory=FeatureSpec,
                                  description="feature windows (default 1 s, 10 s, 60 s)")

    def asset_types(self) -> dict[str, str]:
        return {a: c.type for a, c in self.assets.items()}

    def asset_tags(self) -> dict[str, list[str]]:
        return {a: list(c.tags) for a, c in self.assets.items()}

    def limits_for(self, asset: str) -> dict[str, TagLimits] | None:
        a = self.assets.get(asset)
        return None if a is None else {t: c.limits() for t, c in a.tags.items()}


DEFAULT_PLANT = Path(__file__).resolve().parent.parent / "data" / "plant.yaml"


def load_plant(path: str | Path | None = None) -> PlantConfig:
    return load_model(path or DEFAULT_PLANT, PlantConfig)
