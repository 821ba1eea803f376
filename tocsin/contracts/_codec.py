"""Shared helpers for decoding versioned JSON messages with errors that name the field."""

from __future__ import annotations

from importlib import resources
from typing import Any

import orjson

from tocsin.errors import SchemaError


def loads(data: bytes | str, name: str) -> dict:
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise SchemaError(f"{name}: not valid JSON ({exc})") from exc
    if not isinstance(obj, dict):
        raise SchemaError(f"{name}: expected a JSON object, got {type(obj).__name__}")
    return obj


def check_schema(obj: dict, name: str, version: int) -> int:
    """Accept `name/N` for N <= version; refuse newer versions and other message kinds."""
    tag = obj.get("schema")
    if not isinstance(tag, str) or "/" not in tag:
        raise SchemaError(f"{name}: field 'schema' must be '{name}/<version>', got {tag!r}")
    got_name, _, got_ver = tag.partition("/")
    if got_name != name:
        raise SchemaError(f"{name}: field 'schema' names another message kind: {tag!r}")
    try:
        ver = int(got_ver)
    except ValueError as exc:
        raise SchemaError(f"{name}: field 'schema' has a bad version: {tag!r}") from exc
    if ver > version:
        raise SchemaError(f"{name}: schema version {ver} is newer than this code supports "
                          f"({version}); upgrade Tocsin")
    return ver


def field(obj: dict, key: str, typ: type | tuple[type, ...], name: str) -> Any:
    if key not in obj:
        raise SchemaError(f"{name}: missing field '{key}'")
    val = obj[key]
    if not isinstance(val, typ) or (typ is int and isinstance(val, bool)):
        want = typ.__name__ if isinstance(typ, type) else "/".join(t.__name__ for t in typ)
        raise SchemaError(f"{name}: field '{key}' must be {want}, got {type(val).__name__}")
    return val


def json_schema(filename: str) -> dict:
    """The JSON Schema document shipped for a message kind."""
    text = resources.files("tocsin.contracts").joinpath("schemas", filename).read_text()
    return orjson.loads(text)
