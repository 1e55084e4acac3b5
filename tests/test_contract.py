"""models/contract.py: model files are saved, found, and rejected with the right message."""

import copy
import json
import os
import struct
import zipfile

import pytest
import torch
from torch import Tensor, nn

from genredream.models.archs import ARCHS
from genredream.models.contract import (
    META_NAME,
    ModelFileError,
    check_meta,
    load,
    read_meta,
    save,
    validate,
)
from genredream.models.registry import list_models, resolve_model, user_model_dirs

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.\\w+` is deprecated:DeprecationWarning")

LABELS = ["rock", "jazz", "techno", "folk"]
SR = 800  # a toy rate: 5 s = 4000 samples keeps these tests fast


class Toy(nn.Module):
    """A minimal waveform model following the contract, with switchable faults."""

    fault: str

    def __init__(self, n_out: int = len(LABELS), fault: str = ""):
        super().__init__()
        self.lin = nn.Linear(8, n_out)
        self.fault = fault

    def _h(self, x: Tensor) -> Tensor:
        return x.reshape(x.shape[0], -1, 8).abs().mean(1)

    def forward(self, x: Tensor) -> Tensor:
        h = self._h(x)
        if self.fault == "nan_on_silence":
            h = h / h.sum(dim=1, keepdim=True)  # 0/0 on silence: a real-world bug
        y = self.lin(h)
        if self.fault == "nan":
            y = y * float("nan")
        if self.fault == "float64":
            y = y.double()
        return y

    @torch.jit.export
    def features(self, x: Tensor) -> list[Tensor]:
        if self.fault == "no_batch_features":
            return [self._h(x).sum(0)]
        return [self._h(x)]


class NoFeatures(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(8, len(LABELS))

    def forward(self, x: Tensor) -> Tensor:
        return self.lin(x.reshape(x.shape[0], -1, 8).mean(1))


def toy_meta(**over):
    meta = {
        "name": "toy",
        "version": "1.0.0",
        "labels": list(LABELS),
        "task": "genre",
        "activation": "softmax",
        "sample_rate": SR,
        "window_seconds": 5.0,
        "input": "waveform",
        "mel": None,
        "layers": ["h"],
        "genre_labels": list(LABELS),
        "licence": "MIT",
        "provenance": {"data": "random", "accuracy": None, "split": None},
    }
    meta.update(over)
    return meta


def write_raw(module, path, meta=None, raw=None):
    """torch.jit.save with any metadata (or none), bypassing save()'s checks."""
    extra = {}
    if raw is not None:
        extra[META_NAME] = raw
    elif meta is not None:
        extra[META_NAME] = json.dumps(meta)
    torch.jit.save(torch.jit.script(module), str(path), _extra_files=extra)
    return path


@pytest.fixture
def good(tmp_path):
    torch.manual_seed(0)
    module = Toy()
    save(module, toy_meta(), tmp_path / "toy.pt")
    return tmp_path / "toy.pt", module


@pytest.fixture(scope="module")
def mel_file(tmp_path_factory):
    module, meta = ARCHS["lidy1"](LABELS)
    path = tmp_path_factory.mktemp("mel") / "lidy1.pt"
    save(module, meta, path)
    return path, module, meta


def expect(path, *fragments):
    with pytest.raises(ModelFileError) as info:
        validate(path)
    msg = str(info.value)
    assert msg.startswith(str(path)), msg
    for frag in fragments:
        assert frag in msg, msg
    return msg


# ---------------------------------------------------------------------------
# acceptance and round trip


def test_accepts_a_good_file(good):
    path, module = good
    lm = validate(path)
    assert lm.labels == LABELS and lm.input == "waveform" and lm.mel_config is None
    assert lm.input_shape(3) == [3, 4000] and lm.n_samples == 4000
    assert lm.path == path and lm.name == "toy"


def test_round_trip_outputs_equal(good):
    path, module = good
    x = torch.randn(5, 4000)
    lm = load(path)
    with torch.no_grad():
        assert torch.equal(lm.module(x), module.eval()(x))
        assert torch.equal(lm.module.features(x)[0], module.features(x)[0])


def test_mel_model_round_trip(mel_file):
    path, module, meta = mel_file
    lm = validate(path)
    assert lm.meta == meta
    assert lm.mel_config == module.mel_config
    assert lm.input_shape(2) == [2, 40, 144]
    wave = 0.1 * torch.randn(2, lm.n_samples)
    with torch.no_grad():
        assert torch.equal(lm.module.frontend(wave), module.frontend(wave))
        x = module.frontend(wave)
        assert torch.equal(lm.module(x), module.eval()(x))


def test_save_restores_training_mode_and_leaves_no_temporaries(tmp_path):
    m = Toy().train()
    save(m, toy_meta(), tmp_path / "sub" / "t.pt")
    assert m.training
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["t.pt"]


def test_failed_save_writes_nothing(tmp_path):
    with pytest.raises(ModelFileError, match="wrong output shape"):
        save(Toy(n_out=3), toy_meta(), tmp_path / "bad.pt")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ModelFileError, match="invalid metadata: labels"):
        save(Toy(), toy_meta(labels="rock"), tmp_path / "bad.pt")
    with pytest.raises(ModelFileError, match="not JSON-serialisable"):
        save(Toy(), toy_meta(provenance={"accuracy": float("nan")}), tmp_path / "bad.pt")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------
# files that are not model files


def test_missing_file(tmp_path):
    expect(tmp_path / "nope.pt", "file not found")


def test_directory(tmp_path):
    expect(tmp_path, "is a directory")


def test_empty_file(tmp_path):
    p = tmp_path / "empty.pt"
    p.write_bytes(b"")
    expect(p, "truncated or corrupt")


def test_random_bytes(tmp_path):
    p = tmp_path / "noise.pt"
    p.write_bytes(os.urandom(4096).replace(b"PK", b"pk").replace(b"\x80", b"\x81"))
    expect(p, "not a TorchScript file")


def test_truncated_file(good, tmp_path):
    path, _ = good
    data = path.read_bytes()
    p = tmp_path / "half.pt"
    p.write_bytes(data[: len(data) // 2])
    expect(p, "truncated or corrupt")


def test_corrupted_bytes_fail_the_checksum(good, tmp_path):
    path, _ = good
    with zipfile.ZipFile(path) as zf:
        info = next(i for i in zf.infolist() if "/data/" in i.filename)
    data = bytearray(path.read_bytes())
    # Flip a byte inside that entry's payload. The local header's own name and
    # extra-field lengths (bytes 26-29) locate it: torch pads the local extra
    # field for alignment, so the central directory's lengths differ.
    off = info.header_offset
    n_name, n_extra = struct.unpack("<HH", data[off + 26 : off + 30])
    data[off + 30 + n_name + n_extra + 1] ^= 0xFF
    p = tmp_path / "flipped.pt"
    p.write_bytes(bytes(data))
    expect(p, "truncated or corrupt")


def test_torch_save_pickle(tmp_path):
    p = tmp_path / "state.pt"
    torch.save(Toy().state_dict(), p)
    expect(p, "not a TorchScript file", "torch.save")


def test_legacy_torch_save_pickle(tmp_path):
    p = tmp_path / "legacy.pt"
    torch.save(Toy().state_dict(), p, _use_new_zipfile_serialization=False)
    expect(p, "not a TorchScript file", "pickle")


def test_other_zip(tmp_path):
    p = tmp_path / "other.pt"
    with zipfile.ZipFile(p, "w") as zf:
        zf.writestr("readme.txt", "hello")
    expect(p, "not a TorchScript file")


def test_torchscript_without_metadata(tmp_path):
    p = write_raw(Toy(), tmp_path / "bare.pt")
    expect(p, "missing genredream.json metadata")


# ---------------------------------------------------------------------------
# metadata


def test_metadata_not_json(tmp_path):
    p = write_raw(Toy(), tmp_path / "j.pt", raw="{not json")
    expect(p, "invalid metadata: genredream.json")


def test_metadata_not_an_object(tmp_path):
    p = write_raw(Toy(), tmp_path / "j.pt", raw="[1, 2]")
    expect(p, "invalid metadata: genredream.json", "JSON object")


def without(key):
    meta = toy_meta()
    del meta[key]
    return meta


@pytest.mark.parametrize(
    "meta, field, why",
    [
        (without("labels"), "labels", "missing"),
        (without("sample_rate"), "sample_rate", "missing"),
        (toy_meta(labels="rock jazz"), "labels", "list"),
        (toy_meta(labels=[]), "labels", "at least one"),
        (toy_meta(labels=["rock", 3]), "labels", "entry 1"),
        (toy_meta(labels=["rock", "rock"]), "labels", "unique"),
        (toy_meta(sample_rate="8000"), "sample_rate", "positive integer"),
        (toy_meta(sample_rate=True), "sample_rate", "positive integer"),
        (toy_meta(window_seconds=-5), "window_seconds", "positive"),
        (toy_meta(task="mood"), "task", "one of"),
        (toy_meta(activation="relu"), "activation", "one of"),
        (toy_meta(input="image"), "input", "one of"),
        (toy_meta(input="mel"), "mel", "required"),
        (toy_meta(input="mel", mel={"sr": 800, "n_mels": "many"}), "mel", ""),
        (toy_meta(input="mel", mel={"sr": 22050}), "mel", "differs from sample_rate"),
        (toy_meta(input="mel", mel={"sr": 800, "bogus": 1}), "mel", "unknown"),
        (toy_meta(mel={"sr": 800}), "mel", "waveform"),
        (toy_meta(layers="h"), "layers", "list"),
        (toy_meta(genre_labels=["disco"]), "genre_labels", "not in labels"),
        (toy_meta(provenance="trained on my records"), "provenance", "object"),
        (toy_meta(name=""), "name", "non-empty"),
        (toy_meta(version=1), "version", "string"),
    ],
)
def test_invalid_metadata(tmp_path, meta, field, why):
    p = write_raw(Toy(), tmp_path / "m.pt", meta=meta)
    msg = expect(p, f"invalid metadata: {field}:", why)
    assert "Traceback" not in msg
    with pytest.raises(ModelFileError, match=f"invalid metadata: {field}"):
        check_meta(meta)


def test_extra_metadata_keys_are_kept(tmp_path):
    p = write_raw(Toy(), tmp_path / "x.pt", meta=toy_meta(arch="toy", colour="blue"))
    assert validate(p).meta["colour"] == "blue"


# ---------------------------------------------------------------------------
# behaviour


def test_wrong_output_shape(tmp_path):
    p = write_raw(Toy(n_out=3), tmp_path / "shape.pt", meta=toy_meta())
    expect(p, "wrong output shape [2, 3], expected [2, 4] for 4 labels")


def test_nan_output(tmp_path):
    p = write_raw(Toy(fault="nan"), tmp_path / "nan.pt", meta=toy_meta())
    expect(p, "NaN or Inf on noise")


def test_nan_only_on_silence(tmp_path):
    p = write_raw(Toy(fault="nan_on_silence"), tmp_path / "nan.pt", meta=toy_meta())
    expect(p, "NaN or Inf on silence")


def test_wrong_dtype(tmp_path):
    p = write_raw(Toy(fault="float64"), tmp_path / "f64.pt", meta=toy_meta())
    expect(p, "dtype torch.float64")


def test_missing_features_method(tmp_path):
    p = write_raw(NoFeatures(), tmp_path / "nf.pt", meta=toy_meta())
    expect(p, "missing method features()")


def test_feature_count_differs_from_layers(tmp_path):
    p = write_raw(Toy(), tmp_path / "fc.pt", meta=toy_meta(layers=["a", "b"]))
    expect(p, "features() returned 1 tensors", "['a', 'b']")


def test_features_without_batch_dim(tmp_path):
    p = write_raw(Toy(fault="no_batch_features"), tmp_path / "fb.pt", meta=toy_meta())
    expect(p, "feature 'h' has shape [8]", "batch dimension 2")


def test_forward_that_raises(tmp_path):
    # declared window (5 s at 801 Hz = 4005 samples) is not a multiple of 8: reshape fails
    p = write_raw(Toy(), tmp_path / "r.pt", meta=toy_meta(sample_rate=801))
    expect(p, "forward() failed on a [2, 4005] noise input")


def test_mel_model_without_frontend(tmp_path, mel_file):
    _, _, meta = mel_file

    class MelNoFrontend(nn.Module):
        def forward(self, x: Tensor) -> Tensor:
            return x.mean(dim=(1, 2)).unsqueeze(1).repeat(1, 4)

        @torch.jit.export
        def features(self, x: Tensor) -> list[Tensor]:
            return [x]

    p = write_raw(MelNoFrontend(), tmp_path / "nofe.pt", meta=dict(meta, layers=["x"]))
    expect(p, "missing method frontend()")


def test_mel_frontend_wrong_shape(tmp_path, mel_file):
    _, _, meta = mel_file
    wrong = dict(meta, mel=dict(meta["mel"], hop_length=512))  # file says hop 512, model computes 768
    module, _ = ARCHS["lidy1"](LABELS)
    p = write_raw(module.eval(), tmp_path / "hop.pt", meta=wrong)
    expect(p, "frontend() returned [2, 40, 144], expected mel shape [2, 40, 216]")


# ---------------------------------------------------------------------------
# finding models


def test_read_meta_is_cheap_and_checked(good):
    path, _ = good
    assert read_meta(path)["labels"] == LABELS


def test_list_models(good, tmp_path):
    path, _ = good
    (tmp_path / "junk.pt").write_bytes(b"junk")
    (tmp_path / "notes.txt").write_text("not a model")
    rows = list_models([tmp_path, tmp_path / "missing-dir"])
    by_file = {os.path.basename(r["path"]): r for r in rows}
    assert set(by_file) == {"toy.pt", "junk.pt"}
    toy = by_file["toy.pt"]
    assert toy["error"] is None and toy["name"] == "toy" and toy["labels"] == LABELS
    assert toy["input"] == "waveform" and toy["sample_rate"] == SR
    assert toy["size_bytes"] == path.stat().st_size and toy["provenance"]["data"] == "random"
    assert "not a TorchScript file" in by_file["junk.pt"]["error"]


def test_resolve_model(good, tmp_path):
    path, _ = good
    assert resolve_model(str(path)) == path
    assert resolve_model("toy", [tmp_path]) == path
    with pytest.raises(ModelFileError, match=r"unknown model 'jazzy'; known models: toy"):
        resolve_model("jazzy", [tmp_path])
    with pytest.raises(ModelFileError, match="file not found"):
        resolve_model(str(tmp_path / "gone.pt"), [tmp_path])
    with pytest.raises(ModelFileError, match="no models installed"):
        resolve_model("toy", [tmp_path / "empty"])


def test_resolve_by_file_stem_and_user_first(tmp_path):
    user, shipped = tmp_path / "user", tmp_path / "shipped"
    save(Toy(), toy_meta(name="house"), shipped / "house.pt")
    save(Toy(), toy_meta(name="house", version="2.0.0"), user / "my-house.pt")
    assert resolve_model("house", [user, shipped]) == user / "my-house.pt"
    assert resolve_model("my-house", [user, shipped]) == user / "my-house.pt"


def test_genredream_models_env(monkeypatch, tmp_path):
    monkeypatch.setenv("GENREDREAM_MODELS", os.pathsep.join([str(tmp_path / "a"), str(tmp_path / "b")]))
    assert user_model_dirs() == [tmp_path / "a", tmp_path / "b"]
    monkeypatch.delenv("GENREDREAM_MODELS")
    assert user_model_dirs()[0].parts[-2:] == (".genredream", "models")


def test_check_meta_accepts_arch_metadata():
    for build in ARCHS.values():
        _, meta = build(LABELS)
        assert check_meta(copy.deepcopy(meta)) == meta
