"""musicnn (the real-music default) against the engine's 0.5 s hop.

Every hop the engine classifies the last 5 s (313 mel frames at 16 kHz), and
a dreamer needs a forward and a backward pass from the waveform through the
torch front end. Both are timed on the shipped TorchScript file (MTT; the MSD
model has the same shape and cost) and reported as ``ratio_of_hop``: the
median over the 0.5 s hop budget (below 1 keeps up; the engine also needs
room for the mel and other models, so well below 1 is the goal).
"""

import pytest
import torch

from genredream.models import contract, registry

HOP_S = 0.5
SR = 16000
WINDOW = 5 * SR

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.\\w+` is deprecated:DeprecationWarning")


@pytest.fixture(scope="module")
def musicnn():
    module = contract.load(registry.PRETRAINED_DIR / "musicnn-mtt.pt").module
    # A dreamer differentiates with respect to the audio only: frozen weights
    # skip the weight gradients (about 10 % of the backward pass).
    for p in module.parameters():
        p.requires_grad_(False)
    return module


@pytest.fixture(scope="module")
def wave():
    return 0.1 * torch.randn(1, WINDOW, generator=torch.Generator().manual_seed(0))


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def threads(request):
    """Intra-op threads: the machines have 2 cores, which the engine shares
    with the mel front end and other models; one thread is also the figure
    least disturbed by a busy neighbour."""
    before = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(before)


def _info(benchmark, pair, threads, **more):
    pair = f"{pair}, {threads} thread{'s' if threads > 1 else ''}"
    benchmark.extra_info.update(pair=pair, role="ours", budget_s=HOP_S, threads=threads, **more)
    stats = getattr(benchmark, "stats", None)
    if stats is not None:  # None under --benchmark-disable
        benchmark.extra_info["ratio_of_hop"] = round(stats.stats.median / HOP_S, 4)


def _warm(fn, n=3):
    # TorchScript's profiling executor specialises the graph on the first calls.
    for _ in range(n):
        fn()


def test_musicnn_inference_5s_window(benchmark, musicnn, wave, threads):
    """Tags of one 5 s window from its scaled mel ([1, 96, 313]), no autograd."""
    with torch.no_grad():
        mel = musicnn.frontend(wave)
    assert mel.shape == (1, 96, 313)

    def run():
        with torch.no_grad():
            return musicnn(mel)

    _warm(run)
    out = benchmark(run)
    assert out.shape == (1, 50)
    _info(benchmark, "musicnn: one 5 s window, mel -> 50 tags (inference)", threads)


def test_musicnn_frontend_and_inference_5s_window(benchmark, musicnn, wave, threads):
    """The same from the waveform, through the torch mel front end."""

    def run():
        with torch.no_grad():
            return musicnn(musicnn.frontend(wave))

    _warm(run)
    out = benchmark(run)
    assert out.shape == (1, 50)
    _info(benchmark, "musicnn: one 5 s window, waveform -> torch mel -> 50 tags (inference)", threads)


def test_musicnn_forward_backward_5s_window(benchmark, musicnn, wave, threads):
    """One dreaming step's cost: waveform -> mel -> features + logits, backward to the waveform."""

    def run():
        w = wave.clone().requires_grad_(True)
        mel = musicnn.frontend(w)
        feats = musicnn.features(mel)
        loss = feats[4].pow(2).mean()  # e.g. ascend the last mid-end layer ("cnn3")
        loss.backward()
        return w.grad

    _warm(run)
    g = benchmark(run)
    assert g is not None and g.shape == wave.shape and bool(torch.isfinite(g).all())
    _info(benchmark, "musicnn: one 5 s window, forward + backward waveform -> cnn3 (dreaming step)", threads)


@pytest.fixture(scope="module")
def mel_stream(musicnn):
    """Mel frames of 40 s of music-like audio, scaled as the engine feeds them."""
    from genredream.engine.demo import test_signal

    y = torch.from_numpy(test_signal(40.0, SR, 3).mean(axis=1).astype("float32"))[None]
    with torch.no_grad():
        return musicnn.frontend(y)[0].numpy()


def _time_each_hop(benchmark, call, windows, warm=6):
    """Time ``call(window, end)`` once per successive hop after ``warm`` warm-up hops, denormals
    flushed as the engine does; returns the last output."""
    it = iter(windows)

    def run():
        return call(*next(it))

    torch.set_flush_denormal(True)
    try:
        _warm(run, warm)
        return benchmark.pedantic(run, rounds=len(windows) - warm, iterations=1)
    finally:
        torch.set_flush_denormal(False)


def _hops(mel, start=313):
    """(window, end) of successive 0.5 s hops: 31 or 32 frames each, as at 16 kHz / hop 256."""
    end, k = start, 0
    while end <= mel.shape[1]:
        yield mel[:, end - 313 : end].copy(), end
        k += 1
        end = 313 + (k * 8000) // 256


@pytest.mark.parametrize("role", ["ours", "reference"])
def test_musicnn_per_hop_incremental_vs_whole_window(benchmark, musicnn, mel_stream, threads, role):
    """The engine's cost per hop: only what changed (models/incremental/runner.py) against the
    whole 5 s window, on the same successive windows, denormals flushed as the engine does."""
    from genredream.models.incremental import FrameBranchRunner

    runner = FrameBranchRunner(musicnn)

    def call(x, end):
        with torch.no_grad():
            return runner(x, end) if role == "ours" else musicnn(torch.from_numpy(x)[None])

    out = _time_each_hop(benchmark, call, list(_hops(mel_stream)))
    assert out.shape == (1, 50)
    pair = "musicnn per 0.5 s hop: incremental window (ours) vs whole window (reference)"
    _info(benchmark, pair, threads)
    benchmark.extra_info["role"] = role
    if role == "ours":
        assert runner.stats["reused_windows"] >= runner.stats["windows"] - 2


@pytest.fixture(scope="module")
def musicnn_conv1d_mid(musicnn):
    """The same network compiled with its first mid-end convolution left as conv1d (the reference)."""
    from genredream.models.archs.musicnn import Musicnn

    net = Musicnn()  # the MTT tags, as the file benchmarked here
    net.load_state_dict(musicnn.state_dict())
    net.eval().mid[0].shifted_min_channels = 1 << 30
    return torch.jit.script(net)


@pytest.mark.parametrize("frames", [182, 313], ids=["182frames", "313frames"])
@pytest.mark.parametrize("role", ["ours", "reference"])
def test_musicnn_mid_end_first_convolution(benchmark, musicnn, musicnn_conv1d_mid, threads, role, frames):
    """The mid end's 561-channel convolution as the engine runs it (compiled, ``stream_mid``
    with the stacked taps handed in), against the same compiled code with conv1d. 182 frames
    is what a hop recomputes; 313, a whole window."""
    m = musicnn if role == "ours" else musicnn_conv1d_mid
    constants = m.stream_mid_constants(0)
    assert len(constants) == (1 if role == "ours" else 0)
    x = torch.randn(1, 561, frames, generator=torch.Generator().manual_seed(1))

    def run():
        with torch.no_grad():
            return m.stream_mid(0, x, 3, 3, constants)

    _warm(run)
    out = benchmark(run)
    with torch.no_grad():
        reference = musicnn_conv1d_mid.stream_mid(0, x, 3, 3, [])
    assert float((out - reference).abs().max()) <= 1e-5 * (1 + float(reference.abs().max()))
    _info(
        benchmark,
        f"musicnn mid end, 561 -> 64 channels x 7 frames, {frames} frames, compiled: stacked-tap product (ours) vs conv1d (reference)",
        threads,
    )
    benchmark.extra_info["role"] = role
