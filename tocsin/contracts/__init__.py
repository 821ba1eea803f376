"""Wire contracts: the one Python definition of every message, used by producers and consumers.

Each record has a JSON Schema under ``tocsin/contracts/schemas`` so any language can
subscribe. Encoding is orjson; every message carries ``schema`` = ``"<name>/<version>"``.
"""

from tocsin.contracts.alerts import Alert, AlertEvent, Severity
from tocsin.contracts.deadletter import DeadLetter
from tocsin.contracts.readings import Quality, ReadingsFrame

__all__ = ["Alert", "AlertEvent", "DeadLetter", "Quality", "ReadingsFrame", "Severity"]
