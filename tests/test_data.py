"""models/data.py on real files in every supported format."""

import warnings

import numpy as np
import pytest
import soundfile as sf

from genredream.models import data
from tests.conftest import require_component


def tone(sr, seconds, f=440.0, channels=1):
    t = np.arange(int(sr * seconds)) / sr
    y = 0.5 * np.sin(2 * np.pi * f * t)
    return np.stack([y] * channels, axis=1) if channels > 1 else y


@pytest.fixture
def collection(tmp_path):
    root = tmp_path / "genres"
    (root / "jazz").mkdir(parents=True)
    (root / "metal").mkdir()
    sf.write(root / "jazz" / "a.wav", tone(44100, 6, channels=2), 44100, subtype="PCM_16")
    sf.write(root / "jazz" / "b.flac", tone(48000, 6), 48000)
    sf.write(root / "jazz" / "c.ogg", tone(22050, 6), 22050, format="OGG", subtype="VORBIS")
    sf.write(root / "metal" / "d.au", tone(8000, 6), 8000, format="AU", subtype="PCM_16")
    sf.write(root / "metal" / "short.wav", tone(16000, 2), 16000)
    (root / "metal" / "broken.wav").write_bytes(b"RIFF\x00\x00not really a wave file" * 10)
    (root / "metal" / "notes.txt").write_text("not audio")
    return root


def test_scan_finds_genres_songs_and_ignores_other_files(collection):
    c = data.scan(collection)
    assert c.genres == ["jazz", "metal"]
    assert sorted(s.path.name for s in c.songs) == ["a.wav", "b.flac", "broken.wav", "c.ogg", "d.au", "short.wav"]
    assert [p.name for p, _ in c.ignored] == ["notes.txt"]
    # GTZAN's archive layout: the genres/ folder one level down is found too.
    assert data.scan(collection.parent).genres == ["jazz", "metal"]


@pytest.mark.parametrize("name,sr", [("a.wav", 44100), ("b.flac", 48000), ("c.ogg", 22050), ("d.au", 8000)])
def test_every_format_decodes_to_mono_at_the_model_rate(collection, name, sr):
    genre = "metal" if name == "d.au" else "jazz"
    y = data.load_audio(collection / genre / name, 16000)
    assert y.dtype == np.float32 and y.ndim == 1
    assert abs(y.size - 6 * 16000) <= 2
    spec = np.abs(np.fft.rfft(y))
    assert np.argmax(spec) * 16000 / y.size == pytest.approx(440, abs=2)  # pitch survives the resampling


def test_mp3_decodes(tmp_path):
    p = tmp_path / "x.mp3"
    try:
        sf.write(p, tone(44100, 3), 44100, format="MP3")
        can_write = True
    except Exception:  # libsndfile built without mp3: nothing to test the reader against
        can_write = False
    require_component("libsndfile with MP3 support", can_write, "pip install -U soundfile (its wheels bundle libsndfile >= 1.1)")
    y = data.load_audio(p, 22050)
    assert abs(y.size / 22050 - 3) < 0.1


def test_unreadable_file_names_path_and_reason(collection):
    with pytest.raises(data.AudioFileError, match="broken.wav"):
        data.load_audio(collection / "metal" / "broken.wav", 22050)


def test_decode_skips_unreadable_and_pads_short(collection):
    c = data.scan(collection)
    ticks = []
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        rep = data.decode_songs(c.songs, c.genres, 8000, 5 * 8000, progress=ticks.append)
    assert len(ticks) == 6
    assert [p for p, _ in rep.skipped] == [str(collection / "metal" / "broken.wav")]
    assert any("broken.wav" in str(x.message) for x in w)
    assert rep.padded == [str(collection / "metal" / "short.wav")]
    short = next(d for d in rep.decoded if d.padded)
    assert short.audio.size == 5 * 8000 and short.label == 1
    # Repeat-padding loops the song: the second pass equals the first.
    np.testing.assert_array_equal(short.audio[16000 // 2 : 16000], short.audio[16000 + 16000 // 2 : 2 * 16000])


def test_empty_genre_folder_is_a_clear_error(tmp_path):
    (tmp_path / "rock").mkdir()
    (tmp_path / "pop").mkdir()
    sf.write(tmp_path / "rock" / "a.wav", tone(8000, 1), 8000)
    with pytest.raises(data.CollectionError, match=r"\['pop'\] contain no audio"):
        data.scan(tmp_path)


def test_other_collection_errors(tmp_path):
    with pytest.raises(data.CollectionError, match="not a folder"):
        data.scan(tmp_path / "nope")
    with pytest.raises(data.CollectionError, match="no genre sub-folders"):
        data.scan(tmp_path)
    (tmp_path / "rock").mkdir()
    sf.write(tmp_path / "rock" / "a.wav", tone(8000, 1), 8000)
    with pytest.raises(data.CollectionError, match="at least two"):
        data.scan(tmp_path)
    with pytest.raises(data.CollectionError, match="jazz"):
        data.scan(tmp_path, genres=["rock", "jazz"])


def songs(n_per_genre, genres=("a", "b", "c")):
    from pathlib import Path

    return [data.Song(Path(f"/x/{g}/{g}.{i:05d}.wav"), g) for g in genres for i in range(n_per_genre)]


def test_split_is_by_song_stratified_and_deterministic():
    s = songs(10)
    sp = data.split_songs(s, valid=0.1, test=0.2, seed=3)
    ids = {k: {x.song_id for x in v} for k, v in sp.items()}
    assert not (ids["train"] & ids["test"]) and not (ids["train"] & ids["valid"]) and not (ids["valid"] & ids["test"])
    assert sum(len(v) for v in ids.values()) == 30
    for g in "abc":
        assert sum(x.genre == g for x in sp["test"]) == 2
        assert sum(x.genre == g for x in sp["valid"]) == 1
    assert sp == data.split_songs(s, valid=0.1, test=0.2, seed=3)
    assert sp["test"] != data.split_songs(s, valid=0.1, test=0.2, seed=4)["test"]
    # Changing the valid fraction never moves a test song.
    assert data.split_songs(s, valid=0.3, test=0.2, seed=3)["test"] == sp["test"]


def test_split_files(collection, tmp_path):
    c = data.scan(collection)
    (tmp_path / "train.txt").write_text("jazz/a.wav\nb.flac  # a bare name works when unique\n\nmetal/d.au\n")
    (tmp_path / "test.txt").write_text("c.ogg\n")
    sp = data.read_split_files(c, tmp_path / "train.txt", test=tmp_path / "test.txt")
    assert [s.path.name for s in sp["train"]] == ["a.wav", "b.flac", "d.au"]
    assert [s.path.name for s in sp["test"]] == ["c.ogg"] and sp["valid"] == []
    (tmp_path / "bad.txt").write_text("jazz/zzz.wav\n")
    with pytest.raises(data.CollectionError, match="bad.txt:1: 'jazz/zzz.wav' matches no song"):
        data.read_split_files(c, tmp_path / "bad.txt")
    with pytest.raises(data.CollectionError, match="already in the train split"):
        data.read_split_files(c, tmp_path / "train.txt", test=tmp_path / "train.txt")


def test_window_starts():
    rng = np.random.default_rng(0)
    st = data.random_starts(1000, 200, 30, rng)
    assert st.size == 30 and st.min() >= 0 and st.max() <= 800 and len(set(st.tolist())) > 10
    np.testing.assert_array_equal(data.consecutive_starts(1000, 200), [0, 200, 400, 600, 800])
    np.testing.assert_array_equal(data.consecutive_starts(1050, 200), [0, 200, 400, 600, 800, 850])
    with pytest.raises(ValueError, match="shorter than the window"):
        data.random_starts(100, 200, 1, rng)
