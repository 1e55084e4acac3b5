"""Which files of a library are audio, and the key ``--resume`` matches them by.

A library holds cover art, playlists, ``.DS_Store`` and ``.nfo`` files next
to its music, and sometimes music without an extension or with the wrong
one. A file is taken when its extension is an audio one, or, whatever its
extension, when its first bytes are an audio container's signature. Files
named on the command line are always taken (the user asked for them; if
they are not audio they get an error row). macOS's ``._`` resource forks
carry the extension of the file they describe but are not audio: skipped.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["AUDIO_EXTENSIONS", "FileEntry", "find_audio", "looks_like_audio", "entry"]

#: What libsndfile decodes (and librosa's ffmpeg fallback for the rest).
AUDIO_EXTENSIONS = frozenset(
    (".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".au", ".snd", ".aif", ".aiff", ".aifc", ".caf", ".w64", ".m4a", ".mp4", ".wma")
)

# Container signatures at offset 0 (or 4 for ISO media's "ftyp").
_MAGIC = (b"RIFF", b"RIFX", b"RF64", b"fLaC", b"OggS", b"ID3", b".snd", b"FORM", b"caff", b"riff")


def looks_like_audio(path) -> bool:
    """True if the file starts like an audio container or an MPEG audio stream."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError:
        return False
    if head.startswith(_MAGIC):
        return True
    if head[4:8] == b"ftyp":  # MP4/M4A
        return True
    # A bare MPEG audio frame: 11 sync bits, a layer that is not "reserved".
    return len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0 and (head[1] & 0x06) != 0


@dataclass(frozen=True)
class FileEntry:
    """One file to tag; ``(path, size, mtime_ns)`` is its ``--resume`` key."""

    path: str
    size: int
    mtime_ns: int

    @property
    def key(self):
        return (self.path, self.size, self.mtime_ns)


def entry(path) -> FileEntry:
    p = Path(path).absolute()
    st = p.stat()
    return FileEntry(str(p), int(st.st_size), int(st.st_mtime_ns))


def find_audio(paths, skipped=None):
    """Audio files under ``paths`` (files or folders, searched recursively), sorted by path.

    ``skipped``: a list that gets ``(path, why)`` for what is neither a file nor a
    folder (a FIFO, a socket, a device, a broken link), named or found in a folder:
    nothing is read from those (a FIFO would block), and nothing is left out unsaid.

    Returns
    -------
    (list of FileEntry, list of str)
        The files, and the arguments that do not exist (for the error message).
    """
    found, missing = {}, []
    skipped = [] if skipped is None else skipped
    for arg in paths:
        p = Path(arg)
        if p.is_file():
            e = entry(p)
            found[e.path] = e
        elif not p.is_dir() and (p.exists() or p.is_symlink()):
            skipped.append((str(p), _not_regular(p)))
        elif p.is_dir():
            for root, dirs, names in os.walk(p, followlinks=False):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in names:
                    if name.startswith("."):  # hidden files and ._ resource forks
                        continue
                    f = Path(root) / name
                    if not f.is_file():
                        skipped.append((str(f), _not_regular(f)))
                        continue
                    if f.suffix.lower() in AUDIO_EXTENSIONS or looks_like_audio(f):
                        e = entry(f)
                        found[e.path] = e
        else:
            missing.append(str(arg))
    return [found[k] for k in sorted(found)], missing


def _not_regular(p):
    """Why ``p`` (which exists, or is a link) is not tagged."""
    import stat

    if p.is_symlink() and not p.exists():
        return "a broken link"
    mode = p.stat().st_mode
    for test, what in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device")):
        if test(mode):
            return what
    return "not a regular file"
