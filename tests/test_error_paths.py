"""Errors caught only where they mean what the code says, and let through everywhere else.

Three places once caught every exception: the offline dream's default
ensemble (a member not installed), the dreamer's check of whether a model
takes a shorter window, and the bridge's "is it dreaming" for /status.
Each path is run here with a real model or engine, once with the error it
means and once with another; the other must come through. Where an
unexpected error cannot be provoked with a real component (a failing disk
under a model's forward pass), one function is replaced to raise it, and
the test says so.
"""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import make_model_file


def _song(path, seconds=6, sr=16000):
    t = np.arange(int(seconds * sr)) / sr
    y = 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 2 * t)) / 2
    sf.write(path, y.astype(np.float32), sr, subtype="PCM_16")
    return path


def test_default_ensemble_dreams_without_a_member_that_is_not_installed(tmp_path, monkeypatch):
    from genredream.engine.dream import transfer
    from genredream.engine.dream.offline import dream_file

    monkeypatch.setattr(transfer, "DEFAULT_ENSEMBLE", ("musicnn-msd", "no-such-model-here"))
    res = dream_file(_song(tmp_path / "in.wav"), tmp_path / "out.wav", target="rock", steps=1)
    assert res["model"] == "musicnn-msd" and (tmp_path / "out.wav").exists()


def test_default_ensemble_lets_other_errors_through(tmp_path, monkeypatch):
    from genredream.engine.dream import transfer
    from genredream.engine.dream.offline import dream_file

    # A name that is not a name at all: the registry's TypeError is a bug to see, not a model to skip.
    monkeypatch.setattr(transfer, "DEFAULT_ENSEMBLE", ("musicnn-msd", 42))
    with pytest.raises(TypeError):
        dream_file(_song(tmp_path / "in.wav"), tmp_path / "out.wav", target="rock", steps=1)
    assert not (tmp_path / "out.wav").exists()


def test_a_model_with_a_fixed_window_is_found_out_by_running_it(tmp_path):
    """geng's dense layer takes exactly 5 s: on 3 s TorchScript raises (a RuntimeError), so the window stays whole."""
    from genredream.engine.dream import Dreamer
    from genredream.engine.dream.objective import load_dream_model

    lm = load_dream_model(str(make_model_file("geng", tmp_path)))
    assert Dreamer(lm, steps=1)._accepts_any_length() is False


def test_checking_the_window_lets_other_errors_through(tmp_path, monkeypatch):
    """Replaced here (a real model cannot be made to fail so): an OSError while preparing the input is not 'a shorter window fails'."""
    from genredream.engine.dream import Dreamer, layout
    from genredream.engine.dream.objective import load_dream_model

    lm = load_dream_model(str(make_model_file("geng", tmp_path)))
    dr = Dreamer(lm, steps=1)

    def failing(*a, **k):
        raise OSError("read error")

    monkeypatch.setattr(layout, "model_input", failing)
    with pytest.raises(OSError, match="read error"):
        dr._accepts_any_length()


def test_dreaming_as_status_reports_it(tmp_path):
    from genredream.bridge.handlers import dream_enabled
    from genredream.engine.dream import Dreamer
    from genredream.engine.dream.objective import load_dream_model
    from genredream.engine.runtime import Engine

    e = Engine(16000)
    assert dream_enabled(e) is False
    dr = Dreamer(load_dream_model(str(make_model_file("geng", tmp_path))), steps=1)
    e.set_transform(dr)
    assert dream_enabled(e) is True
    dr.set_params(enabled=False)
    assert dream_enabled(e) is False

    class Plain:  # a transform with no params(): attached means on
        pass

    e.transform = Plain()
    assert dream_enabled(e) is True

    class Broken:
        def params(self):
            raise RuntimeError("params failed")

    e.transform = Broken()
    with pytest.raises(RuntimeError, match="params failed"):  # not reported as dreaming
        dream_enabled(e)
