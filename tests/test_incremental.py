"""models/incremental/runner.py: a window computed from the previous one scores as the
network does on the whole window, and musicnn's fast inference paths equal its
convolutions."""

import shutil
from typing import List

import numpy as np
import pytest
import torch

from genredream.models.incremental import FrameBranchRunner, streamed_forward, supports_streaming
from genredream.engine.runtime import Engine
from genredream.models.archs.musicnn import Musicnn, build
from genredream.models.contract import ModelFileError, save
from genredream.models.registry import resolve_model
from tests.conftest import require_component

SR = 22050


@pytest.fixture(scope="module")
def song(tmp_path_factory):
    """14 s of synthetic rock rendered by FluidSynth (what a performer's DAW might send)."""
    from genredream.models.corpus.compose import compose_song
    from genredream.models.corpus.render import find_soundfont, render_midi

    require_component("fluidsynth", shutil.which("fluidsynth") is not None, "apt-get install fluidsynth fluid-soundfont-gm")
    d = tmp_path_factory.mktemp("song")
    midi = d / "rock.mid"
    compose_song("rock", 7, 0, 14).midi.save(midi)
    return render_midi(midi, 14, find_soundfont(), sample_rate=SR)


def _scores(y, hops, incremental, seed=0):
    """Run ``y`` through an engine with musicnn-msd; ``hops`` is [(hop, seconds of input)...]."""
    e = Engine(SR, hop=hops[0][0])
    name = e.load_model("musicnn-msd")
    runner = e.models[name].runner
    assert runner is not None, "musicnn-msd should run incrementally"
    if not incremental:
        e.models[name].runner = None
    got = []
    e.sinks.append(got.append)
    rng = np.random.default_rng(seed)
    pos = 0
    for hop, seconds in hops:
        if hop != e.hop:
            e.set_hop(hop)
        stop = min(y.size, pos + int(seconds * SR))
        blocks = []
        while pos < stop:  # uneven blocks, as a device or OSC delivers them
            n = int(rng.integers(64, 3000))
            blocks.append(y[pos : min(stop, pos + n)])
            pos += n
        e.run_blocks(blocks)
    return got, runner


@pytest.mark.parametrize(
    "hops",
    [[(0.5, 14)], [(0.37, 7), (0.5, 7)]],
    ids=["hop0.5", "hop0.37-then-0.5"],
)
def test_incremental_engine_scores_equal_whole_window_scores(song, hops):
    inc, runner = _scores(song, hops, incremental=True)
    ref, _ = _scores(song, hops, incremental=False)
    assert len(inc) == len(ref) >= 27
    assert [(r.seq, r.end_index) for r in inc] == [(r.seq, r.end_index) for r in ref]
    dev = max(float(np.max(np.abs(np.subtract(a.scores, b.scores)))) for a, b in zip(inc, ref))
    assert dev <= 1e-5, f"incremental scores differ from whole-window scores by {dev:.3g}"
    # ...and the cache did its work: every window after the first reused the last.
    assert runner.stats["windows"] == len(inc)
    assert runner.stats["reused_windows"] == len(inc) - 1
    assert runner.stats["frames_reused"] > 2 * runner.stats["frames_computed"]
    # the scores are not trivially equal: they move as the music does
    assert max(max(r.scores) for r in inc) - min(max(r.scores) for r in inc) > 0.01


def _tiny(seed=0):
    torch.manual_seed(seed)
    net = Musicnn(["a", "b", "c"], frontend_filters=0.1, midend_filters=8, backend_units=16).eval()
    # Negative batch-norm scales too: the max/min pooling must pick the right end.
    for mod in net.modules():
        if hasattr(mod, "running_var"):
            mod.weight.data.normal_()
            mod.bias.data.normal_()
            mod.running_mean.data.normal_()
            mod.running_var.data.uniform_(0.5, 2)
    assert any((m.weight < 0).any() for m in net.modules() if hasattr(m, "running_var"))
    return torch.jit.script(net)


def _forward(m, x):
    with torch.no_grad():
        return m(torch.from_numpy(x)[None])


def test_runner_recomputes_whole_window_after_a_gap_and_stays_exact():
    m = _tiny()
    rng = np.random.default_rng(1)
    a, b = (rng.random((96, 900), dtype=np.float32) * 3 for _ in range(2))
    r = FrameBranchRunner(m)
    t = 200
    plan = [
        (a, 200), (a, 231), (a, 263),  # a stream moving on 31-32 frames a hop
        (a, 263),  # the same window again: nothing new to compute
        (b, 294),  # unrelated content at the next hop's index: a gap or a restart
        (b, 325), (b, 356),
        (b, 300),  # an index that went backwards
        (a, 600), (a, 899),  # a jump of more than a window
    ]
    reused = []
    for src, end in plan:
        x = np.ascontiguousarray(src[:, end - t : end])
        before = r.stats["reused_windows"]
        with torch.no_grad():
            got = r(x, end)
        reused.append(r.stats["reused_windows"] - before)
        dev = float((got - _forward(m, x)).abs().max())
        assert dev <= 1e-5, (end, dev)
    assert reused == [0, 1, 1, 1, 0, 1, 1, 0, 0, 0]


def test_runner_on_windows_shorter_than_a_branch_context():
    """A 100-frame window is shorter than musicnn's 128-frame temporal filter: that branch
    is computed whole every time, the others incrementally."""
    m = _tiny(2)
    assert max(a + b for a, b in m.stream_context()) >= 100
    y = np.random.default_rng(3).random((96, 600), dtype=np.float32)
    r = FrameBranchRunner(m)
    for end in range(100, 600, 25):
        x = np.ascontiguousarray(y[:, end - 100 : end])
        with torch.no_grad():
            assert float((r(x, end) - _forward(m, x)).abs().max()) <= 1e-5
    assert r.stats["frames_reused"] > 0


def test_fast_inference_paths_equal_the_convolutions():
    """Max pooling of the sign-folded conv2d (timbral, weights computed per call or
    handed in), im2col + matmul (temporal) and the unfolded conv1d (with a
    gradient) all equal the definition conv -> ReLU -> BN -> max."""
    net = _tiny(4)
    x = torch.randn(1, 1, 96, 200)
    timbral = [(block, (block.signed_params(),)) for block in net.timbral]
    for block, args in timbral + [(block, ()) for block in net.temporal]:
        with torch.no_grad():
            reference = block.bn(torch.relu(block.conv(x))).amax(dim=2)
            fast = [block.valid(x, *[[] for _ in args]), block.valid(x, *args)]
        xg = x.clone().requires_grad_(True)
        with_grad = block.valid(xg, *[[] for _ in args]).detach()
        for got in fast + [with_grad]:
            assert got.shape == reference.shape
            assert float((got - reference).abs().max()) <= 1e-5 * (1 + float(reference.abs().max()))
    # Temporal edges: the zero padding skipped through a Toeplitz product of
    # the weights, built on the fly or handed in (stream_constants).
    for i, block in enumerate(net.temporal, start=len(net.timbral)):
        k = block.conv.kernel_size[1]
        for edges in ([], net.stream_constants(i)):
            for before, after in [(block.pad_before, 0), (0, block.pad_after), (block.pad_before, block.pad_after), (5, 9), (k - 1, k - 1)]:
                for t in (k - 1, k, 200):
                    xs = x[..., :t]
                    with torch.no_grad():
                        fast = block.padded(xs, before, after, edges)
                        slow = block.bn(torch.relu(block.conv(torch.nn.functional.pad(xs, (before, after))))).amax(dim=2)
                    assert fast.shape == slow.shape, (k, before, after, t)
                    assert float((fast - slow).abs().max()) <= 1e-5 * (1 + float(slow.abs().max())), (k, before, after, t)


def test_mid_end_matrix_product_equals_conv1d():
    """The mid end's wide convolution computed as one matrix product and shifted
    sums equals conv1d, for the shipped width (561 channels) and for narrow ones
    when forced; with a gradient it stays conv1d."""
    torch.manual_seed(5)
    for channels, force in ((561, False), (33, True)):
        mid = Musicnn(["a", "b"]).mid[0] if channels == 561 else Musicnn(["a", "b"], frontend_filters=0.1).mid[0]
        mid.eval()
        if force:
            mid.shifted_min_channels = 0
        x = torch.randn(2, channels, 313)
        with torch.no_grad():
            reference = mid.bn(torch.relu(mid.conv(x)))
            fast = [mid(x), mid.valid(torch.nn.functional.pad(x, (3, 3)), mid.constants())]
        assert len(mid.constants()) == 1  # the stacked weights, handed in as the streaming engine does
        for got in fast:
            assert got.shape == reference.shape
            assert float((got - reference).abs().max()) <= 1e-5 * (1 + float(reference.abs().max()))
    xg = x.clone().requires_grad_(True)
    assert mid(xg).grad_fn is not None


def test_shipped_musicnn_streams_and_its_streamed_forward_is_forward():
    from genredream.models.contract import load

    lm = load(resolve_model("musicnn-msd"))
    assert supports_streaming(lm.module)
    x = torch.rand(1, 96, 313) * 3
    with torch.no_grad():
        assert float((streamed_forward(lm.module, x) - lm.module(x)).abs().max()) <= 1e-5


class _LyingStreams(Musicnn):
    """Streaming methods that do not compute the network."""

    @torch.jit.export
    def stream_tail(self, front: torch.Tensor, mids: List[torch.Tensor]) -> torch.Tensor:
        return self._tail(front, mids)[-1] + 1.0


def test_contract_rejects_streaming_methods_that_disagree_with_forward(tmp_path):
    _, meta = build(["a", "b"])
    net = _LyingStreams(["a", "b"], frontend_filters=0.1, midend_filters=8, backend_units=16).eval()
    with pytest.raises(ModelFileError, match="disagree with forward"):
        save(net, meta, tmp_path / "liar.pt")
    assert not (tmp_path / "liar.pt").exists()



class _UnderstatedContext(Musicnn):
    """Whole windows right, but every mid stage claims no context while it reaches 3 frames each way."""

    @torch.jit.export
    def stream_mid_context(self) -> List[List[int]]:
        return [[0, 0], [0, 0], [0, 0]]

    @torch.jit.export
    def stream_mid(self, j: int, x: torch.Tensor, pad_before: int, pad_after: int, constants: List[torch.Tensor]) -> torch.Tensor:
        k = 0
        for block in self.mid:
            if k == j:
                y = block(x)  # pads itself, whatever it is told
                return y + x if j > 0 else y
            k += 1
        raise ValueError("no such stage")


def test_contract_rejects_streaming_that_is_right_whole_but_wrong_when_reusing(tmp_path):
    _, meta = build(["a", "b"])
    net = _UnderstatedContext(["a", "b"], frontend_filters=0.1, midend_filters=8, backend_units=16).eval()
    scripted = torch.jit.script(net)
    x = torch.rand(1, 96, 313) * 3
    with torch.no_grad():
        assert float((streamed_forward(scripted, x) - scripted(x)).abs().max()) <= 1e-5  # whole windows agree
    with pytest.raises(ModelFileError, match="reusing the last window"):
        save(net, meta, tmp_path / "understated.pt")
    assert not (tmp_path / "understated.pt").exists()