"""`genredream dream IN OUT` checks that OUT can be written before it dreams, not after."""

import numpy as np
import soundfile as sf

from genredream.engine.cli import main as cli


def test_an_unwritable_output_fails_before_the_dream(tmp_path, capfd):
    wav = tmp_path / "in.wav"
    t = np.arange(8000 * 6) / 8000
    sf.write(wav, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 8000)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    for out in (tmp_path / "missing" / "out.wav", blocker / "out.wav"):
        assert cli(["dream", str(wav), str(out), "--model", "geng", "--steps", "2"]) == 1
        o = capfd.readouterr()
        assert "step 1" not in o.err, o.err  # no step was dreamed: the path was checked first
        assert "cannot write" in o.err and "Traceback" not in o.err, o.err
    good = tmp_path / "out.wav"
    assert cli(["dream", str(wav), str(good), "--model", "geng", "--steps", "2"]) == 0
    assert sf.info(good).frames > 0
