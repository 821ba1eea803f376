"""Config is validated once, with errors that name the file, asset, tag or node."""

from __future__ import annotations

import pytest

from tocsin.config.plant import PlantConfig, load_plant
from tocsin.config.yamlfile import load_model
from tocsin.connectors.opcua import OpcUaConfig, load_opcua_config
from tocsin.errors import ConfigError


def test_default_plant_loads():
    plant = load_plant()
    assert plant.limits_for("pump-1")["bearing_temp"].high == 90.0
    assert plant.limits_for("nope") is None


def test_plant_error_names_asset_and_tag(tmp_path):
    p = tmp_path / "plant.yaml"
    p.write_text("assets:\n  pump-7:\n    tags:\n      flow: {low: 80, high: 20}\n"
                 "      temp: {hihg: 3}\n")
    with pytest.raises(ConfigError) as exc:
        load_model(p, PlantConfig)
    msg = str(exc.value)
    assert str(p) in msg
    assert "assets.pump-7.tags.flow" in msg and "low (80.0) must be below high (20.0)" in msg
    assert "assets.pump-7.tags.temp.hihg" in msg


def test_missing_and_broken_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_plant(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("assets: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_plant(bad)


def test_opcua_bad_node_id_names_asset_and_tag(tmp_path):
    p = tmp_path / "opcua.yaml"
    p.write_text("endpoint: opc.tcp://127.0.0.1:4840/\nassets:\n  pump-1:\n"
                 "    flow: 'ns=2;s=pump-1.flow'\n    temp: 'this is not a node'\n")
    with pytest.raises(ConfigError) as exc:
        load_opcua_config(p)
    assert "pump-1" in str(exc.value) and "temp" in str(exc.value)
    q = tmp_path / "o2.yaml"
    q.write_text("endpoint: http://x\nassets: {}\n")
    with pytest.raises(ConfigError, match="endpoint"):
        load_model(q, OpcUaConfig)
