"""The models package's root exception."""

from tocsin.errors import TocsinError


class ModelError(TocsinError):
    """A model could not be trained, exported, loaded or run; the message says which and why."""
