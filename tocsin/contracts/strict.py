"""Strict checks for wire fields: identifiers and numbers, with the field named.

Why: JSON's ``true`` is an int to Python and numpy (``np.asarray([True, 1.5])`` is a float
array), a float ``seq`` of 1e30 used to become 0 silently, and an id with a NUL or a
right-to-left override reads differently in a log than in a query. Every decoder refuses these
with a :class:`SchemaError` that names the field, instead of passing them on.
"""

from __future__ import annotations

import math
import re

from tocsin.errors import SchemaError

ID_MAX_LEN = 256
# C0/C1 controls, zero-width and bidirectional formatting characters, BOM
_BAD_CHARS = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]")
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def check_id(value: object, key: str, name: str, *, max_len: int = ID_MAX_LEN,
             where: str = "") -> str:
    """A non-empty printable string of at most ``max_len`` characters."""
    if type(value) is not str:
        raise SchemaError(f"{name}: field '{key}' must be a string, got "
                          f"{type(value).__name__}{where}")
    if not value:
        raise SchemaError(f"{name}: field '{key}' must not be empty{where}")
    if len(value) > max_len:
        raise SchemaError(f"{name}: field '{key}' is {len(value)} characters long; at most "
                          f"{max_len}{where}")
    m = _BAD_CHARS.search(value)
    if m:
        raise SchemaError(f"{name}: field '{key}' holds the control or formatting character "
                          f"U+{ord(m.group()):04X} at position {m.start()}{where}")
    return value


def check_ids(values: list, key: str, name: str, *, max_len: int = ID_MAX_LEN,
              where: str = "") -> list[str]:
    """Every item an id (see :func:`check_id`); one regex pass over the joined strings."""
    if not set(map(type, values)) <= {str} or not all(values) \
            or max(map(len, values), default=0) > max_len \
            or _BAD_CHARS.search("".join(values)):
        for i, v in enumerate(values):
            check_id(v, f"{key}[{i}]", name, max_len=max_len, where=where)
    return values


_SEEN_IDS: dict[tuple[str, ...], None] = {}  # id lists that passed check_ids (bounded)
_SEEN_LIST_MAX = 512  # longer lists are checked every time
_SEEN_ITEMS_MAX = 65536  # ids held in all (at most 16 MiB of strings at ID_MAX_LEN)
_seen_items = 0


def check_ids_seen(values: list[str], key: str, name: str, *, where: str = "") -> list[str]:
    """:func:`check_ids` (default ``max_len``) for a list of str that repeats from message
    to message (a frame's tag list, a feature row's tags and names): a list that passed
    before passes again after one tuple lookup. Only for msgspec-typed ``list[str]`` fields
    (every item a str, so the tuple hashes). Ids from the wire must not grow it without
    bound: lists longer than ``_SEEN_LIST_MAX`` are not kept, and the cache is cleared once
    it holds ``_SEEN_ITEMS_MAX`` ids. Runner threads share it: each dict operation is atomic
    under the GIL, and a race can only miscount the bound by one list."""
    global _seen_items
    if len(values) > _SEEN_LIST_MAX:
        return check_ids(values, key, name, where=where)
    t = tuple(values)
    if t in _SEEN_IDS:
        return values
    check_ids(values, key, name, where=where)
    if _seen_items + len(t) > _SEEN_ITEMS_MAX:
        _SEEN_IDS.clear()
        _seen_items = 0
    _SEEN_IDS[t] = None
    _seen_items += len(t)
    return values


def check_text(value: object, key: str, name: str, *, max_len: int = 1024,
               where: str = "") -> str:
    """An optional free-text string (may be empty): no control characters, bounded."""
    if type(value) is not str:
        raise SchemaError(f"{name}: field '{key}' must be a string, got "
                          f"{type(value).__name__}{where}")
    if value:
        check_id(value, key, name, max_len=max_len, where=where)
    return value


def check_int(value: object, key: str, name: str, *, lo: int = INT64_MIN, hi: int = INT64_MAX,
              where: str = "") -> int:
    """An integer (not a bool, not a float such as 1e30) within [lo, hi]."""
    if type(value) is not int:
        raise SchemaError(f"{name}: field '{key}' must be an integer, got "
                          f"{type(value).__name__} {value!r:.40}{where}")
    if not lo <= value <= hi:
        raise SchemaError(f"{name}: field '{key}' must be in [{lo}, {hi}], got {value}{where}")
    return value


def check_number(value: object, key: str, name: str, *, where: str = "") -> float:
    """A finite int or float; booleans, NaN and infinities are refused."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise SchemaError(f"{name}: field '{key}' must be a number, got "
                          f"{type(value).__name__}{where}")
    f = float(value) if isinstance(value, float) or abs(value) < 2**1000 else math.inf
    if not math.isfinite(f):
        raise SchemaError(f"{name}: field '{key}' must be finite, got {value!r:.40}{where}")
    return f
