"""Config files that used to load silently wrong (issue 14): each is an error naming the file,
the line and the field."""

from __future__ import annotations

import pytest

from tocsin.config.plant import load_plant
from tocsin.errors import ConfigError

GOOD = """\
plant: p
assets:
  pump-1:
    type: centrifugal-pump
    tags:
      flow: {unit: m3/h, low: 60.0}
      temp: {high: 90.0}
"""


def _load(tmp_path, text: str | bytes):
    path = tmp_path / "plant.yaml"
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return load_plant(path), str(path)


def test_the_good_file_loads(tmp_path):
    plant, _ = _load(tmp_path, GOOD)
    assert plant.limits_for("pump-1")["temp"].high == 90.0


@pytest.mark.parametrize("text, line, words", [
    (GOOD + "  pump-1:\n    tags: {}\n", 8, "duplicate key 'assets.pump-1' (first at line 3)"),
    (GOOD.replace("      temp:", "      flow: {high: 1.0}\n      temp:"), 7,
     "duplicate key 'assets.pump-1.tags.flow' (first at line 6)"),
    ("plant: a\n" + GOOD, 2, "duplicate key 'plant' (first at line 1)"),
])
def test_duplicate_keys_name_file_line_and_key(tmp_path, text, line, words):
    with pytest.raises(ConfigError) as exc:
        _load(tmp_path, text)
    assert f"plant.yaml:{line}: {words}" in str(exc.value)


@pytest.mark.parametrize("old, new, line, field", [
    ("high: 90.0", "high: .nan", 7, "assets.pump-1.tags.temp.high"),
    ("low: 60.0", "low: .inf", 6, "assets.pump-1.tags.flow.low"),
    ("high: 90.0", "high: true", 7, "assets.pump-1.tags.temp.high"),
    ("high: 90.0", "high: 90.0, deadband: .inf", 7, "assets.pump-1.tags.temp.deadband"),
    ("      temp:", "      '':", 7, "assets.pump-1.tags"),
    ("  pump-1:", "  '':", 3, "assets"),
    ("  pump-1:", "  \"pump\\x001\":", 3, "assets"),
    ("plant: p", "plant: p\nfeatures: {allowed_latenes_s: 3}", 2,
     "features.allowed_latenes_s"),
    ("type: centrifugal-pump", "type: centrifugal-pump\n    typo: 1", 5, "assets.pump-1.typo"),
])
def test_bad_values_name_file_line_and_field(tmp_path, old, new, line, field):
    with pytest.raises(ConfigError) as exc:
        _load(tmp_path, GOOD.replace(old, new))
    msg = str(exc.value)
    assert f"plant.yaml:{line}: {field}:" in msg, msg


def test_a_file_that_is_not_utf8_names_the_line(tmp_path):
    with pytest.raises(ConfigError, match=r"plant.yaml:6: not UTF-8"):
        _load(tmp_path, GOOD.replace("m3/h", "m\xb3/h").encode("latin-1"))


def test_broken_yaml_names_the_line(tmp_path):
    with pytest.raises(ConfigError, match=r"plant.yaml:8: not valid YAML: .*flow mapping "
                                          r"at line 7"):
        _load(tmp_path, GOOD.replace("{high: 90.0}", "{high: 90.0"))
