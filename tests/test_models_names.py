"""`genredream models` on an 80-column terminal shows every model's whole name: it is what users type."""

import pytest

from genredream.engine.cli import main as cli


@pytest.fixture
def long_named_model(tmp_path, monkeypatch):
    from genredream.models.archs import build
    from genredream.models.contract import save

    m, meta = build("geng", ["hiphop", "jazz"])
    meta["name"] = "mine-hiphop-from-musicnn-msd-v2"
    save(m.eval(), meta, tmp_path / "mine.pt")
    monkeypatch.setenv("GENREDREAM_MODELS", str(tmp_path))
    return meta["name"]


@pytest.mark.parametrize("columns", [80, 100])
def test_every_name_is_whole_at_80_columns(long_named_model, monkeypatch, capfd, columns):
    from genredream.models.registry import list_models

    monkeypatch.setenv("COLUMNS", str(columns))
    assert cli(["models"]) == 0
    out = capfd.readouterr().out
    assert max(len(ln) for ln in out.splitlines()) <= columns
    cells = {c.strip() for ln in out.splitlines() for c in ln.split("│")}
    names = [m["name"] for m in list_models()]
    assert long_named_model in names
    for n in names:
        assert n in cells or f"{n} (default)" in cells, (n, out)
