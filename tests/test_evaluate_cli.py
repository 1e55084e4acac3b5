"""`genredream evaluate MODEL DIR`: folders that are not the model's labels get a clear error
before anything is decoded, and a collection with some of the labels lists only those."""

import numpy as np
import pytest
import soundfile as sf

from genredream.engine.cli import main as cli
from tests.conftest import make_model_file

SR = 8000


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return make_model_file("geng", tmp_path_factory.mktemp("m"), ["blues", "jazz", "rock"], seed=0)


def collection(root, genres, seconds=6.0):
    rng = np.random.default_rng(0)
    for g in genres:
        (root / g).mkdir(parents=True)
        for k in range(2):
            sf.write(root / g / f"{g}{k}.wav", (0.2 * rng.standard_normal(int(seconds * SR))).astype(np.float32), SR)
    return root


def test_folders_that_are_not_labels_are_refused_with_the_labels(model, tmp_path, capfd):
    data = collection(tmp_path / "c", ["polka", "tango"])
    assert cli(["evaluate", str(model), str(data)]) == 2
    err = capfd.readouterr().err
    assert "Traceback" not in err and "TypeError" not in err, err
    assert "polka" in err and "blues, jazz, rock" in err, err


def test_only_the_labels_the_collection_has_are_listed(model, tmp_path, capfd):
    data = collection(tmp_path / "c", ["blues", "jazz"])
    assert cli(["evaluate", str(model), str(data)]) == 0
    out = capfd.readouterr().out
    assert "n/a" not in out, out
    lines = [ln.strip() for ln in out.splitlines()]
    assert any(ln.startswith("blues:") for ln in lines) and any(ln.startswith("jazz:") for ln in lines)
    assert not any(ln.startswith("rock:") for ln in lines) and "1 other labels" in out, out
