"""Dream defaults follow what a model is, not what its file is called (issue 15; issue 18 found the gap).

A head trained with ``genredream train --arch musicnn-head`` runs musicnn's
whole body, so it must dream as musicnn does: musicnn's measured steps per
hop and dream window live, musicnn's 3 s crops offline. And a model that is
not musicnn gets none of that, whatever it is named. Real model files: the
shipped musicnn-msd body under a (untrained) head, saved and loaded through
the contract; a seed network saved under a musicnn name.
"""

from __future__ import annotations

import pytest
import torch

from genredream.engine.dream import Dreamer
from genredream.engine.dream.defaults import STREAM_DEFAULTS, architecture, stream_defaults
from genredream.engine.dream.objective import load_dream_model
from genredream.engine.dream.transfer import Ensemble
from genredream.engine.runtime import Engine
from genredream.models import contract
from tests.conftest import make_model_file

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.\\w+` is deprecated:DeprecationWarning")


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    """A musicnn head file named like a user's own model, on the shipped MSD body."""
    from genredream.models.archs.musicnn_head import MusicnnHead, make_head_meta

    body = contract.load(contract.PRETRAINED_DIR / "musicnn-msd.pt").module
    torch.manual_seed(0)
    net = MusicnnHead(["rock", "jazz", "salsa"], "pooled", 0)
    net.load_body(body.state_dict())
    meta = make_head_meta(net, "musicnn-msd", "ISC")
    meta["name"] = "my-genres"
    path = tmp_path_factory.mktemp("head") / "my-genres.pt"
    contract.save(net, meta, path)
    return load_dream_model(path)


@pytest.fixture(scope="module")
def impostor(tmp_path_factory):
    """A geng network whose file and metadata say "musicnn-msd"."""
    d = tmp_path_factory.mktemp("impostor")
    path = make_model_file("geng", d, ("rock", "jazz", "pop"))
    lm = contract.load(path)
    meta = dict(lm.meta, name="musicnn-msd")
    out = d / "musicnn-msd.pt"
    contract.save(lm.module, meta, out)
    return load_dream_model(out)


def test_architecture_comes_from_the_model_file():
    for name in ("musicnn-msd", "musicnn-mtt"):  # shipped conversions: no arch key, known by their provenance
        assert architecture(contract.read_meta(contract.resolve_model(name))) == "musicnn"
    for name in ("geng", "zheng", "doyle"):
        assert architecture(contract.read_meta(contract.resolve_model(name))) == name
    assert architecture({"name": "musicnn-msd", "arch": "zheng"}) == "zheng"
    assert architecture({"name": "x"}) is None


def test_a_musicnn_head_dreams_with_musicnns_defaults_live_and_offline(head):
    assert architecture(head) == "musicnn" and stream_defaults(head) == STREAM_DEFAULTS["musicnn"]
    e = Engine(22050)
    dr = Dreamer(head, target="rock")
    e.set_transform(dr)
    st = dr.status()
    assert (st["steps_source"], st["params"]["steps"]) == ("table", STREAM_DEFAULTS["musicnn"]["steps"])
    assert st["dream_window_s"] == pytest.approx(STREAM_DEFAULTS["musicnn"]["window"])
    e.set_transform(None)
    # Offline, the ensemble scores musicnn's own 3 s patches, not 5 s windows.
    assert Ensemble([head], "rock").crop == 3 * head.sample_rate


def test_a_model_named_like_musicnn_gets_its_own_architectures_defaults(impostor):
    assert impostor.name == "musicnn-msd" and architecture(impostor) == "geng"
    e = Engine(8000)
    dr = Dreamer(impostor, target="rock")
    e.set_transform(dr)  # musicnn's 2 s window would be refused: geng takes only its own 5 s
    st = dr.status()
    assert (st["steps_source"], st["params"]["steps"]) == ("table", STREAM_DEFAULTS["geng"]["steps"])
    assert st["dream_window_s"] == pytest.approx(5.0)
    e.set_transform(None)
    assert Ensemble([impostor], "rock").crop == impostor.n_samples
