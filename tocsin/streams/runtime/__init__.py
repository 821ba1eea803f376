"""Tocsin's stream runtime: exactly-once operators on confluent-kafka transactions.

See docs/runtime.md and /work/notes/runtime-api.md for the contract. Import the pieces from
here: ``from tocsin.streams.runtime import Operator, Record, Restore, KeyedState, Runner``.
"""

from tocsin.streams.runtime.operator import Emitter, Operator, Record, Restore
from tocsin.streams.runtime.state import KeyedState

__all__ = ["Emitter", "KeyedState", "Operator", "Record", "Restore", "Runner", "serve"]


def __getattr__(name: str):  # the runner pulls in confluent_kafka: only when asked for
    if name == "Runner":
        from tocsin.streams.runtime.runner import Runner

        return Runner
    if name == "serve":
        from tocsin.streams.runtime.worker import serve

        return serve
    raise AttributeError(name)
