"""Every connector that implements :class:`tocsin.connectors.base.Source`, in one place.

An entry names the config model, the source class, the record type it yields, the topic its
records belong on, its sample config (shipped in ``tocsin/data/``) and the command that runs
it in production. A new connector is one entry here: the ``tocsin connect`` commands for
plant sources and ``tocsin connect list`` are built from this table, and
``tests/unit/test_source_contract.py`` runs the Source contract over every entry (and fails
for an entry without a contract case).

Classes are named by import path and imported only when used, so listing the registry never
imports asyncua, pymodbus or pynetdicom.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel

from tocsin.config.yamlfile import load_model, parse_model
from tocsin.contracts import topics
from tocsin.errors import ConfigError

DATA = Path(__file__).resolve().parent.parent / "data"


def _resolve(ref: str):
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


@dataclass(frozen=True)
class SourceSpec:
    name: str
    summary: str
    config: str  # "module:Model", a pydantic model validated once at start-up
    factory: str  # "module:Class", called with the validated config
    record: str  # "module:Type" of what records() yields
    topic: str
    sample: Path
    command: str  # how it runs against Kafka

    def config_model(self) -> type[BaseModel]:
        return _resolve(self.config)

    def record_type(self) -> type:
        return _resolve(self.record)

    def load_config(self, path: str | Path | None = None) -> BaseModel:
        """The YAML at `path` (default: the sample); ConfigError names the field."""
        return load_model(path or self.sample, self.config_model())

    def parse_config(self, raw: dict, where: str | None = None) -> BaseModel:
        return parse_model(raw, self.config_model(), where or f"{self.name} config")

    def create(self, config: BaseModel | dict, **kw):
        if isinstance(config, dict):
            config = self.parse_config(config)
        return _resolve(self.factory)(config, **kw)


_C = "tocsin.connectors."
SOURCES: dict[str, SourceSpec] = {s.name: s for s in (
    SourceSpec("opcua", "subscribe to (or poll) an OPC UA server",
               _C + "opcua:OpcUaConfig", _C + "opcua:OpcUaSource",
               "tocsin.contracts.readings:ReadingsFrame", topics.READINGS,
               DATA / "opcua.yaml", "tocsin connect opcua"),
    SourceSpec("modbus", "poll Modbus/TCP devices",
               _C + "modbus:ModbusConfig", _C + "modbus:ModbusSource",
               "tocsin.contracts.readings:ReadingsFrame", topics.READINGS,
               DATA / "modbus.yaml", "tocsin connect modbus"),
    SourceSpec("payments-feed", "ISO 8583 TCP listener and HTTP JSON endpoint",
               _C + "payments_source:PaymentsFeedConfig",
               _C + "payments_source:PaymentsFeedSource",
               "tocsin.contracts.payments:Transaction", topics.TRANSACTIONS,
               DATA / "payments_feed.yaml", "tocsin payments ingest"),
    SourceSpec("payments-csv", "a labeled transaction CSV replayed in event time",
               _C + "payments_source:PaymentsCsvConfig",
               _C + "payments_source:PaymentsCsvSource",
               "tocsin.contracts.payments:Transaction", topics.TRANSACTIONS,
               DATA / "payments_csv.yaml", "tocsin train fraud --csv (offline)"),
    SourceSpec("dicom-receiver", "DICOM C-STORE receiver (storage SCP)",
               _C + "dicom_source:DicomReceiverConfig", _C + "dicom_source:DicomReceiverSource",
               "tocsin.contracts.imaging:StudyImage", topics.IMAGING_STUDIES,
               DATA / "dicom_receiver.yaml", "tocsin imaging receive"),
    SourceSpec("dicom-watch", "a folder of DICOM exports",
               _C + "dicom_source:DicomWatchConfig", _C + "dicom_source:DicomWatchSource",
               "tocsin.contracts.imaging:StudyImage", topics.IMAGING_STUDIES,
               DATA / "dicom_watch.yaml", "tocsin imaging watch"),
)}


def get(name: str) -> SourceSpec:
    try:
        return SOURCES[name]
    except KeyError:
        raise ConfigError(f"unknown source {name!r}; registered: {', '.join(SOURCES)}") from None


def for_topic(topic: str) -> list[SourceSpec]:
    return [s for s in SOURCES.values() if s.topic == topic]
