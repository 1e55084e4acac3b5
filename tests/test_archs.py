"""models/archs: every seed architecture builds, scripts, exports, trains and dreams."""

import math

import pytest
import torch
import torch.nn.functional as F

from genredream.engine.mel import MelConfig
from genredream.models.archs import ARCHS, RECIPES, build
from genredream.models.contract import check_meta, save, validate

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")

LABELS = ["rock", "jazz", "techno", "folk"]
ARCH_IDS = sorted(ARCHS)
MAX_FILE_BYTES = 8_000_000  # "a few MB at most"


def model_input(meta, batch, seed=0):
    """A realistic input for ``forward``: noise through the model's own front end."""
    gen = torch.Generator().manual_seed(seed)
    n = int(round(meta["sample_rate"] * meta["window_seconds"]))
    wave = torch.clamp(0.1 * torch.randn(batch, n, generator=gen), -1, 1)
    return wave


@pytest.fixture(scope="module", params=ARCH_IDS)
def built(request):
    torch.manual_seed(0)
    module, meta = ARCHS[request.param](LABELS)
    module.eval()
    return request.param, module, meta


def to_input(module, meta, wave):
    return module.frontend(wave) if meta["input"] == "mel" else wave


def test_registry_is_complete():
    # the seed systems; more (e.g. musicnn) may be registered alongside them
    assert {"geng", "zheng", "lidy1", "lidy2", "lidy3", "smith", "doyle"} <= set(ARCHS)
    assert set(RECIPES) == set(ARCHS)
    with pytest.raises(KeyError, match="known: geng"):
        build("nope", LABELS)


@pytest.mark.parametrize("arch", ARCH_IDS)
def test_recipe_fields(arch):
    r = RECIPES[arch]
    assert r["optimizer"] in ("sgd", "adam")
    assert r["lr"] > 0 and r["batch_size"] >= 1 and r["epochs"] >= 1
    assert isinstance(r["momentum"], float) and isinstance(r["nesterov"], bool)
    assert r["weight_decay"] >= 0 and r["loss"] == "cross_entropy" and r["source"]


def test_paper_recipes():
    # Spot checks against the papers (Geng Sec. 2; Lidy & Schindler Sec. 2.4; Doyle & Lopez Sec. 2.2).
    assert RECIPES["geng"]["nesterov"] and RECIPES["geng"]["epochs"] == 20
    assert (RECIPES["lidy2"]["lr"], RECIPES["lidy2"]["batch_size"], RECIPES["lidy2"]["epochs"]) == (0.02, 40, 150)
    assert (RECIPES["doyle"]["optimizer"], RECIPES["doyle"]["lr"]) == ("adam", 1e-4)


def test_metadata_is_valid_and_five_seconds(built):
    arch, module, meta = built
    check_meta(meta)
    assert meta["name"] == arch and meta["labels"] == LABELS
    assert meta["window_seconds"] == 5.0
    assert meta["layers"] == module.layer_names()
    assert len(set(meta["layers"])) == len(meta["layers"])
    if meta["input"] == "mel":
        assert MelConfig.from_dict(meta["mel"]) == module.mel_config
    else:
        assert meta["mel"] is None


def test_forward_and_feature_shapes(built):
    arch, module, meta = built
    x = to_input(module, meta, model_input(meta, 3))
    if meta["input"] == "mel":
        cfg = MelConfig.from_dict(meta["mel"])
        assert list(x.shape) == [3, cfg.n_mels, cfg.frames_for(int(meta["sample_rate"] * 5))]
    with torch.no_grad():
        out = module(x)
        feats = module.features(x)
    assert out.shape == (3, len(LABELS)) and out.dtype == torch.float32
    assert len(feats) == len(meta["layers"])
    for f in feats:
        assert f.shape[0] == 3 and torch.isfinite(f).all()


def test_geng_shapes_follow_the_paper():
    # Geng et al. 2017, Sec. 2: 1 x 40 000 input, 16 filters of 8/32/128, stride 8.
    module, meta = ARCHS["geng"](LABELS)
    assert meta["sample_rate"] == 8000 and meta["input"] == "waveform"
    feats = module.eval().features(torch.zeros(1, 40000))
    assert [tuple(f.shape) for f in feats] == [(1, 16, 5000), (1, 16, 622), (1, 16, 62)]


def test_lidy_segments_cover_the_window():
    # Lidy & Schindler 2016, Sec. 2.1: 40 bands x 80 frames per segment.
    module, meta = ARCHS["lidy2"](LABELS)
    assert (module.n_mels, module.n_frames, module.n_segments) == (40, 144, 3)
    assert (module.n_segments - 1) * module.segment_hop + module.segment_frames == module.n_frames


def test_scripted_equals_eager(built):
    arch, module, meta = built
    scripted = torch.jit.script(module)
    wave = model_input(meta, 2, seed=1)
    with torch.no_grad():
        x = to_input(module, meta, wave)
        assert torch.allclose(scripted(x), module(x), rtol=1e-5, atol=1e-6)
        for a, b in zip(scripted.features(x), module.features(x)):
            assert torch.allclose(a, b, rtol=1e-5, atol=1e-6)
        if meta["input"] == "mel":
            assert torch.equal(scripted.frontend(wave), x)
    assert scripted.layer_names() == meta["layers"]


def test_save_and_validate(built, tmp_path):
    arch, module, meta = built
    path = tmp_path / f"{arch}.pt"
    loaded = save(module, meta, path)
    assert path.is_file() and path.stat().st_size < MAX_FILE_BYTES
    assert list(tmp_path.iterdir()) == [path]  # no temporary left behind
    again = validate(path)
    assert again.labels == LABELS and again.meta == meta
    assert again.input_shape(2)[0] == 2


def test_gradient_from_logits_to_waveform(built):
    # The dreamer's path: waveform -> (frontend) -> forward, differentiated.
    arch, module, meta = built
    scripted = torch.jit.script(module)
    wave = model_input(meta, 1, seed=2).requires_grad_(True)
    x = to_input(scripted, meta, wave)
    feats = scripted.features(x)
    (scripted(x)[0, 0] + sum(f.mean() for f in feats)).backward()
    assert torch.isfinite(wave.grad).all() and wave.grad.abs().max() > 0


def test_a_few_sgd_steps_reduce_the_loss(built):
    arch, module, meta = built
    torch.manual_seed(0)
    fresh, _ = ARCHS[arch](LABELS)
    fresh.train()
    with torch.no_grad():
        x = to_input(fresh, meta, model_input(meta, 4, seed=3)).detach()
    y = torch.arange(4) % len(LABELS)
    opt = torch.optim.SGD(fresh.parameters(), lr=0.01, momentum=0.9)

    def loss():
        torch.manual_seed(42)  # the same dropout masks every time: a fixed objective
        return F.cross_entropy(fresh(x), y)

    first = loss().item()
    for _ in range(3):
        opt.zero_grad()
        loss().backward()
        opt.step()
    last = loss().item()
    assert math.isfinite(last) and last < first, f"{arch}: loss {first:.4f} -> {last:.4f}"


@pytest.mark.parametrize("labels", [["solo"], ["a", "a"], "rock", ["a", ""]])
def test_bad_labels_rejected(labels):
    with pytest.raises(ValueError, match="label"):
        ARCHS["zheng"](labels)
