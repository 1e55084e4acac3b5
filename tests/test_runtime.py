"""engine/runtime.py: scheduling, shared front ends, exact clock, faults."""

import time

import numpy as np
import pytest
import torch

from genredream.engine.runtime import Engine, ModelLoadError
from genredream.models.archs import build
from genredream.models.contract import save
from tests.conftest import make_model_file


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    return {arch: make_model_file(arch, d) for arch in ("geng", "zheng")}


def music(seconds, sr, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    y = 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 0.5 * t)) + 0.05 * rng.standard_normal(t.size)
    return y.astype(np.float32)


def blocks(y, n=1024):
    return (y[i : i + n] for i in range(0, y.size, n))


def test_one_result_per_hop_with_exact_clock_and_window_times(model_files):
    sr = 22050
    e = Engine(sr)
    e.load_model(model_files["geng"])
    got = []
    e.sinks.append(got.append)
    y = music(10, sr)
    e.run_blocks(blocks(y, 1000))
    assert e.ring.total_written == y.size
    assert len(got) == 20 and [r.seq for r in got] == list(range(1, 21))
    for k, r in enumerate(got, 1):
        boundary = k * e.hop_samples
        # The window ends at the newest sample it depends on: at the hop boundary,
        # less what soxr still holds (it emits in internal chunks: measured
        # 5-80 ms at 8 kHz with the HQ recipe).
        assert boundary - 0.1 * sr <= r.end_index <= boundary
        assert r.end_s == pytest.approx(r.end_index / sr) and r.end_s - r.start_s == pytest.approx(5.0)
        assert np.isfinite(r.latency_ms) and r.latency_ms >= 0
        assert abs(sum(r.scores) - 1) < 1e-5 and not r.low_energy


def test_streamed_mel_window_equals_offline_mel_slice(model_files):
    """What the engine feeds a mel model is the offline mel of the stream, sliced and scaled."""
    from genredream.models.contract import load
    from genredream.models.inputs import InputSpec

    sr = 22050
    e = Engine(sr)
    name = e.load_model(model_files["zheng"])
    got = []
    e.sinks.append(got.append)
    y = music(8, sr, seed=3)
    e.run_blocks(blocks(y, 777))
    m = load(model_files["zheng"])
    spec = InputSpec(m.meta)
    feats = spec.song_features(y)
    cfg = spec.mel
    for r in got[-4:]:
        # end_index = last frame's centre + n_fft // 2  ->  last frame index
        last = (r.end_index - cfg.n_fft // 2) // cfg.hop_length
        x = spec.window(feats, last + 1 - spec.length)
        with torch.no_grad():
            ref = torch.softmax(m.module(torch.from_numpy(x)[None]), 1)[0].numpy()
        np.testing.assert_allclose(r.scores, ref, atol=1e-5)
    assert name == "test-zheng"


def test_models_with_one_config_share_one_front_end(model_files):
    e = Engine(44100)
    e.load_model(model_files["zheng"], name="z1")
    e.load_model(model_files["zheng"], name="z2")
    assert e.frontends.count() == (1, 1)
    e.load_model(model_files["geng"])
    assert e.frontends.count() == (2, 1)
    got = []
    e.sinks.append(got.append)
    e.run_blocks(blocks(music(2, 44100)))
    by = {}
    for r in got:
        by.setdefault(r.seq, {})[r.model] = r.scores
    for seq, d in by.items():
        np.testing.assert_array_equal(d["z1"], d["z2"])
    e.unload_model("z1")
    e.unload_model("test-geng")
    assert e.frontends.count() == (1, 1)
    with pytest.raises(KeyError, match="loaded: z2"):
        e.unload_model("nope")


def test_bad_model_file_leaves_running_models_untouched(model_files, tmp_path):
    e = Engine(22050)
    e.load_model(model_files["geng"])
    bad = tmp_path / "bad.pt"
    bad.write_bytes(model_files["geng"].read_bytes()[:5000])  # truncated download
    with pytest.raises(ModelLoadError, match="bad.pt"):
        e.load_model(bad)
    with pytest.raises(ModelLoadError, match="unknown model"):
        e.load_model("no-such-model")
    assert list(e.models) == ["test-geng"] and e.counters["model_load_errors"] == 2
    got = []
    e.sinks.append(got.append)
    e.run_blocks(blocks(music(1.0, 22050)))
    assert len(got) == 2 and not got[0].error


class Flaky(torch.nn.Module):
    """A contract-following model that starts raising after some calls (a real scripted failure)."""

    def __init__(self, inner, after: int):
        super().__init__()
        self.inner = inner
        self.after = after
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        if self.calls > self.after:
            raise RuntimeError("simulated CUDA-less kernel failure")
        return self.inner(x)

    @torch.jit.export
    def features(self, x):
        return self.inner.features(x)


def test_model_that_raises_is_disabled_and_others_keep_running(model_files, tmp_path):
    inner, meta = build("geng", ["a", "b", "c"])
    meta["name"] = "flaky"
    save(Flaky(inner.eval(), after=40), meta, tmp_path / "flaky.pt")
    e = Engine(16000)
    e.load_model(tmp_path / "flaky.pt")
    e.load_model(model_files["geng"])
    got = []
    e.sinks.append(got.append)
    e.run_blocks(blocks(music(30, 16000)))
    flaky = [r for r in got if r.model == "flaky"]
    good = [r for r in got if r.model == "test-geng"]
    assert len(good) == 60 and all(not r.error for r in good)
    assert flaky[-1].error and "simulated" in flaky[-1].error
    assert sum(1 for r in flaky if r.error) == 1  # disabled after its first error
    assert e.counters["model_errors"] == 1 and "disabled" in e.status()["models"]["flaky"]


def test_nan_input_is_repaired_and_counted(model_files):
    e = Engine(8000)
    e.load_model(model_files["geng"])
    got = []
    e.sinks.append(got.append)
    y = music(2, 8000)
    y[100:150] = np.nan
    y[4000] = np.inf
    e.run_blocks(blocks(y))
    assert e.ring.nonfinite_repaired == 51
    assert all(np.isfinite(r.scores).all() for r in got) and len(got) == 4


def test_silence_still_scores_flagged_low_energy(model_files):
    from genredream.engine.io.file import silence_blocks

    e = Engine(22050)
    e.load_model(model_files["zheng"])
    got = []
    e.sinks.append(got.append)
    e.run_blocks(silence_blocks(22050, 2.0))
    assert len(got) == 4 and all(r.low_energy and np.isfinite(r.scores).all() for r in got)


def test_slow_inference_skips_stale_windows_and_counts_them(model_files):
    """Real threads, real-time pace, a sink that takes 3 hops: windows are skipped, never queued without end."""
    e = Engine(8000, hop=0.1, queue_size=1)
    e.load_model(model_files["geng"])
    got = []

    def slow_sink(r):
        got.append(r)
        time.sleep(0.3)

    e.sinks.append(slow_sink)
    e.run_blocks(blocks(music(3, 8000), 400), realtime=True)
    st = e.status()
    assert st["windows"] == 30
    assert st["skipped_windows"] > 5
    assert st["results"] + st["skipped_windows"] <= st["windows"]
    assert st["results"] + st["skipped_windows"] >= st["windows"] - 2  # at most the one being scored and one queued
    assert len(e._queue) == 0


def test_drain_scores_the_windows_the_front_end_is_still_queueing(model_files):
    """stop(drain=True) right after a burst: every window cut is scored or counted as skipped, none lost.

    The burst is what the OSC source does with the packets it kept while the
    models loaded. The front end's pump is made to linger after cutting its
    windows (the real pump, then a sleep: the moment a loaded machine
    preempts it), which is where a drain that watched only the cursor and
    the queue stopped the workers and lost the last windows (seen in CI as a
    run with no result at all).
    """
    e = Engine(8000, hop=0.5, queue_size=2)
    e.load_model(model_files["geng"])
    got = []
    e.sinks.append(got.append)
    real_pump = e.pump

    def lingering_pump():
        jobs = real_pump()
        if jobs:
            time.sleep(0.3)
        return jobs

    e.pump = lingering_pump
    e.start()
    for b in blocks(music(6, 8000), 400):
        e.write(b)
    e.stop(drain=True)
    st = e.status()
    assert st["windows"] >= 10
    assert got, "no result: the drain stopped the workers before the windows were queued"
    assert st["results"] + st["skipped_windows"] == st["windows"], st
    assert got[-1].end_index >= 6 * 8000 - e.hop_samples  # the last window, not only early ones


def test_realtime_threads_give_the_same_scores_as_inline(model_files):
    y = music(3, 8000, seed=9)
    out = []
    for realtime in (False, True):
        e = Engine(8000)
        e.load_model(model_files["geng"])
        got = []
        e.sinks.append(got.append)
        e.run_blocks(blocks(y, 256), realtime=realtime)
        out.append({r.seq: r.scores for r in got})
    assert out[0].keys() == out[1].keys()
    for k in out[0]:
        np.testing.assert_allclose(out[0][k], out[1][k], atol=1e-6)


@pytest.mark.parametrize("kw,word", [(dict(sample_rate=0), "sample_rate"), (dict(sample_rate=8000, hop=6.0), "hop"), (dict(sample_rate=8000, window=60, hop=1), "window")])
def test_bad_engine_arguments(kw, word):
    with pytest.raises(ValueError, match=word):
        Engine(**kw)
