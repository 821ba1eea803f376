"""A YAML reader for config files that refuses what PyYAML lets through silently.

Why: ``yaml.safe_load`` keeps the last of two equal keys (a second ``pump-1:`` block replaces
the first without a word), reads ``.nan`` and ``.inf`` as numbers, and a file that is not UTF-8
ends in a traceback. This reader walks the composed node tree itself: a duplicate key at any
depth, a bad encoding, or a YAML syntax error is a :class:`ConfigError` naming file and line;
it also returns the line of every key path, so a pydantic error can be reported as
``file:line: field: message``.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from tocsin.errors import ConfigError

Lines = dict[tuple, int]


def read_yaml(path: str | Path) -> tuple[object, Lines]:
    """-> (data, line of each key path); raise ConfigError naming file and line."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file ({exc.strerror})") from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at "
                          f"offset {exc.start}); save the file as UTF-8") from exc
    return parse_yaml(text, str(path))


def parse_yaml(text: str, where: str) -> tuple[object, Lines]:
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return {}, {}
        lines: Lines = {}
        return _build(loader, node, (), lines, where), lines
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f":{mark.line + 1}" if mark is not None else ""
        ctx = ""
        if exc.context and exc.context_mark is not None and exc.context_mark is not mark:
            ctx = f" ({exc.context} at line {exc.context_mark.line + 1})"
        raise ConfigError(f"{where}{at}: not valid YAML: {exc.problem or exc}{ctx}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML ({exc})") from exc
    finally:
        loader.dispose()


def _build(loader: yaml.SafeLoader, node: yaml.Node, path: tuple, lines: Lines, where: str):
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)  # YAML merge keys (<<) become plain pairs first
        out: dict = {}
        first: dict = {}
        for k_node, v_node in node.value:
            key = loader.construct_object(k_node, deep=True)
            line = k_node.start_mark.line + 1
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                raise ConfigError(f"{where}:{line}: {_dotted(path) or '(top level)'}: a key "
                                  f"must be a scalar, got {type(key).__name__}")
            if key in first:
                raise ConfigError(f"{where}:{line}: duplicate key "
                                  f"{_dotted(path + (key,))!r} (first at line {first[key]}); "
                                  "the later one would silently replace the earlier")
            first[key] = line
            lines[path + (key,)] = line
            out[key] = _build(loader, v_node, path + (key,), lines, where)
        return out
    if isinstance(node, yaml.SequenceNode):
        items = []
        for i, v_node in enumerate(node.value):
            lines[path + (i,)] = v_node.start_mark.line + 1
            items.append(_build(loader, v_node, path + (i,), lines, where))
        return items
    return loader.construct_object(node, deep=True)


def _dotted(path: tuple) -> str:
    return ".".join(str(p) for p in path)


def line_of(lines: Lines, loc: tuple) -> int | None:
    """The line of the longest prefix of ``loc`` that the file names."""
    loc = tuple(loc)
    while loc:
        if loc in lines:
            return lines[loc]
        loc = loc[:-1]
    return None
