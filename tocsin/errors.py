"""The root exception of Tocsin; every package raises a subclass of it."""


class TocsinError(Exception):
    """Base class for every error Tocsin raises on purpose."""


class ConfigError(TocsinError):
    """A configuration file or setting is invalid; the message names the field."""


class SchemaError(TocsinError):
    """A wire message does not match its schema; the message names the field."""


class ServiceError(TocsinError):
    """A local service (Kafka, influxd) could not be provisioned, started or reached."""


class ConnectorError(TocsinError):
    """A connector could not reach or read its device; the message names the device."""


class ModelError(TocsinError):
    """A model could not be trained, exported, loaded or run; the message says which and why."""


class DataError(TocsinError):
    """An input file or recording (CSV, recording, DICOM, data set) cannot be used as given;
    the message names the file and the row, column or field."""


class ActionError(TocsinError):
    """An operator's request (ack, shelve, a fraud verdict) that the current state refuses;
    the message says why."""
