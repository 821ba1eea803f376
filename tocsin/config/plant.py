"""The plant configuration: assets, their tags, units and alarm limits (``config/plant.yaml``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tocsin.config.yamlfile import load_model
from tocsin.detectors.thresholds import TagLimits
from tocsin.detectors.windows import FeatureSpec


class TagConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    unit: str = ""
    description: str = ""
    high: float | None = None
    low: float | None = None
    rate: float | None = Field(None, gt=0, description="max |change| per second")
    deadband: float = Field(0.0, ge=0)
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

    type: str = "generic"
    description: str = ""
    tags: dict[str, TagConfig]


class PlantConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    plant: str = "plant"
    assets: dict[str, AssetConfig]
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
