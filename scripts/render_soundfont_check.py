"""Render the soundfont-generalisation check of docs/heads.md: the same songs with two soundfonts.

The shipped seed networks were trained on ``genredream corpus --songs-per-genre
100 --seconds 10 --seed 1`` (FluidR3_GM), split by song with
``split_songs(valid=0.1, test=0.1, seed=1)``. Song ``i`` of genre ``g``
depends only on (seed, g, i, seconds), so this script recomputes that split
without rendering the whole corpus and renders:

* ``OUT/seen/<genre>/``: ``--train`` songs per genre from the shipped
  training split, ``--valid`` from its validation split, and all its test
  songs, with the training soundfont (FluidR3_GM);
* ``OUT/unseen/<genre>/``: the same test songs with ``--unseen`` (a soundfont
  no model here was trained with);
* ``OUT/valid-sf/<genre>/`` (``--valid-name``) with ``--valid-soundfont``: the validation songs
  with a THIRD soundfont (neither the training nor the test one), so a head
  recipe can be chosen on a soundfont it was not trained on without looking
  at the test soundfont (docs/heads.md, fourth pass);
* ``OUT/<--split-name>/{train,valid,test}.txt`` (default ``split``): the song
  lists for ``genredream train --split-files``.

So a head trained on ``seen`` and every shipped seed network are tested on
the very same songs, rendered with a soundfont none of them heard.

    python scripts/render_soundfont_check.py /tmp/sfcheck --unseen /usr/share/sounds/sf2/TimGM6mb.sf2
    python scripts/render_soundfont_check.py /tmp/i18/sf --unseen /usr/share/sounds/sf2/TimGM6mb.sf2 \
        --train 80 --valid 10 --split-name split-full --valid-soundfont /usr/share/sounds/sf3/MuseScore_General_Lite.sf3
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from genredream.models.corpus.build import song_filename
from genredream.models.corpus.genres import GTZAN_GENRES
from genredream.models.corpus.render import RenderJob, find_soundfont, render_songs
from genredream.models.data import Song, split_songs


def shipped_split(genres, songs_per_genre=100, seed=1):
    songs = [Song(Path(g) / song_filename(g, i), g) for g in genres for i in range(songs_per_genre)]
    return split_songs(songs, 0.1, 0.1, seed)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out")
    p.add_argument("--unseen", required=True, help="the soundfont the test is rendered with")
    p.add_argument("--seen", default=None, help="training soundfont (default FluidR3_GM)")
    p.add_argument("--train", type=int, default=20, help="training songs per genre (default 20)")
    p.add_argument("--valid", type=int, default=5, help="validation songs per genre (default 5)")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--valid-soundfont", default=None, help="also render the validation songs with this third soundfont into OUT/VALID_NAME")
    p.add_argument("--valid-name", default="valid-sf", help="folder under OUT for --valid-soundfont's renders (default valid-sf)")
    p.add_argument("--split-name", default="split", help="folder under OUT for the song lists (default split)")
    a = p.parse_args(argv)
    out = Path(a.out)
    split = shipped_split(GTZAN_GENRES, seed=a.seed)
    chosen = {"train": [], "valid": [], "test": []}
    for name, per_genre in (("train", a.train), ("valid", a.valid), ("test", None)):
        by = {}
        for s in split[name]:
            by.setdefault(s.genre, []).append(s)
        for g in GTZAN_GENRES:
            chosen[name] += sorted(by[g], key=lambda s: s.path.name)[:per_genre]
    seen, unseen = find_soundfont(a.seen), find_soundfont(a.unseen)
    kinds = {"seen": seen, "unseen": unseen}
    if a.valid_soundfont:
        kinds[a.valid_name] = find_soundfont(a.valid_soundfont)
    # Which split each rendering is for: the training soundfont renders every split.
    wanted = {"seen": ("train", "valid", "test"), "unseen": ("test",), a.valid_name: ("valid",)}
    jobs = []
    for name, songs in chosen.items():
        for s in songs:
            index = int(s.path.name.split(".")[1])
            for kind, sf2 in kinds.items():
                if name not in wanted[kind]:
                    continue
                wav = out / kind / s.genre / s.path.name
                wav.parent.mkdir(parents=True, exist_ok=True)
                if not wav.exists():
                    jobs.append(RenderJob(genre=s.genre, index=index, seed=a.seed, seconds=a.seconds, wav_path=str(wav), soundfont=str(sf2)))
    render_songs(jobs, workers=a.jobs)
    (out / a.split_name).mkdir(parents=True, exist_ok=True)
    for name, songs in chosen.items():
        (out / a.split_name / f"{name}.txt").write_text("".join(f"{s.genre}/{s.path.name}\n" for s in songs))
    # A corpus.json so reports can say which soundfont each folder was rendered with.
    for kind, sf2 in kinds.items():
        (out / kind / "corpus.json").write_text(
            json.dumps({"format": "genredream-corpus", "seed": a.seed, "seconds": a.seconds, "soundfont": {"path": str(sf2), "size": sf2.stat().st_size}}, indent=1)
        )
    print(f"rendered {len(jobs)} clips into {out}")


if __name__ == "__main__":
    main()
