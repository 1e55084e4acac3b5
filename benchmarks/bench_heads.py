"""A genre head on musicnn (docs/heads.md) costs what musicnn costs per hop.

The head file is musicnn-msd's body plus a small head, run by the engine's
same compiled incremental step; the reference is the shipped musicnn-msd on
the same successive windows in the same run. The ratio should be ~1.0x.
"""

import pytest
import torch

from genredream.models import contract, registry

from bench_musicnn import _hops, _info, _time_each_hop  # benchmarks/ is on sys.path (pytest rootdir-less import)

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.\\w+` is deprecated:DeprecationWarning")


@pytest.fixture(scope="module")
def msd():
    return contract.load(registry.PRETRAINED_DIR / "musicnn-msd.pt").module


@pytest.fixture(scope="module")
def head_file(msd, tmp_path_factory):
    """A head on the MSD body, saved and loaded through the contract (its weights need no training to be timed)."""
    from genredream.models.archs.musicnn_head import MusicnnHead, make_head_meta

    torch.manual_seed(0)
    net = MusicnnHead([f"genre{i}" for i in range(10)], "penultimate", 0)
    net.load_body(msd.state_dict())
    path = tmp_path_factory.mktemp("head") / "head.pt"
    return contract.save(net, make_head_meta(net, "musicnn-msd", "ISC"), path).module


@pytest.fixture(scope="module")
def mel_stream(msd):
    from genredream.engine.demo import test_signal

    y = torch.from_numpy(test_signal(40.0, 16000, 3).mean(axis=1).astype("float32"))[None]
    with torch.no_grad():
        return msd.frontend(y)[0].numpy()


@pytest.mark.parametrize("role", ["ours", "reference"])
def test_head_per_hop_vs_musicnn(benchmark, msd, head_file, mel_stream, role):
    from genredream.models.incremental import FrameBranchRunner

    torch.set_num_threads(1)
    module = head_file if role == "ours" else msd
    runner = FrameBranchRunner(module)
    out = _time_each_hop(benchmark, runner, list(_hops(mel_stream)))
    assert out.shape == ((1, 10) if role == "ours" else (1, 50))
    _info(benchmark, "per 0.5 s hop, incremental: musicnn-head on musicnn-msd (ours) vs musicnn-msd (reference)", 1)
    benchmark.extra_info["role"] = role
