"""Keyed state of one input partition, with the set of keys changed since the last commit.

A plain ``MutableMapping[bytes, bytes]``: operators keep decoded objects in memory and write
back the keys they change. The runner drains :meth:`KeyedState.take_changes` into the
changelog inside the same transaction as the batch's outputs and input offsets, so state,
outputs and offsets move together or not at all.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping

_DELETED = None


class KeyedState(MutableMapping[bytes, bytes]):
    """State of one partition; ``logged=False`` (replay restore) keeps no change set."""

    __slots__ = ("partition", "logged", "_data", "_changed")

    def __init__(self, partition: int, logged: bool = True):
        self.partition = partition
        self.logged = logged
        self._data: dict[bytes, bytes] = {}
        self._changed: dict[bytes, bytes | None] = {}

    def __getitem__(self, key: bytes) -> bytes:
        return self._data[key]

    def __setitem__(self, key: bytes, value: bytes) -> None:
        if not isinstance(key, (bytes, bytearray)) or not isinstance(value, (bytes, bytearray)):
            raise TypeError("KeyedState keys and values are bytes")
        key, value = bytes(key), bytes(value)
        self._data[key] = value
        if self.logged:
            self._changed[key] = value

    def __delitem__(self, key: bytes) -> None:
        del self._data[key]
        if self.logged:
            self._changed[key] = _DELETED

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def get(self, key, default=None):  # type: ignore[override]  # a hot path: no ABC detour
        return self._data.get(key, default)

    @property
    def dirty(self) -> bool:
        return bool(self._changed)

    def take_changes(self) -> dict[bytes, bytes | None]:
        """The keys written (value) or deleted (None) since the last call; clears the set."""
        changed, self._changed = self._changed, {}
        return changed

    def apply_changelog(self, key: bytes, value: bytes | None) -> None:
        """Restore one changelog record (a tombstone deletes); not itself logged."""
        if value is None:
            self._data.pop(key, None)
        else:
            self._data[key] = value
