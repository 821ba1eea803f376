"""Load YAML config files into pydantic models once, at start-up, with errors that name the
file, the line and the exact field (asset, tag, device) at fault.

The YAML is read by :mod:`tocsin.config.strict_yaml`: duplicate keys, bad encodings and syntax
errors are refused there with file and line; pydantic's errors are then reported as
``file:line: field.path: message`` using the line of each key.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from tocsin.config.strict_yaml import Lines, line_of, read_yaml
from tocsin.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


def load_model(path: str | Path, model: type[M]) -> M:
    path = Path(path)
    raw, lines = read_yaml(path)
    return parse_model(raw if raw is not None else {}, model, str(path), lines)


def parse_model(raw: object, model: type[M], where: str, lines: Lines | None = None) -> M:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        out = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            line = line_of(lines, loc) if lines else None
            msg = err["msg"]
            if len(loc) >= 2 and loc[-1] == "[key]":  # a dict key: name the key, not "[key]"
                msg = f"key {loc[-2]!r}: {msg}"
                loc = loc[:-2]
            dotted = ".".join(str(p) for p in loc) or "(top level)"
            out.append(f"  {where}:{line}: {dotted}: {msg}" if line else f"  {dotted}: {msg}")
        raise ConfigError(f"{where}: invalid {model.__name__}:\n" + "\n".join(out)) from exc
