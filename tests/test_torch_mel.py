"""models/torch_mel.py (TorchMel) against engine/mel.py, the engine's own front end.

Tolerances. In the power domain the contract is librosa's:
``max|a - b| <= 1e-4 * max|b| + 1e-7``. After a log scaling the comparison is
in the scaled domain with an absolute tolerance: both sides compute the mel
in float64 and round it to float32 at different points (the engine rounds the
power then takes a float32 log; TorchMel takes the log in float64 then
rounds), so the difference is a few float32 ulps of the scaled value: about
1e-5 dB on values of +-100 dB, 1e-6 on log10 values. The tolerances (1e-3 dB,
1e-4 for log10 / logC) are one to two orders above that, and far below
anything a model could notice (1e-3 dB is a gain of 1.0002).
"""

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from genredream.engine.mel import MelConfig, apply_scaling
from genredream.models.archs import ARCHS
from genredream.models.torch_mel import TorchMel

ARCH_CONFIGS = {}
for _arch, _build in ARCHS.items():
    _, _meta = _build(["a", "b"])
    if _meta["input"] == "mel":
        ARCH_CONFIGS[_arch] = MelConfig.from_dict(_meta["mel"])

EXTRA_CONFIGS = {
    "librosa-default": MelConfig(),
    "musicnn-logC": MelConfig(sr=16000, n_fft=512, hop_length=256, n_mels=96, scaling="logC"),
    "lidy-44k": MelConfig(sr=44100, n_fft=3072, hop_length=1536, n_mels=40, scaling="log10"),
    "htk-nonorm-db": MelConfig(sr=22050, htk=True, norm=None, scaling="db"),
    "magnitude-band": MelConfig(sr=22050, power=1.0, fmin=50.0, fmax=8000.0),
    "odd-nfft": MelConfig(sr=8000, n_fft=1023, hop_length=300, n_mels=64, scaling="log10"),
}

CONFIGS = {**ARCH_CONFIGS, **EXTRA_CONFIGS}

# TorchScript is the model-file format (models/contract.py); torch 2.13 flags it deprecated.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")

SCALED_ATOL = {"db": 1e-3, "log10": 1e-4, "logC": 1e-4}


def engine_mel(cfg, y):
    return apply_scaling(cfg.melspectrogram(y), cfg.scaling)


def assert_close(ours, ref, scaling):
    assert ours.dtype == np.float32 and ours.shape == ref.shape
    err = np.abs(ours.astype(np.float64) - ref.astype(np.float64)).max()
    if scaling == "power":
        tol = 1e-4 * np.abs(ref).max() + 1e-7
    else:
        tol = SCALED_ATOL[scaling]
    assert err <= tol, f"max |torch - engine| = {err:.3g} > {tol:.3g} ({scaling})"


def make_signal(sr, seconds=1.5, seed=0):
    """Chord + noise with a silent gap: exercises loud bins, quiet bins and the floors."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    y = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.2 * np.sin(2 * np.pi * 1234.5 * t) + 0.02 * rng.standard_normal(n)
    y[n // 3 : n // 2] = 0.0
    return y.astype(np.float32)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_matches_engine(name):
    cfg = CONFIGS[name]
    y = make_signal(cfg.sr)
    fe = TorchMel(cfg)
    ours = fe(torch.from_numpy(y)[None]).numpy()[0]
    assert_close(ours, engine_mel(cfg, y), cfg.scaling)
    # and in the power domain, whatever the scaling
    pcfg = MelConfig(**{**cfg.to_dict(), "scaling": "power"})
    assert_close(TorchMel(pcfg)(torch.from_numpy(y)[None]).numpy()[0], pcfg.melspectrogram(y), "power")


@pytest.mark.parametrize("name", sorted(ARCH_CONFIGS))
def test_arch_configs_on_a_full_window(name):
    # The exact shape a model sees: 5 s at the config's rate.
    cfg = ARCH_CONFIGS[name]
    y = make_signal(cfg.sr, seconds=5.0, seed=1)
    ours = torch.jit.script(TorchMel(cfg))(torch.from_numpy(y)[None]).numpy()[0]
    ref = engine_mel(cfg, y)
    assert ours.shape == (cfg.n_mels, cfg.frames_for(y.size))
    assert_close(ours, ref, cfg.scaling)


def test_batch_items_are_independent():
    # db's top_db clipping is relative to each window's own peak, as power_to_db
    # applied by the engine to one window at a time.
    cfg = MelConfig(sr=16000, n_fft=512, hop_length=256, n_mels=40, scaling="db")
    ys = [make_signal(cfg.sr, 0.8, seed=s) * g for s, g in ((0, 1.0), (1, 1e-3), (2, 0.0))]
    ours = TorchMel(cfg)(torch.from_numpy(np.stack(ys))).numpy()
    for i, y in enumerate(ys):
        assert_close(ours[i], engine_mel(cfg, y), "db")


def test_scripted_equals_eager_and_float32():
    cfg = EXTRA_CONFIGS["htk-nonorm-db"]
    fe = TorchMel(cfg)
    sc = torch.jit.script(fe)
    x = torch.from_numpy(np.stack([make_signal(cfg.sr, 0.5), make_signal(cfg.sr, 0.5, seed=3)]))
    a, b = fe(x), sc(x)
    assert a.dtype == torch.float32 and b.dtype == torch.float32
    assert torch.equal(a, b)


@pytest.mark.parametrize("name", ["librosa-default", "magnitude-band", "musicnn-logC", "lidy1", "zheng"])
def test_gradient_reaches_the_waveform(name):
    cfg = CONFIGS[name]
    fe = torch.jit.script(TorchMel(cfg))
    y = torch.from_numpy(make_signal(cfg.sr, 0.5))[None].clone().requires_grad_(True)
    fe(y).sum().backward()
    g = y.grad
    assert g is not None and torch.isfinite(g).all()
    assert g.abs().max() > 0


@pytest.mark.parametrize("name", ["magnitude-band", "htk-nonorm-db", "odd-nfft"])
def test_gradient_finite_on_silence(name):
    # |X|**1 has an infinite derivative at 0; the front end floors it so a
    # dreamer starting from silence gets a finite gradient.
    cfg = CONFIGS[name]
    y = torch.zeros(1, cfg.sr // 2, requires_grad=True)
    TorchMel(cfg)(y).sum().backward()
    assert torch.isfinite(y.grad).all()


def test_rejects_non_config():
    with pytest.raises(TypeError, match="MelConfig"):
        TorchMel({"sr": 22050})


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(1, 5000),
    n_fft=st.sampled_from([256, 400, 511, 512]),
    hop_div=st.sampled_from([1, 2, 4]),
    scaling=st.sampled_from(["power", "db", "log10", "logC"]),
    seed=st.integers(0, 2**16),
)
def test_any_length_matches_engine(n, n_fft, hop_div, scaling, seed):
    cfg = MelConfig(sr=16000, n_fft=n_fft, hop_length=n_fft // hop_div, n_mels=32, scaling=scaling)
    y = (0.5 * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)
    ours = TorchMel(cfg)(torch.from_numpy(y)[None]).numpy()[0]
    assert_close(ours, engine_mel(cfg, y), scaling)
