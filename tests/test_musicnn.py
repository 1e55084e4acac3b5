"""musicnn: the shipped TorchScript ports equal the original TensorFlow network.

The references in ``tests/fixtures/musicnn/*.npz`` were computed by
``scripts/convert_musicnn.py``: the musicnn package's own ``models.py`` graph,
built in TensorFlow, the checkpoint restored (failure fatal, every variable
verified) and fed float32 log-mel of the stored audio (``meta["mel_source"]``
says exactly which mel). No TensorFlow here: only numbers it produced.

Each fixture holds ``audio_int16`` (16 kHz; ``audio = int16 / 32768``),
``logmel`` ``[96, frames]`` (the exact TF input), ``patch_starts`` and, per
model, ``<m>_window_probs`` (TF on the whole logmel), ``<m>_patch<s>_probs``
(TF on ``logmel[:, s:s+187]``) and the window's ``mean_pool``, ``max_pool``
and ``penultimate`` activations. Clips: ``electronic`` (5 s, loud: mel values
far above float16's 6.55 limit), ``orchestral`` (3 s) and ``noise`` (1 s:
63 frames, a length the network never saw).

Tolerance: 1e-4 on tag probabilities (the issue's bound); the port is about
1e-6 from TF, the rest is headroom for float32 summation order.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from genredream.engine.mel import StreamingMel, logc_scale, melspectrogram
from genredream.models import contract, registry
from genredream.models.archs.musicnn import MEL, MSD_LABELS, MTT_LABELS, MUSICNN_LAYERS, Musicnn, _TemporalBlock, build

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.\\w+` is deprecated:DeprecationWarning")

FIXTURES = Path(__file__).parent / "fixtures" / "musicnn"
PRETRAINED = registry.PRETRAINED_DIR
CLIPS = ["electronic", "orchestral", "noise"]
TOL = 1e-4
PATCH = 187


def load_clip(name):
    d = np.load(FIXTURES / f"{name}.npz")
    out = {k: d[k] for k in d.files}
    out["meta"] = json.loads(str(out["meta"]))
    out["audio"] = out["audio_int16"].astype(np.float32) / 32768.0
    return out


@pytest.fixture(scope="module")
def clips():
    return {c: load_clip(c) for c in CLIPS}


@pytest.fixture(scope="module", params=["msd", "mtt"])
def model(request):
    torch.set_num_threads(2)
    lm = contract.load(PRETRAINED / f"musicnn-{request.param}.pt")
    return request.param, lm


def probs(module, x):
    """Sigmoid tag probabilities of scaled mel ``x`` [96, T] (numpy) -> [50]."""
    with torch.no_grad():
        return torch.sigmoid(module(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None]))[0].numpy()


def references(clip, short):
    """(name, frame slice, reference probabilities) for every TF reference of a clip."""
    out = [("window", slice(None), clip[f"{short}_window_probs"])]
    for s in clip["patch_starts"]:
        out.append((f"patch{s}", slice(int(s), int(s) + PATCH), clip[f"{short}_patch{s}_probs"]))
    return out


def assert_matches_tf(module, logmel, clip, short, what):
    for name, sl, ref in references(clip, short):
        dev = float(np.abs(probs(module, logmel[:, sl]) - ref).max())
        assert dev <= TOL, f"{short} {what} {name}: max |ours - TF| = {dev:.2e} > {TOL}"


# ---------------------------------------------------------------------------
# the model files


def test_fixtures_are_small_and_say_which_mel_was_fed(clips):
    total = sum((FIXTURES / f"{c}.npz").stat().st_size for c in CLIPS)
    assert total < 600_000, f"fixtures grew to {total} bytes"
    for c in clips.values():
        assert "center=True" in c["meta"]["mel_source"] and "pad_mode='constant'" in c["meta"]["mel_source"]
        assert c["logmel"].dtype == np.float32 and c["logmel"].shape[0] == 96
    assert clips["electronic"]["logmel"].shape[1] == 313  # the engine's 5 s window
    # the loud clip really exercises the float16 trap (mel > 6.55 -> inf in float16)
    assert (10 ** clips["electronic"]["logmel"].max() - 1) / 1e4 > 6.55


def test_model_files_validate_and_describe_themselves(model, clips):
    short, lm = model
    contract.validate(lm.path)
    meta = lm.meta
    assert meta["name"] == f"musicnn-{short}"
    assert meta["labels"] == (MSD_LABELS if short == "msd" else MTT_LABELS)
    assert set(meta["genre_labels"]) < set(meta["labels"])
    assert meta["task"] == "tags" and meta["activation"] == "sigmoid"
    assert meta["input"] == "mel" and meta["mel"] == MEL.to_dict()
    assert meta["sample_rate"] == 16000 and meta["window_seconds"] == 5.0
    assert meta["layers"] == MUSICNN_LAYERS
    assert lm.input_shape(1) == [1, 96, 313]
    licence = (PRETRAINED / "LICENSE-musicnn.txt").read_text()
    assert "Music Technology Group, Universitat Pompeu Fabra" in licence and "Permission to use, copy, modify" in licence
    assert licence in meta["licence"]
    prov = meta["provenance"]
    assert prov["max_abs_dev_vs_tensorflow"] <= 1e-5
    # The figure is not taken on trust: the deviation measured here, against TensorFlow's stored outputs on the
    # fixture clips, is of the size the file says: at most twice it (float32 rounding differs between CPUs;
    # measured here 4.2e-7 against 5.4e-7 for msd, 1.37e-6 against 1.31e-6 for mtt); a file claiming 0 fails.
    measured = max(float(np.abs(probs(lm.module, c["logmel"][:, sl]) - ref).max()) for c in clips.values() for _, sl, ref in references(c, short))
    assert measured <= 2 * prov["max_abs_dev_vs_tensorflow"] + 2e-7, (measured, prov["max_abs_dev_vs_tensorflow"])
    assert len(prov["checkpoint_sha256"]) == 64


# ---------------------------------------------------------------------------
# equality with TensorFlow


@pytest.mark.parametrize("clip_name", CLIPS)
def test_matches_tensorflow_on_the_stored_logmel(model, clips, clip_name):
    short, lm = model
    clip = clips[clip_name]
    assert_matches_tf(lm.module, clip["logmel"], clip, short, "stored logmel")


@pytest.mark.parametrize("clip_name", CLIPS)
def test_matches_tensorflow_from_the_engine_offline_mel(model, clips, clip_name):
    short, lm = model
    clip = clips[clip_name]
    ours = logc_scale(melspectrogram(clip["audio"], sr=16000, n_fft=512, hop_length=256, n_mels=96))
    assert ours.shape == clip["logmel"].shape
    assert np.abs(ours - clip["logmel"]).max() <= 1e-5
    assert_matches_tf(lm.module, ours, clip, short, "genredream.engine.mel.melspectrogram")


@pytest.mark.parametrize("clip_name", CLIPS)
def test_matches_tensorflow_from_the_streaming_mel(model, clips, clip_name):
    short, lm = model
    clip = clips[clip_name]
    sm = StreamingMel.from_config(MEL, keep_frames=400)
    rng = np.random.default_rng(7)
    audio, pos, frames = clip["audio"], 0, []
    while pos < audio.size:  # blocks of 1 to 3000 samples, as an audio interface might deliver
        n = int(rng.integers(1, 3000))
        frames.append(sm.push(audio[pos : pos + n]))
        pos += n
    frames.append(sm.flush())
    ours = logc_scale(np.concatenate(frames, axis=1))
    assert ours.shape == clip["logmel"].shape
    assert np.abs(ours - clip["logmel"]).max() <= 1e-5
    assert_matches_tf(lm.module, ours, clip, short, "StreamingMel")


@pytest.mark.parametrize("clip_name", CLIPS)
def test_matches_tensorflow_from_the_torch_frontend(model, clips, clip_name):
    """``frontend(wave)`` (what the dreamer differentiates through) feeds the same tags."""
    short, lm = model
    clip = clips[clip_name]
    with torch.no_grad():
        ours = lm.module.frontend(torch.from_numpy(clip["audio"])[None])[0].numpy()
    assert np.abs(ours - clip["logmel"]).max() <= 1e-4
    assert_matches_tf(lm.module, ours, clip, short, "frontend()")


def test_features_match_tensorflow(model, clips):
    short, lm = model
    for clip in clips.values():
        x = torch.from_numpy(clip["logmel"])[None]
        with torch.no_grad():
            feats = dict(zip(MUSICNN_LAYERS, lm.module.features(x)))
        T = x.shape[2]
        shapes = {"timbral": (1, 408, T), "temporal": (1, 153, T), "cnn1": (1, 64, T), "cnn2": (1, 64, T), "cnn3": (1, 64, T)}
        shapes.update(mean_pool=(1, 753), max_pool=(1, 753), penultimate=(1, 200))
        for name, shape in shapes.items():
            assert tuple(feats[name].shape) == shape, name
        for name in ("mean_pool", "max_pool", "penultimate"):
            ref = clip[f"{short}_window_{name}"]
            dev = float(np.abs(feats[name][0].numpy() - ref).max())
            assert dev <= TOL * max(1.0, float(np.abs(ref).max())), f"{short} {name}: {dev:.2e}"


def test_the_gradient_path_matches_tensorflow_too(model, clips):
    """With an input that needs a gradient the timbral convolutions take their unfolded form."""
    short, lm = model
    clip = clips["electronic"]
    for name, sl, ref in references(clip, short):
        x = torch.from_numpy(np.ascontiguousarray(clip["logmel"][:, sl]))[None].requires_grad_(True)
        p = torch.sigmoid(lm.module(x))[0].detach().numpy()
        dev = float(np.abs(p - ref).max())
        assert dev <= TOL, f"{short} {name} (autograd path): {dev:.2e}"


def test_a_batch_equals_its_items(model, clips):
    short, lm = model
    lmel = clips["electronic"]["logmel"]
    x = torch.stack([torch.from_numpy(lmel[:, s : s + PATCH]) for s in (0, 63, 126)])
    with torch.no_grad():
        together = lm.module(x)
        alone = torch.cat([lm.module(x[i : i + 1]) for i in range(3)])
    assert torch.allclose(together, alone, atol=1e-5)


# ---------------------------------------------------------------------------
# the engine's 5 s window against musicnn's 3 s training patches


def five_vs_three(module, logmel, stride=9):
    whole = probs(module, logmel)
    x = torch.from_numpy(logmel)
    starts = range(0, logmel.shape[1] - PATCH + 1, stride)
    with torch.no_grad():
        per = torch.sigmoid(module(torch.stack([x[:, s : s + PATCH] for s in starts]))).numpy()
    return whole, per


def test_five_second_window_is_close_to_the_mean_of_three_second_patches(model, clips):
    """docs/musicnn.md: feeding the 313-frame window whole is within the patches' own spread."""
    short, lm = model
    lmel = clips["electronic"]["logmel"]
    whole, per = five_vs_three(lm.module, lmel)
    mean3 = per.mean(axis=0)
    dist = float(np.abs(whole - mean3).max())
    spread = float(np.abs(per - mean3).max())
    top_w, top_m = set(np.argsort(-whole)[:5]), set(np.argsort(-mean3)[:5])
    print(f"{short}: max |p(5 s) - mean p(3 s)| = {dist:.3f}; single 3 s patch vs their mean up to {spread:.3f}")
    assert dist <= 0.1
    assert dist < spread
    assert len(top_w & top_m) >= 4


# ---------------------------------------------------------------------------
# plausibility (real music is not available here; FluidSynth renders are)


def top(module, clip, labels, k):
    p = probs(module, clip["logmel"])
    return [labels[i] for i in np.argsort(-p)[:k]], dict(zip(labels, p))


def test_orchestral_and_electronic_clips_tag_plausibly(model, clips):
    short, lm = model
    labels = lm.labels
    orch_top, orch = top(lm.module, clips["orchestral"], labels, 5)
    elec_top, elec = top(lm.module, clips["electronic"], labels, 5)
    if short == "mtt":
        assert {"classical", "strings", "violin"} <= set(orch_top), orch_top
        assert {"techno", "electronic"} <= set(elec_top[:3]), elec_top
        assert orch["classical"] > 10 * elec["classical"] and elec["techno"] > 10 * orch["techno"]
    else:
        assert elec_top[0] == "electronic" and "dance" in elec_top, elec_top
        assert "instrumental" == orch_top[0], orch_top
        assert elec["dance"] > 5 * orch["dance"]


# ---------------------------------------------------------------------------
# the architecture itself


def test_gradient_flows_from_tags_and_features_to_the_waveform(model):
    """What the dreamer needs: d(score or layer activation)/d(waveform), finite and non-zero."""
    short, lm = model
    wave = (0.1 * torch.randn(1, 80000, generator=torch.Generator().manual_seed(0))).requires_grad_(True)
    mel = lm.module.frontend(wave)
    assert mel.shape == (1, 96, 313)
    logits = lm.module(mel)
    feats = lm.module.features(mel)
    (logits[0, 0] + sum(f.mean() for f in feats)).backward()
    g = wave.grad
    assert g is not None and bool(torch.isfinite(g).all()) and float(g.abs().max()) > 0


def test_tensorflow_same_padding_for_even_kernels():
    """TF pads k-1 frames, the smaller half before: k=4 -> 1 before, 2 after."""
    blk = _TemporalBlock(1, 4).eval()
    assert (blk.pad_before, blk.pad_after) == (1, 2)
    with torch.no_grad():
        blk.conv.weight.zero_()
        blk.conv.weight[0, 0, 0, 3] = 1.0  # last tap: out[t] = x[t + 3 - pad_before] = x[t + 2]
        blk.conv.bias.zero_()
        x = torch.zeros(1, 1, 1, 10)
        x[..., 5] = 1.0
        y = blk(x)[0, 0]
    assert y.shape == (10,) and int(y.argmax()) == 3


@pytest.mark.parametrize("frames", [1, 7, 187, 313])
def test_any_number_of_frames(frames):
    net, meta = build(["a", "b", "c"])
    contract.check_meta(meta)
    net.eval()
    s = torch.jit.script(net)
    x = torch.randn(2, 96, frames)
    assert s(x).shape == (2, 3)
    assert [f.shape[-1] for f in s.features(x)][:5] == [frames] * 5
    assert isinstance(net, Musicnn) and s.layer_names() == MUSICNN_LAYERS
