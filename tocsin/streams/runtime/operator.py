"""The operator contract: one stateful stage with pure logic inside and no Kafka calls.

The runner (:mod:`tocsin.streams.runtime.runner`) owns the consumer, the transactional producer
and the state; an operator only turns records into outputs and state writes. Outputs must be a
function of the input (ids never from uuid4 or the wall clock), so a batch replayed after a
crash gives the same records and the transaction that commits them is the only copy a
read_committed consumer sees.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple, Protocol, runtime_checkable

if TYPE_CHECKING:
    from tocsin.streams.runtime.state import KeyedState


class Record(NamedTuple):
    """One input record; ``timestamp_ms`` is Kafka's timestamp (0 when unknown).

    A named tuple rather than a frozen dataclass: the runner builds one per input message,
    and a tuple is built 2-3x faster (immutable all the same)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    timestamp_ms: int = 0


@dataclass(frozen=True, slots=True)
class Restore:
    """How an operator's state comes back on assignment.

    ``changelog``: every key written goes to a compacted changelog topic inside the batch's
    transaction and is read back to its end. ``replay``: the state is a function of the last
    ``horizon_s`` of input; the runner re-feeds that much input (outputs muted), no changelog.
    """

    kind: str
    horizon_s: float = 0.0

    @classmethod
    def changelog(cls) -> "Restore":
        return cls("changelog")

    @classmethod
    def replay(cls, horizon_s: float) -> "Restore":
        if not horizon_s > 0:
            raise ValueError("replay horizon must be > 0 seconds")
        return cls("replay", float(horizon_s))


@runtime_checkable
class Emitter(Protocol):
    def send(self, topic: str, key: bytes | None, value: bytes) -> None: ...

    def dead_letter(self, record: Record, reason: str, stage: str) -> None: ...


@runtime_checkable
class Operator(Protocol):
    name: str  # stable: part of the group id and of the changelog topic name

    def inputs(self) -> list[str]: ...

    def restore_mode(self) -> Restore: ...

    def open(self, partition: int, state: "KeyedState") -> None: ...

    def close(self, partition: int) -> None: ...

    def process(self, records: Sequence[Record], out: Emitter) -> None: ...

    def tick(self, now_ns: int, out: Emitter) -> None: ...


class Stateless:
    """The no-op half of an Operator for stages that keep no state (route, re-key, filter).

    Such a stage restores nothing (a changelog that is never written is empty), keeps nothing
    per partition and has no timers: subclasses give ``name``, ``inputs`` and ``process``.
    """

    def restore_mode(self) -> Restore:
        return Restore.changelog()  # nothing is ever written, so nothing to read back

    def open(self, partition: int, state: "KeyedState") -> None:
        pass

    def close(self, partition: int) -> None:
        pass

    def tick(self, now_ns: int, out: Emitter) -> None:
        pass
