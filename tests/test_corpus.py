"""The synthetic genre corpus: MIDI writer, styles, composer, FluidSynth rendering, layout.

Rendering tests use the real FluidSynth and GM soundfont; without them they
skip locally and fail in CI (see conftest.require_component).
"""

import argparse
import json
import shutil
import struct
import wave
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from genredream.models.corpus import midi as smf
from genredream.models.corpus.build import build_corpus
from genredream.engine.cli.corpus import add_arguments, main
from genredream.models.corpus.compose import PPQ, compose_song, parse_chord
from genredream.models.corpus.genres import (GENG_GENRES, GENRES, GTZAN_GENRES, UnknownGenreError,
                                  validate_style)
from genredream.models.corpus.render import (FluidsynthNotFoundError, SoundfontNotFoundError,
                                  find_fluidsynth, find_soundfont, render_midi)
from tests.conftest import require_component

SECONDS = 3.0
SR = 22050
INSTALL = "apt-get install fluidsynth fluid-soundfont-gm"


def need_fluidsynth():
    require_component("fluidsynth", shutil.which("fluidsynth") is not None, INSTALL)
    try:
        sf2 = find_soundfont()
    except SoundfontNotFoundError:
        sf2 = None
    require_component("GM soundfont", sf2 is not None, "apt-get install fluid-soundfont-gm")
    return sf2


def read_wav(path):
    """(sample_rate, channels, sample width, int16 frames) via the stdlib reader."""
    with wave.open(str(path), "rb") as w:
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        return w.getframerate(), w.getnchannels(), w.getsampwidth(), data.reshape(-1, w.getnchannels())


# --------------------------------------------------------------------------- MIDI writer

@pytest.mark.parametrize("value, encoded", [
    (0, b"\x00"), (0x40, b"\x40"), (0x7F, b"\x7f"), (0x80, b"\x81\x00"),
    (0x2000, b"\xc0\x00"), (0x3FFF, b"\xff\x7f"), (0x200000, b"\x81\x80\x80\x00"),
    (0x0FFFFFFF, b"\xff\xff\xff\x7f"),
])
def test_var_len_matches_the_smf_spec_examples(value, encoded):
    assert smf.var_len(value) == encoded


def test_midi_bytes_have_the_smf_structure():
    f = smf.MidiFile(ppq=96)
    f.conductor.tempo(0, 120.0)
    f.conductor.time_signature(0, 3, 4)
    t = f.add_track("p")
    t.program(0, 0, 5)
    t.note(0, 96, 0, 60, 100)
    t.note(96, 96, 0, 60, 90)  # re-struck pitch: its note-on must follow the previous note-off
    d = f.add_track("d")
    d.note(0, 10, smf.DRUM_CHANNEL, 36, 110)
    data = f.to_bytes()

    # Header parsed by hand, independent of parse_header.
    assert data[:4] == b"MThd"
    length, fmt, ntracks, division = struct.unpack(">IHHH", data[4:14])
    assert (length, fmt, ntracks, division) == (6, 1, 3, 96)
    pos, chunks = 14, []
    while pos < len(data):
        assert data[pos:pos + 4] == b"MTrk"
        (size,) = struct.unpack(">I", data[pos + 4:pos + 8])
        chunks.append(data[pos + 8:pos + 8 + size])
        pos += 8 + size
    assert pos == len(data) and len(chunks) == 3
    assert all(c.endswith(b"\xff\x2f\x00") for c in chunks)
    assert b"\xff\x51\x03" + (500000).to_bytes(3, "big") in chunks[0]  # 120 BPM
    assert b"\xff\x58\x04\x03\x02" in chunks[0]  # 3/4
    assert b"\xc0\x05" in chunks[1]
    # At tick 96: note-off 60 (delta 96 = 0x60) then note-on 60 with delta 0.
    assert b"\x60\x80\x3c\x40\x00\x90\x3c\x5a" in chunks[1]
    assert b"\x99\x24\x6e" in chunks[2]  # note-on on channel 10
    assert smf.parse_header(data) == (1, 3, 96)


def test_midi_writer_rejects_out_of_range_values():
    t = smf.Track()
    with pytest.raises(ValueError, match="pitch"):
        t.note(0, 10, 0, 128, 100)
    with pytest.raises(ValueError, match="channel"):
        t.program(0, 16, 0)
    with pytest.raises(ValueError, match="velocity"):
        t.note(0, 10, 0, 60, 0)
    with pytest.raises(ValueError, match="MThd"):
        smf.parse_header(b"RIFF....")


def test_fluidsynth_accepts_the_midi_writer_output(tmp_path):
    sf2 = need_fluidsynth()
    f = smf.MidiFile()
    f.conductor.tempo(0, 100.0)
    t = f.add_track("piano")
    t.program(0, 0, 0)
    for i, p in enumerate((60, 64, 67, 72)):
        t.note(i * PPQ // 2, PPQ // 2, 0, p, 100)
    f.add_track("drums").note(0, 60, smf.DRUM_CHANNEL, 38, 120)
    path = tmp_path / "t.mid"
    f.save(path)
    audio = render_midi(path, 2.5, sf2)
    assert audio.shape == (int(2.5 * SR),) and audio.dtype == np.float32
    # The file's music lasts about 1.2 s: the rest is FluidSynth's tail or padding.
    first = np.abs(audio[: SR]).max()
    assert first > 0.5 and np.abs(audio[-SR // 4:]).max() < first


# --------------------------------------------------------------------------- styles

def test_genre_set_covers_gtzan_and_geng():
    assert set(GTZAN_GENRES) | set(GENG_GENRES) == set(GENRES)
    assert len(GENRES) == 13


@pytest.mark.parametrize("genre", list(GENRES))
def test_every_style_is_consistent(genre):
    for style in GENRES[genre].styles:
        assert validate_style(style) is None  # it raises on a fault; the cases below show it does


def _broken_styles(style):
    """One fault of each kind validate_style names, put into a real style (name, style, message)."""
    from dataclasses import replace

    part, groove = style.parts[0], style.grooves[0]
    drum, pattern = next(iter(groove.hits.items()))
    yield "tempo", replace(style, tempo=(140, 90)), "bad tempo range"
    yield "grid", replace(style, grid=5), "grid must be 3 or 4"
    yield "drum", replace(style, grooves=(replace(groove, hits={**groove.hits, "cowbell-x": pattern}),) + style.grooves[1:]), "unknown drum"
    yield "tiling", replace(style, grooves=(replace(groove, hits={**groove.hits, drum: pattern + "."}),) + style.grooves[1:]), "does not tile"
    yield "symbol", replace(style, grooves=(replace(groove, hits={**groove.hits, drum: "Z" * len(pattern)}),) + style.grooves[1:]), "unknown symbols"
    yield "mode", replace(style, progressions=(("no-such-mode", style.progressions[0][1]),)), "unknown mode"
    yield "role", replace(style, parts=(part, part) + style.parts[1:]), "duplicate part role"
    yield "register", replace(style, parts=(replace(part, register=(60, 60)),) + style.parts[1:]), "empty register"
    yield "program", replace(style, parts=(replace(part, programs=(128,)),) + style.parts[1:]), "bad programs"


@pytest.mark.parametrize("fault", ["tempo", "grid", "drum", "tiling", "symbol", "mode", "role", "register", "program"])
def test_validate_style_names_each_fault(fault):
    style = next(s for g in GENRES.values() for s in g.styles if s.grooves and s.parts and s.progressions)
    name, broken, message = next(b for b in _broken_styles(style) if b[0] == fault)
    with pytest.raises(ValueError, match=message):
        validate_style(broken)


def test_chord_symbols():
    assert parse_chord("V7", 0).root == 7 and parse_chord("V7", 0).intervals == (0, 4, 7, 10)
    assert parse_chord("bVII", 9).root == 7
    assert parse_chord("ii7b5", 0).intervals == (0, 3, 6, 10)
    with pytest.raises(ValueError):
        parse_chord("H7", 0)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(genre=st.sampled_from(sorted(GENRES)), seed=st.integers(0, 2**31 - 1),
       index=st.integers(0, 9999), seconds=st.floats(0.5, 45.0))
def test_any_song_composes_to_a_valid_midi_long_enough(genre, seed, index, seconds):
    song = compose_song(genre, seed, index, seconds)
    data = song.midi.to_bytes()
    fmt, ntracks, ppq = smf.parse_header(data)
    assert fmt == 1 and ntracks >= 3 and ppq == PPQ
    beats = song.midi.end_tick / PPQ
    assert beats * 60.0 / song.params["tempo"] >= seconds
    assert song.params["genre"] == genre
    lo, hi = next(s.tempo for s in GENRES[genre].styles if s.name == song.params["style"])
    assert lo <= song.params["tempo"] <= hi


def test_songs_are_deterministic_and_differ_within_a_genre():
    a = compose_song("jazz", 5, 0, 10).midi.to_bytes()
    assert a == compose_song("jazz", 5, 0, 10).midi.to_bytes()
    assert a != compose_song("jazz", 5, 1, 10).midi.to_bytes()
    assert a != compose_song("jazz", 6, 0, 10).midi.to_bytes()
    params = [compose_song("rock", 1, i, 10).params for i in range(8)]
    assert len({(p["tempo"], p["key"]) for p in params}) > 4


# --------------------------------------------------------------------------- corpus on disk

@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    need_fluidsynth()
    out = tmp_path_factory.mktemp("corpus")
    report = build_corpus(out, None, 1, SECONDS, 3, progress=False)
    return out, report


def test_layout_and_manifest(corpus):
    out, report = corpus
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == sorted(GENRES)
    for g in GENRES:
        assert sorted(p.name for p in (out / g).iterdir()) == [f"{g}.00000.wav"]
    m = json.loads((out / "corpus.json").read_text())
    assert m["genres"] == sorted(GENRES) and m["seed"] == 3 and m["seconds"] == SECONDS
    assert m["sample_rate"] == SR and Path(m["soundfont"]["path"]).is_file()
    assert [s["file"] for s in m["songs"]] == [f"{g}/{g}.00000.wav" for g in sorted(GENRES)]
    for s in m["songs"]:
        assert {"tempo", "key", "style", "parts", "progressions"} <= set(s)
    assert report.files == [out / s["file"] for s in m["songs"]]
    assert report.realtime_factor > 0


@pytest.mark.parametrize("genre", sorted(GENRES))
def test_every_genre_renders_exact_length_non_silent_audio(corpus, genre):
    out, _ = corpus
    rate, channels, width, frames = read_wav(out / genre / f"{genre}.00000.wav")
    assert (rate, channels, width) == (SR, 1, 2)
    assert frames.shape[0] == int(SECONDS * SR)
    x = frames[:, 0].astype(np.float64) / 32768
    assert 0.8 < np.abs(x).max() <= 0.9  # normalised to -1 dBFS
    # Sound all through the clip, not only somewhere in it.
    seconds = x[: int(SECONDS) * SR].reshape(int(SECONDS), SR)
    assert (np.sqrt((seconds ** 2).mean(axis=1)) > 0.005).all()


def test_same_seed_gives_byte_identical_corpus_and_other_seeds_differ(corpus, tmp_path):
    out, _ = corpus
    again = tmp_path / "again"
    build_corpus(again, None, 1, SECONDS, 3, progress=False, jobs=1)  # also: jobs don't matter
    assert (again / "corpus.json").read_bytes() == (out / "corpus.json").read_bytes()
    for g in GENRES:
        name = f"{g}/{g}.00000.wav"
        assert (again / name).read_bytes() == (out / name).read_bytes(), name
    other = tmp_path / "other"
    build_corpus(other, ["rock", "classical"], 1, SECONDS, 4, progress=False)
    for g in ("rock", "classical"):
        a = read_wav(other / g / f"{g}.00000.wav")[3]
        b = read_wav(out / g / f"{g}.00000.wav")[3]
        assert a.shape == b.shape and not np.array_equal(a, b)


def test_cli_builds_stereo_with_midi_and_lists_genres(tmp_path, capsys):
    need_fluidsynth()
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert main(parser.parse_args(["--list-genres"])) == 0
    listed = capsys.readouterr().out
    assert all(g in listed for g in GENRES)
    args = parser.parse_args([str(tmp_path / "c"), "--genres", "Reggae, metal", "--songs-per-genre", "2",
                              "--seconds", "1.5", "--seed", "9", "--stereo", "--keep-midi", "--quiet"])
    assert main(args) == 0
    for g in ("reggae", "metal"):
        for i in range(2):
            rate, channels, _, frames = read_wav(tmp_path / "c" / g / f"{g}.{i:05d}.wav")
            assert (rate, channels, frames.shape[0]) == (SR, 2, int(1.5 * SR))
            assert smf.parse_header((tmp_path / "c" / g / f"{g}.{i:05d}.mid").read_bytes())[0] == 1
    assert json.loads((tmp_path / "c" / "corpus.json").read_text())["genres"] == ["reggae", "metal"]


# --------------------------------------------------------------------------- errors

def test_unknown_genre_lists_the_known_ones(tmp_path, capsys):
    with pytest.raises(UnknownGenreError, match="polka") as info:
        build_corpus(tmp_path / "x", ["rock", "polka"], 1, 1.0, 0, progress=False)
    assert all(g in str(info.value) for g in GENRES)
    assert not (tmp_path / "x").exists()
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert main(parser.parse_args([str(tmp_path / "y"), "--genres", "polka"])) == 2
    err = capsys.readouterr().err
    assert "polka" in err and "classical" in err


def test_missing_soundfont_names_the_paths_tried_and_the_package(tmp_path, monkeypatch):
    missing = tmp_path / "nope.sf2"
    with pytest.raises(SoundfontNotFoundError) as info:
        find_soundfont(missing)
    assert str(missing) in str(info.value) and "apt-get install fluid-soundfont-gm" in str(info.value)
    # An explicit environment choice is not silently replaced by a default.
    monkeypatch.setenv("GENREDREAM_SOUNDFONT", str(missing))
    with pytest.raises(SoundfontNotFoundError, match="nope.sf2"):
        find_soundfont()
    monkeypatch.delenv("GENREDREAM_SOUNDFONT")
    candidates = (str(tmp_path / "a.sf2"), str(tmp_path / "b.sf2"))
    monkeypatch.setattr("genredream.models.corpus.render.SOUNDFONT_CANDIDATES", candidates)
    with pytest.raises(SoundfontNotFoundError) as info:
        find_soundfont()
    assert all(c in str(info.value) for c in candidates)


def test_missing_soundfont_fails_before_writing(tmp_path):
    require_component("fluidsynth", shutil.which("fluidsynth") is not None, INSTALL)
    with pytest.raises(SoundfontNotFoundError, match="fluid-soundfont-gm"):
        build_corpus(tmp_path / "x", ["rock"], 1, 1.0, 0, soundfont=tmp_path / "nope.sf2", progress=False)
    assert not (tmp_path / "x").exists()


def test_missing_fluidsynth_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.delenv("GENREDREAM_FLUIDSYNTH", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(FluidsynthNotFoundError, match="apt-get install fluidsynth"):
        find_fluidsynth()
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert main(parser.parse_args([str(tmp_path / "z"), "--genres", "rock", "--quiet"])) == 1


def test_bad_numbers_are_rejected(tmp_path):
    for kwargs, match in (({"songs_per_genre": 0}, "songs_per_genre"), ({"seconds": 0}, "seconds"),
                          ({"seed": -1}, "seed")):
        args = dict(genres=["rock"], songs_per_genre=1, seconds=1.0, seed=0, progress=False) | kwargs
        with pytest.raises(ValueError, match=match):
            build_corpus(tmp_path / "x", **args)
