"""`genredream models` says what each accuracy was measured on, the dreamable layers and the default (issue 16, item 13)."""

import json

import pytest

from genredream.engine.cli import main as cli


@pytest.fixture(autouse=True)
def wide_console(monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")


def test_models_json_names_the_data_layers_and_default(capfd):
    assert cli(["models", "--json"]) == 0
    # The TorchScript files (the generated .pt2 twins have the same names; tests/test_pt2.py lists them).
    models = {m["name"]: m for m in json.loads(capfd.readouterr().out) if m["format"] == "torchscript"}
    seeds = [n for n in ("geng", "zheng", "lidy1", "lidy2", "lidy3", "smith", "doyle") if n in models]
    assert len(seeds) == 7
    for n in seeds:
        assert "synthetic" in models[n]["accuracy_measured_on"] and "not real recordings" in models[n]["accuracy_measured_on"]
        assert models[n]["layers"], n
    assert "Million Song Dataset" in models["musicnn-msd"]["accuracy_measured_on"]
    assert [n for n, m in models.items() if m["default"]] == ["musicnn-msd"]
    assert models["musicnn-msd"]["layers"][:2] == ["timbral", "temporal"]


def test_models_table_shows_them(capfd):
    assert cli(["models"]) == 0
    out = capfd.readouterr().out
    assert "musicnn-msd (default)" in out
    assert "not real recordings" in out and "dreamable layers" in out
    assert "conv1, conv2, conv3; or all" in out  # geng's layers
