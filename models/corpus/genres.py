"""Style descriptions for the synthetic genre corpus.

Each genre is one or more *feels* (:class:`Style`): a tempo range, a meter, a
swing amount, drum grooves for GM channel 10, chord progressions, and the parts
that play over them (bass, chords, arpeggios, pads, a lead, a rap "voice"),
each with candidate General MIDI programs, a register and rhythm templates.
:mod:`genredream.models.corpus.compose` turns a style into a song by drawing from all of
these with a seeded generator.

The genres are designed to be told apart by a small CNN on mel spectrograms
(tempo, groove, timbre, register, density and distortion differ between
genres) while each genre still spans several feels, keys, tempos, programs and
patterns, so a classifier has to learn the genre rather than one song.

Step strings
------------
All rhythms are strings with one character per grid step (``Style.grid``
steps per quarter-note beat). A pattern may be shorter or longer than a bar:
it is indexed by the absolute step number modulo its length, so ``"x."``
means "every other step" and a 32-step pattern spans two 4/4 bars.

* drums: ``.`` rest, ``g`` ghost, ``o`` soft, ``x`` normal, ``X`` accent,
  ``?`` a soft hit half of the time, ``r`` two quick hits in the step (a roll),
  ``t`` three (a triplet roll).
* bass: a chord-relative note, ``R`` root, ``2`` ninth, ``3`` chord third,
  ``4`` fourth, ``5`` fifth, ``6`` sixth, ``b`` minor seventh, ``7`` the
  chord's seventh (minor seventh if the chord has none), ``8`` octave, ``L``
  approach tone (a semitone below or above the next chord's root), ``W``
  walking-bass choice; ``-`` holds the previous note, ``.`` rest.
* chords: ``X``/``x``/``o``/``g`` the whole voicing (accent, normal, soft, ghost), digits
  ``1``..``9`` one voicing tone counted from the bottom (wrapping upwards by
  octaves), ``-`` hold, ``.`` rest.
* melody and voice: ``N`` accented note, ``n`` note, ``?`` a note half of the
  time, ``-`` hold, ``.`` rest.

Chord symbols are Roman numerals relative to the key's tonic: case gives the
third (``IV`` major, ``iv`` minor), ``b``/``#`` before the numeral shift the
root, and suffixes add ``7`` (dominant on upper case, minor seventh on lower
case), ``M7`` (major seventh), ``7b5`` (half-diminished), ``o`` (diminished),
``5`` (power chord), ``sus4``, ``add9``. A progression is one token per bar;
``ii7,V7`` splits a bar evenly between two chords.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

__all__ = [
    "DRUMS",
    "SCALES",
    "Groove",
    "Part",
    "Style",
    "Genre",
    "GENRES",
    "GTZAN_GENRES",
    "GENG_GENRES",
    "genre_names",
    "get_genre",
    "UnknownGenreError",
    "validate_style",
]

#: General MIDI percussion key numbers (channel 10) by the names grooves use.
DRUMS: dict[str, int] = {
    "kick2": 35, "kick": 36, "rim": 37, "snare": 38, "clap": 39, "esnare": 40,
    "floor": 41, "hat": 42, "floor_hi": 43, "pedal": 44, "tom_lo": 45,
    "open": 46, "tom_mid": 47, "tom_hm": 48, "crash": 49, "tom_hi": 50,
    "ride": 51, "china": 52, "bell": 53, "tamb": 54, "splash": 55,
    "cowbell": 56, "crash2": 57, "bongo_hi": 60, "bongo_lo": 61,
    "conga_mute": 62, "conga_hi": 63, "conga_lo": 64, "cabasa": 69,
    "shaker": 70, "claves": 75, "wood_hi": 76, "wood_lo": 77,
}

#: Scale intervals in semitones above the tonic.
SCALES: dict[str, tuple[int, ...]] = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
    "phrygian": (0, 1, 3, 5, 7, 8, 10),
    "harmonic": (0, 2, 3, 5, 7, 8, 11),
    "blues": (0, 3, 5, 6, 7, 10),
    "majpent": (0, 2, 4, 7, 9),
    "minpent": (0, 3, 5, 7, 10),
}

# Kits in the GM/GS bank 128 that FluidR3_GM (and most GM soundfonts) carry.
KIT_STANDARD, KIT_ROOM, KIT_POWER, KIT_ELECTRONIC, KIT_808, KIT_JAZZ, KIT_BRUSH = (
    0, 8, 16, 24, 25, 32, 40)


@dataclass(frozen=True)
class Groove:
    """A drum pattern: drum name (a key of :data:`DRUMS`) -> step string."""

    name: str
    hits: dict[str, str]


@dataclass(frozen=True)
class Part:
    """One pitched instrument's role in a style.

    Parameters
    ----------
    role : str
        Unique within a style; names the track and the corpus.json entry.
    kind : {'bass', 'chord', 'melody', 'voice'}
        Which note generator plays it (see the module docstring).
    programs : tuple of int
        Candidate GM programs (0-based); a song draws one.
    register : (int, int)
        Lowest and highest MIDI pitch the part aims for.
    patterns : tuple of str
        Candidate step strings; a song draws one per section.
    velocity : (int, int)
        Velocity for a soft (``o``) and an accented (``X``/``N``) note.
    presence : float
        Probability the part plays in a song at all.
    sections : str
        Section labels the part plays in (``"AB"`` both, ``"B"`` only the
        louder B sections: how quiet-loud forms and solos come in).
    voicing : str
        Chord voicing for ``chord`` parts: 'triad', 'seventh', 'power',
        'shell', 'open', 'add9', 'octave'.
    legato : float
        Sounding fraction of a note's written length (0.3 staccato, 1 tied).
    volume : int
        CC7 channel volume.
    bend : float
        Probability a melody note is bent up into from a tone below.
    scale : str, optional
        Melody scale (a key of :data:`SCALES`); default is the progression's mode.
    chorus : int
        CC93 chorus send.
    """

    role: str
    kind: str
    programs: tuple[int, ...]
    register: tuple[int, int]
    patterns: tuple[str, ...]
    velocity: tuple[int, int] = (70, 105)
    presence: float = 1.0
    sections: str = "AB"
    voicing: str = "triad"
    legato: float = 0.9
    volume: int = 100
    bend: float = 0.0
    scale: str | None = None
    chorus: int = 0


@dataclass(frozen=True)
class Style:
    """One feel of a genre: everything a song of that feel draws from.

    Parameters
    ----------
    name : str
        Feel name, e.g. 'shuffle', 'waltz'.
    tempo : (float, float)
        Tempo range in quarter notes per minute.
    meter : (int, int)
        Time signature; the beat is always a quarter note here.
    grid : int
        Steps per beat in all step strings: 4 (sixteenths) or 3 (triplets).
    swing : (float, float)
        Range of the swing amount: 0 straight, 1 full triplet swing.
    swing_unit : int
        8: the off-beat eighth is delayed; 16: off-beat sixteenths are.
    kits : tuple of int
        Candidate drum kits (GM bank 128 programs); empty for no drums.
    grooves : tuple of Groove
        Candidate grooves; a song draws one for A and one for B sections.
    fill_voices : tuple of str
        Drums a fill walks through, high to low.
    fill_prob : float
        Probability of a fill in the last bar of a section.
    crash : bool
        Whether a crash cymbal marks section starts.
    keys : tuple of int
        Candidate tonic pitch classes (0 = C).
    progressions : tuple of (str, str)
        Candidate (mode, progression) pairs; mode is a key of :data:`SCALES`.
    parts : tuple of Part
    humanize_ms : float
        Standard deviation of timing jitter for non-drum parts, in ms (drums
        get half of it).
    velocity_jitter : float
        Standard deviation of velocity jitter.
    reverb : (int, int)
        Range of the CC91 reverb send.
    pump : bool
        Side-chain style ducking (CC11) of pads and bass on every beat.
    swells : bool
        Phrase-long crescendo/decrescendo (CC11) on all parts.
    weight : float
        Relative probability of this feel within its genre.
    """

    name: str
    tempo: tuple[float, float]
    progressions: tuple[tuple[str, str], ...]
    parts: tuple[Part, ...]
    meter: tuple[int, int] = (4, 4)
    grid: int = 4
    swing: tuple[float, float] = (0.0, 0.0)
    swing_unit: int = 8
    kits: tuple[int, ...] = (KIT_STANDARD,)
    grooves: tuple[Groove, ...] = ()
    fill_voices: tuple[str, ...] = ("snare", "tom_hi", "tom_mid", "floor")
    fill_prob: float = 0.6
    crash: bool = True
    keys: tuple[int, ...] = tuple(range(12))
    humanize_ms: float = 6.0
    velocity_jitter: float = 6.0
    reverb: tuple[int, int] = (20, 50)
    pump: bool = False
    swells: bool = False
    weight: float = 1.0

    @property
    def steps_per_bar(self) -> int:
        """Grid steps in one bar (quarter-note beats x grid)."""
        return self.meter[0] * 4 // self.meter[1] * self.grid


@dataclass(frozen=True)
class Genre:
    """A genre label and the feels that make it up."""

    name: str
    description: str
    styles: tuple[Style, ...]
    sources: tuple[str, ...] = field(default=())


def G(name: str, **hits: str) -> Groove:
    """Shorthand for a :class:`Groove` with drum names as keywords."""
    return Groove(name, dict(hits))


# ---------------------------------------------------------------------------
# Blues: 12-bar forms, shuffle on a triplet grid, dominant sevenths, bends.

_BLUES_PROGS = (
    ("mixolydian", "I7 I7 I7 I7 IV7 IV7 I7 I7 V7 IV7 I7 V7"),
    ("mixolydian", "I7 IV7 I7 I7 IV7 IV7 I7 I7 V7 IV7 I7 V7"),
    ("mixolydian", "I7 IV7 I7 I7 IV7 IV7 I7 VI7 ii7 V7 I7 V7"),
    ("minor", "i7 i7 i7 i7 iv7 iv7 i7 i7 bVI7 V7 i7 V7"),
)
_BLUES_BASS = Part(
    "bass", "bass", (33, 32, 34), (28, 52),
    ("R.35.6b.65.3", "W--W--W--W--", "R--R-58--5-L", "R.RR.R5.5b.6"),
    velocity=(70, 100), legato=0.85)
_BLUES_KEYS = Part(
    "keys", "chord", (0, 16, 4, 17, 1), (50, 74),
    ("..x..x..x..x", "x-.x-.x-.x-.", "X--------..x", "..o..x..o..x"),
    velocity=(50, 85), voicing="seventh", legato=0.7, volume=90)
_BLUES_RHYTHM = Part(
    "rhythm", "chord", (29, 27, 26, 30), (40, 62),
    ("x.xx.xx.xx.x", "X-.x-.X-.x-."), velocity=(60, 95), presence=0.75,
    voicing="power", legato=0.7, volume=85)
_BLUES_LEAD = Part(
    "lead", "melody", (22, 29, 27, 22, 29, 30), (57, 84),
    ("n.nn.n..nn..", "N--..nn.n--.", "..nn.nN-----", "n-.n-.n-.N--", "N-----..nn.n"),
    velocity=(70, 110), presence=1.0, scale="blues", bend=0.35, volume=105)

BLUES = Genre("blues", "12-bar shuffles and slow blues: swung triplet feel, dominant sevenths, "
              "boogie or walking bass, harmonica/guitar lead with bends", (
    Style(
        "shuffle", (84, 126), _BLUES_PROGS,
        (_BLUES_BASS, _BLUES_KEYS, _BLUES_RHYTHM, _BLUES_LEAD),
        grid=3, kits=(KIT_STANDARD, KIT_ROOM),
        grooves=(
            G("shuffle", hat="x.xx.xx.xx.x", kick="x.....x.....", snare="...X..g..X.?"),
            G("ride-shuffle", ride="X.xx.xX.xx.x", kick="x..?..x..?..", snare="...X.....X..",
              pedal="...x.....x.."),
        ), keys=(4, 9, 7, 2, 0, 5, 10), reverb=(30, 60), humanize_ms=10),
    Style(
        "slow-blues", (56, 76), _BLUES_PROGS,
        (_BLUES_BASS, _BLUES_KEYS, _BLUES_LEAD),
        grid=3, kits=(KIT_STANDARD, KIT_ROOM),
        grooves=(
            G("12/8", hat="Xxxxxxxxxxxx", kick="x.....x..x..", snare="...X.....X.."),
            G("12/8-ride", ride="Xxxxxxxxxxxx", kick="x.....x.....", snare="...X.....X.g"),
        ), keys=(4, 9, 7, 2, 0, 5, 10), reverb=(40, 70), humanize_ms=12, weight=0.6),
), ("GTZAN",))

# ---------------------------------------------------------------------------
# Jazz: swing ride on a triplet grid, walking bass, seventh-chord comping.

_JAZZ_PROGS = (
    ("major", "ii7 V7 IM7 IM7"),
    ("major", "IM7 vi7 ii7 V7"),
    ("major", "iii7 vi7 ii7 V7"),
    ("major", "IM7 VI7 ii7 V7"),
    ("major", "ii7 V7 IM7 VI7 ii7 V7 IM7 IM7"),
    ("minor", "ii7b5 V7 i7 i7"),
    ("dorian", "i7 i7 IV7 IV7"),
    ("minor", "i7 iv7 ii7b5,V7 i7"),
)
_JAZZ_BASS = Part(
    "bass", "bass", (32, 32, 33), (28, 55),
    ("W--W--W--W--", "W--W--W-WW--", "W--W--W--W-W"), velocity=(70, 100), legato=0.9)
_JAZZ_COMP = Part(
    "comp", "chord", (0, 4, 26, 11, 0), (50, 74),
    ("..x.....x...", "x-.....x-...", ".....x...x..", "..o..x......", "...x-.....x."),
    velocity=(45, 85), voicing="shell", legato=0.8, volume=85)
_JAZZ_LEAD = Part(
    "lead", "melody", (66, 65, 56, 57, 11, 73, 71, 26), (55, 84),
    ("n.nn.nn.nn.n", "N--..nn.n...", "n.nn.nN--...", "..nn.nn.nN--", "N-----n.nn.n"),
    velocity=(60, 105), presence=0.85, volume=100)

JAZZ = Genre("jazz", "swing: ride cymbal 'ding ding-a ding', hi-hat on 2 and 4, walking "
             "acoustic bass, piano/guitar comping, sax/trumpet/vibes lines over ii-V-I", (
    Style(
        "swing", (112, 220), _JAZZ_PROGS, (_JAZZ_BASS, _JAZZ_COMP, _JAZZ_LEAD),
        grid=3, kits=(KIT_JAZZ, KIT_BRUSH),
        grooves=(
            G("ride", ride="X..x.xX..x.x", pedal="...x.....x..", kick="g.....g.....",
              snare="....?.....?."),
            G("ride2", ride="x..X.xx..X.x", pedal="...x.....x..", kick="g..g..g..g..",
              snare="..?.......?."),
            G("brushes", snare="gggggggggggg", ride="X..x.xX..x.x", pedal="...x.....x.."),
        ), fill_voices=("snare", "tom_hi", "tom_lo"), fill_prob=0.4, crash=False,
        keys=(5, 10, 3, 0, 8, 7, 2), humanize_ms=12, velocity_jitter=10, reverb=(40, 80)),
    Style(
        "jazz-waltz", (110, 180), _JAZZ_PROGS,
        (Part("bass", "bass", (32,), (28, 55), ("W--W--W--", "W-----W--"), velocity=(70, 100)),
         Part("comp", "chord", (0, 4, 26), (50, 74), ("...x-.x-.", "x-....x..", "...o..x.."),
              velocity=(45, 85), voicing="shell", legato=0.8, volume=85),
         replace(_JAZZ_LEAD, patterns=("n.nn.nn.n", "N--..nn.n", "..nn.nN--", "N-----n.n"))),
        meter=(3, 4), grid=3, kits=(KIT_JAZZ, KIT_BRUSH),
        grooves=(G("waltz", ride="X..x.xx..", pedal="...x..x..", kick="g........"),),
        fill_voices=("snare", "tom_hi"), fill_prob=0.3, crash=False,
        keys=(5, 10, 3, 0, 8), humanize_ms=12, velocity_jitter=10, reverb=(40, 80), weight=0.35),
), ("GTZAN",))

# ---------------------------------------------------------------------------
# Country: boom-chick bass, train beats, acoustic strums, banjo rolls, fiddle.

_COUNTRY_PROGS = (
    ("major", "I I IV IV I I V V"),
    ("major", "I IV V I"),
    ("major", "I I IV I V IV I I"),
    ("major", "I V IV I"),
    ("major", "I vi IV V"),
    ("mixolydian", "I bVII IV I"),
)
COUNTRY = Genre("country", "two-beat and train-beat grooves, boom-chick bass, strummed "
                "acoustic guitar, banjo rolls, fiddle/harmonica leads, major keys", (
    Style(
        "two-beat", (96, 144), _COUNTRY_PROGS,
        (Part("bass", "bass", (33, 32, 34), (28, 50),
              ("R.......5.......", "R...5...R...5...", "R.......5.....L.", "R...5...8...5..."),
              velocity=(75, 100), legato=0.7),
         Part("strum", "chord", (25, 24), (50, 74),
              ("X.x.X.xxX.x.X.xx", "x...x.x.x...x.x.", "X-x-X-x-X-x-X-x-"),
              velocity=(55, 90), voicing="open", legato=0.6, volume=95),
         Part("banjo", "chord", (105, 107), (55, 79),
              ("1243124312431243", "1324132413241324", "1234323412343234"),
              velocity=(55, 85), presence=0.5, voicing="triad", legato=0.5, volume=80),
         Part("piano", "chord", (3, 0), (55, 79), ("..x...x...x...x.", "x.x...x.x.x...x."),
              velocity=(50, 80), presence=0.4, legato=0.4, volume=80),
         Part("lead", "melody", (40, 22, 25, 27, 105), (60, 86),
              ("n.n.n.nnN---n.n.", "N---n.n.n.n.N---", "n.nnn.n.N-------", "..n.n.n.N---n-n-"),
              velocity=(70, 105), presence=0.85, scale="majpent", bend=0.15, volume=100)),
        kits=(KIT_STANDARD, KIT_BRUSH, KIT_ROOM),
        grooves=(
            G("two-beat", kick="x.......x.......", snare="....x.......x...", hat="x.x.x.x.x.x.x.x."),
            G("train", kick="x.......x.......", snare="g.gXg.g.g.gXg.g.", hat="x...x...x...x..."),
            G("rim", kick="x.....x.x.......", rim="....x.......x...", hat="x.x.x.x.x.x.x.x.",
              tamb="....x.......x..."),
        ), keys=(7, 9, 2, 0, 4, 5), reverb=(20, 45)),
    Style(
        "country-waltz", (84, 126), _COUNTRY_PROGS,
        (Part("bass", "bass", (33, 32), (28, 50), ("R.......5...", "R.......3..."),
              velocity=(75, 100), legato=0.7),
         Part("strum", "chord", (25, 24), (50, 74), ("x...x-..x-..", "X...x.x.x.x."),
              velocity=(55, 90), voicing="open", legato=0.6, volume=95),
         Part("lead", "melody", (40, 22, 25), (60, 86),
              ("N-------n-n-", "n-n-n-N-----", "N---n-n-n-n-"),
              velocity=(70, 105), presence=0.85, scale="major", bend=0.1, volume=100)),
        meter=(3, 4), kits=(KIT_STANDARD, KIT_BRUSH),
        grooves=(G("waltz", kick="x...........", snare="....x...x...", hat="x.x.x.x.x.x."),),
        fill_prob=0.3, keys=(7, 9, 2, 0, 4, 5), reverb=(25, 50), weight=0.35),
), ("GTZAN",))

# ---------------------------------------------------------------------------
# Disco: four-on-the-floor, open hat off-beats, octave bass, strings, funk guitar.

DISCO = Genre("disco", "four-on-the-floor kick, open hi-hat on the off-beats, octave bass, "
              "string stabs, muted 16th funk guitar, brass", (
    Style(
        "disco", (110, 130),
        (("dorian", "i7 iv7"), ("dorian", "i7 i7 iv7 iv7"), ("major", "IM7 ii7 iii7 ii7"),
         ("minor", "vi7 ii7 V7 IM7"), ("dorian", "i7 IV7"), ("major", "ii7 V7 IM7 IM7"),
         ("minor", "i7 bVII bVI V7")),
        (Part("bass", "bass", (33, 36, 38, 34), (28, 52),
              ("R.8.R.8.R.8.R.8.", "R8.8R8.8R8.8R8.8", "R.8.R.8.5.8.L.8.", "R.8.R.8.b.8.5.8."),
              velocity=(80, 110), legato=0.5),
         Part("guitar", "chord", (28, 27), (60, 84),
              ("x.xgx.xgx.xgx.xg", ".x.x.x.x.x.x.x.x", "x.x.xx.xx.x.xx.x"),
              velocity=(45, 80), legato=0.3, volume=85, chorus=30),
         Part("strings", "chord", (48, 49, 50), (60, 88),
              ("X-------..x.x-..", "x---------------", "X-..X-.x........"),
              velocity=(60, 95), presence=0.85, voicing="open", legato=0.95, volume=90),
         Part("brass", "chord", (61, 62, 56), (58, 82), ("......X.X-......", "X.X.....X-.X...."),
              velocity=(70, 105), presence=0.45, sections="B", legato=0.6, volume=90),
         Part("epiano", "chord", (4, 5), (55, 76), ("x-..x-..x-..x-..", "..x...x...x...x."),
              velocity=(50, 80), presence=0.35, voicing="seventh", legato=0.7, volume=80),
         Part("lead", "melody", (48, 73, 61, 80, 53), (62, 86),
              ("n.n.n.n.N---n-n-", "N---..n.n.n.N---", "..nnn.n-N---...."),
              velocity=(70, 105), presence=0.6, sections="B", volume=95)),
        swing=(0.0, 0.12), swing_unit=16, kits=(KIT_STANDARD, KIT_ROOM, KIT_ELECTRONIC),
        grooves=(
            G("disco", kick="x...x...x...x...", snare="....x.......x...", hat="x.g.x.g.x.g.x.g.",
              open="..x...x...x...x."),
            G("disco-tamb", kick="x...x...x...x...", clap="....x.......x...", hat="xgxgxgxgxgxgxgxg",
              open="..x...x...x...x.", tamb="....x.......x..."),
            G("disco-cowbell", kick="x...x...x...x...", snare="....x.......x...",
              open="..x...x...x...x.", cowbell="x.x.x.x.x.x.x.x.", hat="gxgxgxgxgxgxgxgx"),
        ), fill_voices=("snare", "tom_hi", "tom_mid", "tom_lo"), keys=tuple(range(12)),
        humanize_ms=4, reverb=(25, 50)),
), ("GTZAN",))

# ---------------------------------------------------------------------------
# Electronica: machine drums, synth bass, arpeggiators, pumping pads, no humans.

_EL_PROGS = (
    ("minor", "i i bVI bVI bVII bVII i i"), ("minor", "i bVII bVI bVII"),
    ("minor", "i i iv iv"), ("minor", "i bIII bVII iv"), ("dorian", "i7 i7 IV7 IV7"),
    ("minor", "i i i i bVI bVI bVII bVII"), ("phrygian", "i bII i i"),
)
_EL_PAD = Part("pad", "chord", (89, 90, 91, 95, 88, 50, 94), (55, 79),
               ("x---------------", "x-------x-------"), velocity=(50, 80), voicing="add9",
               legato=1.0, volume=85, chorus=40)
_EL_ARP = Part("arp", "chord", (80, 81, 84, 62, 87, 98), (60, 86),
               ("1231231231231231", "1324132413241324", "1.2.3.4.3.2.1.2.", "1.3.2.4.5.4.3.2."),
               velocity=(55, 90), presence=0.85, voicing="seventh", legato=0.5, volume=85)
_EL_LEAD = Part("lead", "melody", (80, 81, 84, 86, 82), (62, 86),
                ("N---n.n.N---n-n-", "n.n.n.n.N-------", "N-..n-..N-..n-.."),
                velocity=(70, 100), presence=0.45, sections="B", volume=90)
ELECTRONICA = Genre("electronica", "house/techno/trance/breaks: machine drum kits, synth "
                    "bass, 16th arpeggios, side-chain pumping pads, quantised", (
    Style(
        "house", (120, 130), _EL_PROGS,
        (Part("bass", "bass", (38, 39, 87), (28, 50),
              ("..R...R...R...R.", "R.R.8.R.R.R.8.R.", "..R-..R-..5-..R-"),
              velocity=(80, 110), legato=0.6, volume=105),
         _EL_PAD, _EL_ARP, _EL_LEAD),
        kits=(KIT_ELECTRONIC, KIT_808),
        grooves=(
            G("house", kick="x...x...x...x...", clap="....x.......x...", open="..x...x...x...x.",
              hat="gxgxgxgxgxgxgxgx"),
            G("techno", kick="X...x...X...x...", rim="...x..x....x..x.", hat="xxxxxxxxxxxxxxxx",
              clap="....x.......x..."),
        ), fill_voices=("clap", "snare"), fill_prob=0.5, humanize_ms=0, velocity_jitter=2,
        reverb=(30, 60), pump=True),
    Style(
        "trance", (132, 142), _EL_PROGS,
        (Part("bass", "bass", (38, 39), (28, 50), (".RRR.RRR.RRR.RRR", "..R...R...R...R."),
              velocity=(80, 110), legato=0.5, volume=100),
         _EL_PAD, _EL_ARP, _EL_LEAD),
        kits=(KIT_ELECTRONIC, KIT_808),
        grooves=(G("trance", kick="x...x...x...x...", clap="....x.......x...",
                   open="..x...x...x...x.", hat="xxxxxxxxxxxxxxxx"),),
        fill_voices=("snare", "clap"), fill_prob=0.6, humanize_ms=0, velocity_jitter=2,
        reverb=(40, 70), pump=True, weight=0.6),
    Style(
        "breaks", (128, 140), _EL_PROGS,
        (Part("bass", "bass", (38, 39, 87), (28, 50), ("R-----R-..R-----", "R--.R--.....R-.."),
              velocity=(80, 110), legato=0.9, volume=100),
         _EL_PAD, _EL_ARP, _EL_LEAD),
        kits=(KIT_ELECTRONIC, KIT_808),
        grooves=(G("breakbeat", kick="x.....x...x.....", snare="....x.......x..x",
                   hat="xxxxxxxxxxxxxxxx"),
                 G("breakbeat2", kick="x.x.......x..x..", snare="....x..x.x..x...",
                   hat="x.x.x.x.x.x.x.x.", open="..............x.")),
        fill_voices=("snare",), fill_prob=0.5, humanize_ms=0, velocity_jitter=3,
        reverb=(30, 60), pump=True, weight=0.5),
), ("Geng et al. 2017",))

# ---------------------------------------------------------------------------
# Hip-hop: boom-bap at 84-100 BPM, swung 16ths, jazzy sample loops, a rapper.

_RAP_VOICE = Part(
    "voice", "voice", (53, 54, 52, 85), (50, 64),
    ("nnn.nnnnn.nn.nnn", ".nnnn.nn.nnn.n..", "nn.nnn.nnn.nnn..", "n.n.nnn.n.n.nn.."),
    velocity=(65, 100), presence=0.75, legato=0.55, volume=100)
HIPHOP = Genre("hiphop", "boom-bap: swung 16ths at 84-100 BPM, hard snare on 2 and 4, "
               "syncopated kick, jazzy electric-piano/vibes loops, rap voice", (
    Style(
        "boom-bap", (82, 100),
        (("dorian", "i7 i7 iv7 iv7"), ("minor", "i7 bVII7"), ("major", "ii7 V7"),
         ("minor", "i7 bVIM7"), ("dorian", "i7 IV7"), ("major", "IM7 IM7 iv7 iv7"),
         ("minor", "i7 i7 bVI7 V7")),
        (Part("bass", "bass", (33, 38, 32, 35), (28, 48),
              ("R.....R..R......", "R-----..R.5.....", "R--.....R-..5-..", "R......R..R...L."),
              velocity=(80, 110), legato=0.85, volume=105),
         Part("loop", "chord", (4, 11, 0, 26, 48, 5), (50, 74),
              ("x-----..x-......", "X---------------", ".......x-...x---", "x--.x--.....x-.."),
              velocity=(55, 90), voicing="seventh", legato=0.9, volume=90),
         Part("stab", "chord", (61, 73, 48, 56), (60, 82), ("......x.....x...", "x.........x....."),
              velocity=(60, 95), presence=0.35, legato=0.4, volume=80),
         _RAP_VOICE),
        swing=(0.15, 0.5), swing_unit=16, kits=(KIT_STANDARD, KIT_ROOM, KIT_808),
        grooves=(
            G("boom-bap", kick="x.......x.x.....", snare="....X.......X...", hat="x.x.x.x.x.x.x.x."),
            G("boom-bap2", kick="x..x......x.....", snare="....X.......X..g", hat="xgxgxgxgxgxgxgxg"),
            G("boom-bap3", kick="x.....x..xx.....", snare="....X.......X...", hat="x.x.x.x.x.x.x.x.",
              open="..............x."),
            G("boom-bap-shaker", kick="x......x..x.....", snare="....X.......X...",
              shaker="x.x.x.x.x.x.x.x."),
        ), fill_prob=0.2, crash=False, fill_voices=("snare", "kick"), humanize_ms=6,
        reverb=(15, 40)),
), ("GTZAN",))

# ---------------------------------------------------------------------------
# Rap: trap and drill, 808 kit, half-time claps, hi-hat rolls, sub bass, bells.

_TRAP_PROGS = (
    ("minor", "i i bVI bVI"), ("minor", "i i iv iv"), ("phrygian", "i bII i bII"),
    ("harmonic", "i i V V"), ("minor", "i bVII bVI bVII"), ("harmonic", "i iv bVI V"),
)
_TRAP_PARTS = (
    Part("808", "bass", (38, 39, 87, 81), (24, 43),
         ("R-----.R-----...", "R-------.5-----.", "R-----R---8-----", "R--.....R-----.."),
         velocity=(90, 115), legato=1.0, volume=110),
    Part("bells", "chord", (10, 8, 9, 0, 45, 46, 11), (64, 88),
         ("1...3...2...3...", "1.2.3.2.1.2.3.2.", "3...2...1-------", "1..2..3.1..2..3."),
         velocity=(55, 90), voicing="triad", legato=0.9, volume=85),
    Part("pad", "chord", (52, 48, 95, 91, 89), (55, 76), ("x-------x-------",),
         velocity=(40, 70), presence=0.5, voicing="triad", legato=1.0, volume=75),
    Part("voice", "voice", (53, 54, 52, 85), (50, 64),
         ("nnnnnnnn.nnn.nnn", "n.nnn.nnn.nnnn..", "nnn.nnn.nn.n.nnn", "..nnnnnn.n.nnnn."),
         velocity=(65, 100), presence=0.9, legato=0.5, volume=100),
)
RAP = Genre("rap", "trap and drill: TR-808 kit, half-time clap, rolling hi-hats, long "
            "sub-bass 808 notes, dark bell/piano loops, rapid rap voice", (
    Style(
        "trap", (130, 160), _TRAP_PROGS, _TRAP_PARTS,
        kits=(KIT_808, KIT_ELECTRONIC),
        grooves=(
            G("trap", kick="x......x..x.....", clap="........X.......", hat="x.x.x.x.x.x.xrx."),
            G("trap2", kick="x.....x...x..x..", clap="........X.......", hat="xxxxxxrrxxxxtttt"),
            G("trap3", kick="x..x......x.....", clap="........X.......", hat="x.x.x.xtx.x.x.x.",
              open="..............x."),
        ), fill_voices=("clap", "hat"), fill_prob=0.3, crash=False, humanize_ms=0,
        velocity_jitter=4, reverb=(15, 40)),
    Style(
        "drill", (138, 146), _TRAP_PROGS, _TRAP_PARTS,
        kits=(KIT_808,),
        grooves=(G("drill", kick="x.....x.....x...", snare="........X..x....",
                   hat="x..x..x.x..x.x..", rim="...x.......x...."),),
        fill_voices=("snare",), fill_prob=0.2, crash=False, humanize_ms=0,
        velocity_jitter=4, reverb=(15, 40), weight=0.5),
), ("Geng et al. 2017",))

# ---------------------------------------------------------------------------
# Reggae: one-drop, skank on the off-beats, deep bass, organ bubble, horns.

REGGAE = Genre("reggae", "one-drop, rockers and steppers at 64-86 BPM: kick and rim on 3, "
               "guitar skank and organ bubble on the off-beats, deep melodic bass", (
    Style(
        "one-drop", (64, 86),
        (("major", "I IV I V"), ("major", "I I IV IV"), ("minor", "i iv i iv"),
         ("minor", "i bVII i bVII"), ("major", "I ii IV V"), ("dorian", "i7 IV7"),
         ("major", "I vi IV V")),
        (Part("bass", "bass", (33, 34, 35, 38), (28, 45),
              ("R-..R.5.8-..5.R.", "..R-..5.R...L...", "R.....R.5.8-....", "R-.RR-..5-.5R-.."),
              velocity=(85, 110), legato=0.8, volume=110),
         Part("skank", "chord", (27, 28, 26), (60, 79), ("....x.......x...", "....x.x.....x.x."),
              velocity=(60, 95), legato=0.25, volume=85),
         Part("organ", "chord", (16, 17, 18), (55, 76), ("..g.x.g...g.x.g.", "....x-x-....x-x-"),
              velocity=(45, 80), presence=0.7, legato=0.35, volume=80),
         Part("horns", "melody", (56, 57, 65, 22, 20, 21), (58, 82),
              ("n-..n-.nN---....", "....n.n.n-..N---", "N---n-n-n---....", "n.n.N-----..n.n."),
              velocity=(65, 100), presence=0.6, sections="B", volume=90)),
        swing=(0.25, 0.6), swing_unit=16, kits=(KIT_STANDARD, KIT_ROOM),
        grooves=(
            G("one-drop", kick="........x.......", rim="........x.......", hat="x.x.x.x.x.x.x.x."),
            G("rockers", kick="x.......x.......", rim="........x.......", hat="x.x.x.x.x.x.xox."),
            G("steppers", kick="x...x...x...x...", rim="........x.......", hat="..x...x...x...x."),
        ), fill_voices=("snare", "tom_hi", "tom_lo"), fill_prob=0.3, crash=False,
        keys=(7, 9, 2, 0, 5, 4, 10), humanize_ms=8, reverb=(30, 60)),
), ("GTZAN",))

# ---------------------------------------------------------------------------
# Rock, metal and alternative share distorted guitars but differ in tempo,
# register, drum density and form.

_ROCK_PROGS = (
    ("major", "I IV V IV"), ("mixolydian", "I bVII IV I"), ("major", "I V vi IV"),
    ("minor", "vi IV I V"), ("minor", "i bVII bVI bVII"), ("major", "I IV I V"),
    ("minor", "i bIII bVII IV"),
)
_ROCK_PARTS = (
    Part("bass", "bass", (34, 33), (28, 50),
         ("R.R.R.R.R.R.R.R.", "R.R.R.R.5.5.R.L.", "R-R-R-R-R-R-R-R-", "R...R.R.R...R.5."),
         velocity=(85, 110), legato=0.85, volume=105),
    Part("guitar", "chord", (29, 29, 30), (40, 64),
         ("X.x.x.x.X.x.x.x.", "X-------X---x-x-", "X.x.x.xxX.x.x.xx", "X-x-x-x-X-x-x-x-"),
         velocity=(80, 110), voicing="power", legato=0.8, volume=100),
    Part("keys", "chord", (18, 0, 16, 27), (55, 76), ("x-------x-------", "1.3.2.3.1.3.2.3."),
         velocity=(50, 80), presence=0.35, legato=0.9, volume=75),
    Part("lead", "melody", (29, 29, 30), (60, 86),
         ("N---n.n.n-n.N---", "n.n.n.n.N-------", "N-n-n-n-N---n.n.", "..n.n.N---n.N---"),
         velocity=(80, 110), presence=0.7, sections="B", scale="minpent", bend=0.3, volume=95),
)
ROCK = Genre("rock", "straight-eighth backbeat with crashes, overdriven power chords in "
             "eighths, root-note bass, pentatonic lead with bends", (
    Style(
        "rock", (108, 150), _ROCK_PROGS, _ROCK_PARTS, kits=(KIT_STANDARD, KIT_ROOM, KIT_POWER),
        grooves=(
            G("backbeat", kick="x.......x.x.....", snare="....X.......X...", hat="x.x.x.x.x.x.x.x."),
            G("backbeat-ride", kick="x.x.....x.x.....", snare="....X.......X...",
              ride="x.x.x.x.x.x.x.x."),
            G("driving", kick="x...x...x...x...", snare="....X.......X...", hat="xxxxxxxxxxxxxxxx"),
        ), keys=(4, 9, 2, 7, 0, 11), reverb=(20, 45)),
    Style(
        "punk", (160, 190), _ROCK_PROGS, _ROCK_PARTS[:2] + _ROCK_PARTS[3:],
        kits=(KIT_STANDARD, KIT_POWER),
        grooves=(G("punk", kick="x.x.x.x.x.x.x.x.", snare="....X.......X...",
                   hat="x.x.x.x.x.x.x.x."),),
        keys=(4, 9, 2, 7), reverb=(10, 30), weight=0.25),
), ("GTZAN", "Geng et al. 2017"))

_METAL_PROGS = (
    ("phrygian", "i bII i bII"), ("minor", "i i bVI bVII"), ("minor", "i5 bV5 i5 bII5"),
    ("harmonic", "i bVI V i"), ("minor", "i5 i5 bVII5 bVI5"), ("phrygian", "i i bII bIII"),
)
_METAL_LEAD = Part(
    "lead", "melody", (30, 29), (62, 91),
    ("nnnnnnnnnnnnnnnn", "N---nnnnN---nnnn", "n.n.nnnnN-------"),
    velocity=(85, 115), presence=0.5, sections="B", scale="harmonic", bend=0.1, volume=95)
_METAL_BASS = Part("bass", "bass", (33, 34), (24, 43),
                   ("RRRRRRRRRRRRRRRR", "R.RRR.RRR.RRR.RR", "R-R-R-R-R-R-R-R-"),
                   velocity=(90, 115), legato=0.8, volume=105)
METAL = Genre("metal", "fast double kick and blast beats, low palm-muted distortion chugs "
              "and gallops, phrygian/harmonic-minor riffs, shred leads", (
    Style(
        "double-kick", (140, 190), _METAL_PROGS,
        (_METAL_BASS,
         Part("guitar", "chord", (30, 30, 29), (33, 55),
              ("xxxxXxxxxxxxXxxx", "X.xxX.xxX.xxX.xx", "x.x.xxx.x.x.xxx.", "X-------xxxxxxxx"),
              velocity=(85, 115), voicing="power", legato=0.55, volume=105),
         _METAL_LEAD),
        kits=(KIT_POWER, KIT_STANDARD, KIT_ROOM),
        grooves=(
            G("double-kick", kick="xxxxxxxxxxxxxxxx", snare="....X.......X...", china="x...x...x...x..."),
            G("double-kick-ride", kick="xxxxxxxxxxxxxxxx", snare="....X.......X...",
              ride="x.x.x.x.x.x.x.x.", crash="x..............."),
            G("gallop", kick="x.xxx.xxx.xxx.xx", snare="....X.......X...", crash="x.......x......."),
        ), fill_voices=("snare", "tom_hi", "tom_mid", "tom_lo", "floor"), fill_prob=0.7,
        keys=(4, 2, 1, 0, 11, 9), humanize_ms=3, reverb=(15, 35)),
    Style(
        "thrash", (170, 215), _METAL_PROGS,
        (_METAL_BASS,
         Part("guitar", "chord", (30,), (33, 55), ("xxxxxxxxxxxxxxxx", "X.x.X.x.xxxxxxxx"),
              velocity=(85, 115), voicing="power", legato=0.5, volume=105),
         _METAL_LEAD),
        kits=(KIT_POWER, KIT_STANDARD),
        grooves=(
            G("skank", kick="x.x.x.x.x.x.x.x.", snare="..X...X...X...X.", crash="x...x...x...x..."),
            G("blast", kick="x.x.x.x.x.x.x.x.", snare=".x.x.x.x.x.x.x.x", ride="xxxxxxxxxxxxxxxx"),
        ), fill_voices=("snare", "tom_hi", "tom_mid", "floor"), fill_prob=0.6,
        keys=(4, 2, 0, 9), humanize_ms=3, reverb=(10, 30), weight=0.7),
), ("GTZAN",))

ALTERNATIVE = Genre("alternative", "quiet-loud forms: clean arpeggiated guitar verses, "
                    "distorted choruses, tom-heavy and half-time grooves, modal progressions", (
    Style(
        "quiet-loud", (84, 130),
        (("minor", "vi IV I V"), ("mixolydian", "I bVII IV I"), ("minor", "i bVI bIII bVII"),
         ("minor", "i iv bVI bVII"), ("major", "I iii IV iv"), ("major", "IM7 IV"),
         ("dorian", "i IV i IV")),
        (Part("bass", "bass", (34, 33), (28, 50),
              ("R.R.R.R.R.R.R.R.", "R---R.R.R---5.R.", "R-----R-R-----5-"),
              velocity=(80, 110), legato=0.85, volume=100),
         Part("clean", "chord", (27, 26, 24, 31), (52, 79),
              ("1.3.2.4.1.3.2.4.", "1-2-3-4-3-2-1-2-", "1..3..2.4..3..2."),
              velocity=(55, 90), voicing="add9", legato=1.0, volume=90, chorus=50),
         Part("dist", "chord", (30, 29), (40, 64), ("x-------x-------", "X.x.X.x.X.x.X.x.", "X-----x-X-----x-"),
              velocity=(85, 115), sections="B", voicing="power", legato=0.9, volume=105),
         Part("pad", "chord", (89, 49, 94, 19), (52, 76), ("x---------------",),
              velocity=(40, 70), presence=0.3, legato=1.0, volume=70),
         Part("lead", "melody", (85, 27, 53, 81, 65), (57, 81),
              ("N-------n.n.n---", "..n.n.N---..n-n-", "n-n-n-N-----...."),
              velocity=(65, 100), presence=0.6, volume=90)),
        kits=(KIT_STANDARD, KIT_ROOM, KIT_POWER),
        grooves=(
            G("toms", kick="x..x..x...x.....", snare="....x.......x...", floor="x.x.x.x.x.x.x.x."),
            G("indie", kick="x.....x.x.......", snare="....x.......x...", hat="xgxgxgxgxgxgxgxg"),
            G("half-time", kick="x.....x.........", snare="........X.......", ride="x.x.x.x.x.x.x.x."),
            G("crash-ride", kick="x.......x.x.....", snare="....X.......X...", crash="x...x...x...x..."),
        ), fill_voices=("snare", "tom_hi", "tom_lo", "floor"), keys=tuple(range(12)),
        reverb=(30, 60)),
), ("Geng et al. 2017",))

POP = Genre("pop", "bright major-key songs: I-V-vi-IV, clap backbeat or four-on-the-floor, "
            "piano/synth chords, plucked arpeggios, vocal-like lead melody", (
    Style(
        "pop", (96, 128),
        (("major", "I V vi IV"), ("minor", "vi IV I V"), ("major", "I vi IV V"),
         ("major", "IV V iii vi"), ("major", "I IV vi V"), ("major", "I iii IV V"),
         ("major", "IV I V vi")),
        (Part("bass", "bass", (33, 38, 39, 34), (28, 50),
              ("R.....R.R...R...", "R.R.R.R.R.R.R.R.", "R--.R--.R-..5...", "R-----R-R-----5-"),
              velocity=(80, 105), legato=0.8, volume=100),
         Part("keys", "chord", (0, 1, 5, 4, 88), (55, 79),
              ("X.x.x.x.X.x.x.x.", "x--.x--.x-..x...", "X---x---X---x---", "x-------x--.x---"),
              velocity=(55, 90), legato=0.9, volume=90),
         Part("pluck", "chord", (27, 46, 12, 8, 80, 108), (60, 86),
              ("1.2.3.2.1.2.3.2.", "1..2..3.1..2..3.", "3.2.1.2.3.2.1.2."),
              velocity=(50, 85), presence=0.6, legato=0.6, volume=80),
         Part("pad", "chord", (48, 50, 89, 92), (55, 79), ("x---------------",),
              velocity=(45, 75), presence=0.5, sections="B", legato=1.0, volume=75),
         Part("vocal", "melody", (53, 54, 85, 73, 80, 82), (60, 84),
              ("n.n.n-n.N---..n.", "..nnn.n-N---n.n.", "N-n-n-n-N---....", "n.n.n.n.N-n-N---"),
              velocity=(70, 105), presence=0.9, volume=100)),
        kits=(KIT_STANDARD, KIT_ROOM, KIT_ELECTRONIC),
        grooves=(
            G("pop", kick="x.....x.x.......", clap="....x.......x...", hat="x.x.x.x.x.x.x.x."),
            G("dance-pop", kick="x...x...x...x...", clap="....x.......x...", hat="..x...x...x...x.",
              shaker="xxxxxxxxxxxxxxxx"),
            G("pop-snare", kick="x..x....x.x.....", snare="....x.......x...", hat="xgxgxgxgxgxgxgxg",
              tamb="....x.......x..."),
        ), fill_voices=("snare", "tom_hi", "tom_mid"), fill_prob=0.4,
        keys=(0, 7, 2, 9, 4, 5, 10), humanize_ms=3, reverb=(30, 55)),
    Style(
        "ballad", (66, 84),
        (("major", "I V vi IV"), ("major", "I vi IV V"), ("major", "vi IV I V")),
        (Part("bass", "bass", (33, 35), (28, 50), ("R-------R---5---", "R-----R-R-------"),
              velocity=(75, 100), legato=0.95, volume=95),
         Part("piano", "chord", (0, 1), (52, 79), ("1.3.5.3.1.3.5.3.", "x---x---x---x---"),
              velocity=(50, 85), voicing="open", legato=1.0, volume=95),
         Part("pad", "chord", (48, 89, 49), (55, 79), ("x---------------",),
              velocity=(40, 70), presence=0.6, legato=1.0, volume=75),
         Part("vocal", "melody", (53, 54, 85, 73), (60, 84),
              ("n.n.n-n.N-------", "..n.n.n-N---n-n-", "N---n-n-N-------"),
              velocity=(65, 100), presence=0.9, volume=100)),
        kits=(KIT_STANDARD, KIT_ROOM),
        grooves=(G("ballad", kick="x.......x.x.....", snare="....x.......x...", hat="x.x.x.x.x.x.x.x."),
                 G("ballad-rim", kick="x.....x.........", rim="....x.......x...", hat="x.x.x.x.x.x.x.x.")),
        fill_prob=0.3, keys=(0, 7, 2, 9, 5, 10), humanize_ms=5, reverb=(40, 70), weight=0.35),
), ("GTZAN", "Geng et al. 2017"))

# ---------------------------------------------------------------------------
# Classical: no drums; strings, piano, harpsichord, winds; swelling dynamics.

_CL_PROGS = (
    ("major", "I IV V I"), ("major", "I vi ii V"), ("major", "I V vi iii IV I IV V"),
    ("harmonic", "i iv V i"), ("harmonic", "i VI iv V"), ("major", "I I IV V"),
    ("major", "vi ii V I"), ("major", "I IV viio iii vi ii V I"), ("harmonic", "i iv viio i"),
)
_CL_LEAD = Part("melody", "melody", (40, 73, 68, 71, 60, 41, 42, 0), (60, 88),
                ("N---n-n-n-n-N---", "n-n-n-n-N-------", "N-----n-n-n-n-n-", "N-------n---n---"),
                velocity=(55, 100), presence=0.9, legato=0.95, volume=95)
CLASSICAL = Genre("classical", "no drums: string chorales, Alberti and broken-chord piano, "
                  "baroque harpsichord/strings, minuets; woodwind/violin melodies, swells", (
    Style(
        "strings", (60, 96), _CL_PROGS,
        (Part("bass", "bass", (42, 43, 70, 45), (31, 55), ("R-------5-------", "R---5---R---5---"),
              velocity=(50, 90), legato=0.95, volume=95),
         Part("strings", "chord", (48, 49, 52, 60), (52, 79), ("x-------x-------", "x---------------"),
              velocity=(45, 90), voicing="open", legato=1.0, volume=95),
         _CL_LEAD),
        kits=(), crash=False, keys=(0, 2, 7, 9, 5, 10, 3), humanize_ms=15,
        velocity_jitter=5, reverb=(70, 110), swells=True),
    Style(
        "piano", (60, 100), _CL_PROGS,
        (Part("left", "chord", (0,), (36, 60), ("1323132313231323", "1.3.2.3.1.3.2.3.", "1.5.3.5.1.5.3.5."),
              velocity=(40, 75), voicing="open", legato=1.0, volume=95),
         Part("right", "melody", (0,), (60, 88),
              ("N---n-n-n-n-N---", "n.n.n.n.N---n-n-", "N-----n-n---n---"),
              velocity=(50, 95), legato=0.95, volume=100)),
        kits=(), crash=False, keys=(0, 2, 7, 9, 5, 10, 3, 4), humanize_ms=15,
        velocity_jitter=6, reverb=(60, 100), swells=True),
    Style(
        "baroque", (88, 120), _CL_PROGS,
        (Part("continuo", "bass", (6, 42, 43, 70), (31, 55), ("R.5.R.5.8.5.R.5.", "R-R-5-5-8-8-5-5-"),
              velocity=(55, 85), legato=0.7, volume=90),
         Part("harpsichord", "chord", (6, 46, 48), (55, 79),
              ("1232123212321232", "1.2.3.2.1.2.3.2."),
              velocity=(50, 80), legato=0.7, volume=90),
         Part("melody", "melody", (40, 73, 68, 56, 6), (62, 88),
              ("nnnnnnnnN---n-n-", "n-n-nnnnn-n-N---", "N-nnn-nnN-nnN---"),
              velocity=(60, 95), legato=0.85, volume=95)),
        kits=(), crash=False, keys=(0, 2, 7, 9, 4), humanize_ms=8, velocity_jitter=4,
        reverb=(60, 100), weight=0.7),
    Style(
        "minuet", (100, 144), _CL_PROGS,
        (Part("bass", "bass", (42, 43, 0, 45), (31, 55), ("R---5---5---", "R-------5---"),
              velocity=(50, 85), legato=0.9, volume=90),
         Part("accomp", "chord", (48, 0, 6, 49), (52, 76), ("....x---x---", "x---x---x---"),
              velocity=(40, 75), legato=0.8, volume=85),
         Part("melody", "melody", (40, 73, 68, 0, 71), (62, 88),
              ("N---n-n-n-n-", "n-n-N-------", "N-----n-n-n-"),
              velocity=(55, 95), legato=0.9, volume=95)),
        meter=(3, 4), kits=(), crash=False, keys=(0, 2, 7, 9, 5), humanize_ms=12,
        velocity_jitter=5, reverb=(60, 100), swells=True, weight=0.6),
), ("GTZAN",))

#: All genres by name, in a stable (alphabetical) order.
GENRES: dict[str, Genre] = {g.name: g for g in sorted(
    (ALTERNATIVE, BLUES, CLASSICAL, COUNTRY, DISCO, ELECTRONICA, HIPHOP, JAZZ, METAL,
     POP, RAP, REGGAE, ROCK), key=lambda g: g.name)}

#: The ten GTZAN genres (Tzanetakis & Cook 2002).
GTZAN_GENRES = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop",
                "reggae", "rock")
#: The five genres of Geng, Ren & Ogihara (2017).
GENG_GENRES = ("alternative", "electronica", "pop", "rap", "rock")


class UnknownGenreError(ValueError):
    """Raised for a genre name that is not in :data:`GENRES`."""


def genre_names() -> list[str]:
    """All known genre names, sorted."""
    return list(GENRES)


def get_genre(name: str) -> Genre:
    """Look a genre up by name (case-insensitive, surrounding space ignored).

    Raises
    ------
    UnknownGenreError
        Naming the bad genre and listing the known ones.
    """
    key = name.strip().lower()
    try:
        return GENRES[key]
    except KeyError:
        raise UnknownGenreError(
            f"unknown genre {name!r}; known genres: {', '.join(GENRES)}") from None


def validate_style(style: Style) -> None:
    """Check a style's internal consistency; raise ValueError naming the problem.

    Pattern lengths must tile the bar (divide it or be a multiple of it), drum
    and scale names must exist, ranges must be ordered.
    """
    bar = style.steps_per_bar
    where = f"style {style.name!r}"

    def fits(pattern: str, what: str, alphabet: str) -> None:
        n = len(pattern)
        if n == 0 or not (bar % n == 0 or n % bar == 0):
            raise ValueError(f"{where}: {what} pattern {pattern!r} has {n} steps, "
                             f"which does not tile a bar of {bar}")
        bad = set(pattern) - set(alphabet)
        if bad:
            raise ValueError(f"{where}: {what} pattern {pattern!r} has unknown symbols {sorted(bad)}")

    if style.tempo[0] > style.tempo[1] or style.tempo[0] <= 0:
        raise ValueError(f"{where}: bad tempo range {style.tempo}")
    if style.grid not in (3, 4):
        raise ValueError(f"{where}: grid must be 3 or 4, got {style.grid}")
    if style.kits and not style.grooves:
        raise ValueError(f"{where}: has kits but no grooves")
    for groove in style.grooves:
        for drum, pattern in groove.hits.items():
            if drum not in DRUMS:
                raise ValueError(f"{where}: groove {groove.name!r} uses unknown drum {drum!r}")
            fits(pattern, f"groove {groove.name!r} {drum}", ".goxX?rt")
    for drum in style.fill_voices:
        if drum not in DRUMS:
            raise ValueError(f"{where}: unknown fill drum {drum!r}")
    for mode, _prog in style.progressions:
        if mode not in SCALES:
            raise ValueError(f"{where}: unknown mode {mode!r}")
    alphabets = {"bass": "R2345678bLW-.", "chord": "Xxog123456789-.", "melody": "Nn?-.",
                 "voice": "Nn?-."}
    roles = set()
    for part in style.parts:
        if part.kind not in alphabets:
            raise ValueError(f"{where}: part {part.role!r} has unknown kind {part.kind!r}")
        if part.role in roles:
            raise ValueError(f"{where}: duplicate part role {part.role!r}")
        roles.add(part.role)
        if part.scale is not None and part.scale not in SCALES:
            raise ValueError(f"{where}: part {part.role!r} has unknown scale {part.scale!r}")
        if part.register[0] >= part.register[1]:
            raise ValueError(f"{where}: part {part.role!r} has an empty register")
        if not part.programs or not all(0 <= p <= 127 for p in part.programs):
            raise ValueError(f"{where}: part {part.role!r} has bad programs {part.programs}")
        for pattern in part.patterns:
            fits(pattern, f"part {part.role!r}", alphabets[part.kind])
