"""Worker settings, read once from the environment (prefix ``TOCSIN_``) and validated."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tocsin.errors import ConfigError

AGENTS = ("thresholds", "features", "anomaly")
GC_GEN0_DEFAULT = 10_000  # measured: docs/runtime.md, "Python's garbage collector"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TOCSIN_", extra="ignore")

    broker: str = Field("127.0.0.1:9092", description="Kafka bootstrap host:port[,host:port]")
    topic_prefix: str = Field("", description="prepended to every topic name (isolated runs)")
    partitions: int = Field(4, ge=1, description="partitions of the topics Tocsin creates")
    replication: int | str = Field("auto", description="replicas of the topics Tocsin "
                                   "creates (changelogs too): 1-7, or auto = min(3, brokers "
                                   "in the cluster)")
    plant_config: Path | None = Field(None, description="plant YAML (assets, tags, limits)")
    app_id: str = "tocsin"
    worker_name: str = Field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}",
                             min_length=1, description="unique in the group: static "
                             "membership and transactional id (default host-pid: unique, and "
                             "stable for a container's PID 1 across restarts)")
    metrics_port: int = Field(0, ge=0, description="Prometheus metrics port; 0 = off")
    metrics_host: str = Field("127.0.0.1", description="address the metrics server binds")
    data_dir: Path = Path("/tmp/tocsin-worker")
    log_level: str = "info"
    agents: str = Field("thresholds,features,anomaly",
                        description="comma-separated agents this worker runs")
    model_dir: Path | None = Field(None, description="model artifacts (default "
                                   "~/.local/share/tocsin/models)")
    backend: Literal["onnxruntime", "tensorrt", "torch"] = "onnxruntime"
    model_poll_s: float = Field(5.0, gt=0, description="how often to look for new models")
    batch_max: int = Field(512, ge=1, description="feature/anomaly agents: most messages "
                           "per batch")
    batch_wait_s: float = Field(0.02, gt=0, description="feature/anomaly agents: longest "
                                "wait to fill a batch")
    # bounds and guards (docs/poison-input.md): every one explicit, every excess counted
    deadletter_max_payload: int = Field(64 * 1024, ge=0, le=512 * 1024, description="bytes of "
                                        "a bad record kept in its dead letter (the rest: "
                                        "length and SHA-256)")
    max_future_skew_s: float = Field(300.0, gt=0, allow_inf_nan=False, description="samples "
                                     "and transactions stamped further ahead are refused")
    min_event_year: int = Field(2000, ge=1971, le=2100, description="samples and transactions "
                                "stamped before 1 January of this year are refused")
    max_unknown_assets: int = Field(1000, ge=0, description="assets outside the plant config "
                                    "that get feature windows (or fusion state)")
    max_tags_per_asset: int = Field(1000, ge=1, description="tags learned per asset outside "
                                    "the plant config")
    report_interval_s: float = Field(60.0, gt=0, allow_inf_nan=False, description="one log "
                                     "line per reason and interval for refused input")
    # the runtime (tocsin.streams.runtime; docs/runtime.md): guarantees and group membership
    processing_guarantee: Literal["exactly_once", "at_least_once"] = Field(
        "exactly_once", description="exactly_once: outputs, state and input offsets in one "
        "Kafka transaction; at_least_once: the same loop without transactions")
    group_protocol: Literal["classic", "consumer"] = Field(
        "classic", description="classic (cooperative-sticky) or consumer (KIP-848)")
    session_timeout_ms: int = Field(3000, ge=1000, le=300_000, description="classic protocol: "
                                    "a silent member's partitions move after this (a broker "
                                    "that refuses it: 6000 is used, with a warning)")
    heartbeat_interval_ms: int = Field(1000, ge=100, le=60_000, description="classic "
                                       "protocol: heartbeat period (< session timeout / 3)")
    static_membership: bool = Field(True, description="group.instance.id = worker name: a "
                                    "restarted worker gets its partitions back at once")
    transaction_timeout_ms: int = Field(3000, ge=1000, le=900_000, description="a dead "
                                        "worker's open transaction is aborted after this")
    runtime_idle_wait_s: float = Field(0.1, gt=0, le=5, description="runtime: longest wait "
                                       "for the first record of a batch (ticks run between)")
    runtime_fetch_wait_ms: int = Field(10, ge=0, le=500, description="runtime: longest time "
                                       "the broker holds a fetch for new input (librdkafka's "
                                       "fetch.wait.max.ms; its 500 ms default showed up in "
                                       "the alert latency)")
    changelog_replication: int = Field(0, ge=0, le=5, description="replication of changelog "
                                       "topics; 0 = min(3, brokers)")
    # Python's cyclic GC (tocsin/streams/runtime/gc_setup.py; docs/runtime.md): set once
    # after start-up, before the runners start
    runtime_gc_freeze: bool = Field(True, description="runtime: gc.collect() + gc.freeze() "
                                    "after start-up (models, config, operators leave the "
                                    "collector's generations); false = Python's default")
    runtime_gc_gen0: int = Field(GC_GEN0_DEFAULT, ge=0, le=1_000_000, description="runtime: "
                                 "gen0 threshold of Python's cyclic GC (net allocations "
                                 "between young collections); 0 = Python's (700)")

    @field_validator("replication", mode="before")
    @classmethod
    def _replication(cls, v: object) -> int | str:
        if isinstance(v, str) and v.strip().lower() == "auto":
            return "auto"
        try:
            n = int(str(v).strip())
        except ValueError:
            raise ValueError(f"{v!r} is neither 'auto' nor a number of replicas") from None
        if not 1 <= n <= 7:
            raise ValueError(f"{n} replicas: choose 1 to 7, or 'auto'")
        return n

    @field_validator("agents")
    @classmethod
    def _agents(cls, v: str) -> str:
        names = [a.strip() for a in v.split(",") if a.strip()]
        bad = set(names) - set(AGENTS)
        if bad or not names:
            raise ValueError(f"unknown agents {sorted(bad)}; choose from {list(AGENTS)}")
        return ",".join(names)

    @model_validator(mode="after")
    def _membership(self) -> "Settings":
        if self.group_protocol == "classic" and \
                self.heartbeat_interval_ms * 3 > self.session_timeout_ms:
            raise ValueError(f"heartbeat_interval_ms ({self.heartbeat_interval_ms}) must be at "
                             f"most a third of session_timeout_ms ({self.session_timeout_ms})")
        return self

    @property
    def agent_set(self) -> set[str]:
        return set(self.agents.split(","))

    @property
    def kafka_url(self) -> str:
        return ",".join(f"kafka://{h}" for h in self.broker.split(",") if h)

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"


def load_settings(**overrides) -> Settings:
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        lines = [f"  {'TOCSIN_' + '_'.join(map(str, e['loc'])).upper() if e['loc'] else 'TOCSIN_*'}"
                 f": {e['msg']}" for e in exc.errors()]
        raise ConfigError("invalid worker settings:\n" + "\n".join(lines)) from exc
