"""Fraud scoring settings, read once from the environment (prefix ``TOCSIN_FRAUD_``) or
from command-line options, and validated; errors name the variable."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tocsin.errors import ConfigError


class FraudSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TOCSIN_FRAUD_", extra="ignore")

    model_dir: Path = Field(Path("~/.cache/tocsin/models/fraud").expanduser(),
                            description="artifact folder from `tocsin train fraud`")
    backend: str = Field("onnxruntime", description="onnxruntime or tensorrt")
    threads: int = Field(1, ge=1, le=16, description="ONNX Runtime intra-op threads")
    batch_max: int = Field(1024, ge=1, le=8192, description="most transactions in one batch "
                           "(one Kafka transaction; the batch grows with the backlog)")
    batch_wait_ms: float = Field(2.0, ge=0, le=1000, description="longest wait for the first "
                                 "record of a batch")
    naive: bool = Field(False, description="per-transaction scorer (benchmark peer): no "
                                           "batching, full model once per message, no switch")
    budget_ms: float = Field(120.0, gt=0, description="latency budget of the switch")
    switch_high: float = Field(0.8, gt=0, description="trip above this x budget")
    switch_low: float = Field(0.5, gt=0, description="recover below this x budget")
    trip_after: int = Field(2, ge=1)
    recover_s: float = Field(2.0, ge=0)
    force_branch: str | None = Field(None, description="full or light: pin the branch")
    review_threshold: float | None = Field(None, ge=0, le=1, description="default: the model's")
    decline_threshold: float | None = Field(None, ge=0, le=1, description="default: the model's")
    alert_on: str = Field("decline", description="review or decline: lowest decision alerted")
    status_every_s: float = Field(5.0, gt=0, description="switch status log interval")
    align_idle_s: float = Field(5.0, ge=0, le=600, description="terminal stage: a card-stage "
                                "source whose event time has not advanced for this long is "
                                "not waited for (the role of Kafka Streams' max.task.idle.ms)")
    align_max_skew_s: float | None = Field(None, gt=0, description="terminal stage: wait at "
                                           "most this much event time for a slow source "
                                           "(default: no event-time bound)")
    late_bound_s: float = Field(6 * 3600.0, gt=0, description="terminal state: transactions "
                                "this far behind the terminal's newest are still exact")

    @model_validator(mode="after")
    def _check(self) -> "FraudSettings":
        if self.switch_low >= self.switch_high:
            raise ValueError("switch_low must be below switch_high")
        if self.alert_on not in ("review", "decline"):
            raise ValueError(f"alert_on must be review or decline, got {self.alert_on!r}")
        if self.naive and self.force_branch is None:
            # the straightforward scorer has no load-aware switch: full model, every message
            self.force_branch = "full"
        if self.force_branch not in (None, "full", "light"):
            raise ValueError(f"force_branch must be full or light, got {self.force_branch!r}")
        if (self.review_threshold is not None and self.decline_threshold is not None
                and self.review_threshold > self.decline_threshold):
            raise ValueError("review_threshold must not be above decline_threshold")
        return self


def load_fraud_settings(**overrides) -> FraudSettings:
    try:
        return FraudSettings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        lines = [f"  TOCSIN_FRAUD_{'_'.join(map(str, e['loc'])).upper() or '(settings)'}: "
                 f"{e['msg']}" for e in exc.errors()]
        raise ConfigError("invalid fraud settings:\n" + "\n".join(lines)) from exc
