"""examples/: the Pd patch opens headless without errors; the .maxpat is valid and names only Max objects."""

import json
import subprocess
from pathlib import Path

from tests.conftest import require_program

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# Objects of Max 8's own distribution (Max reference, "Max", "MSP" and UI objects) that a
# patch may use; anything else (externals such as CNMAT's OSC-route) would not open everywhere.
MAX_OBJECTS = {
    # Max
    "udpsend", "udpreceive", "route", "routepass", "select", "sel", "zl", "prepend", "append", "pack", "pak", "unpack",
    "loadbang", "loadmess", "print", "trigger", "t", "gate", "switch", "metro", "delay", "sprintf", "fromsymbol",
    "tosymbol", "regexp", "split", "scale", "line", "speedlim", "qlim", "deferlow", "defer", "int", "i", "float", "f",
    "counter", "change", "dict", "coll", "js", "buffer~", "peek~", "poke~", "uzi", "iter", "thresh", "value", "v",
    "send", "s", "receive", "r", "join", "unjoin", "list", "message", "comment", "panel", "p", "patcher", "inlet", "outlet",
    # MSP
    "adc~", "dac~", "ezadc~", "ezdac~", "snapshot~", "record~", "groove~", "play~", "sig~", "*~", "+~", "meter~",
    "sfplay~", "sfrecord~", "plugin~", "plugout~",
    # UI (maxclass names)
    "newobj", "toggle", "button", "number", "flonum", "slider", "multislider", "dial", "umenu", "textedit",
    "live.slider", "live.toggle", "live.numbox", "live.text", "kslider", "gain~", "live.gain~",
}


def test_pd_example_opens_headless_without_errors():
    pd = require_program("pd", "puredata-core")
    proc = subprocess.Popen(
        [pd, "-nogui", "-nosound", "-nrt", "-stderr", "-open", str(EXAMPLES / "genredream.pd"), "-send", "pd quit"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out
    bad = [line for line in out.splitlines() if any(w in line.lower() for w in ("error", "couldn't create", "connection failed", "bad arguments"))]
    assert not bad, out


def test_pd_example_speaks_the_namespace():
    text = (EXAMPLES / "genredream.pd").read_text()
    for needle in ("oscformat genredream audio in f", "oscformat genredream subscribe", "oscformat genredream audio in format",
                   "netreceive -u -b", "oscparse", "block~ 512", "tabsend~", "dac~", "adc~", "hsl", "connect 127.0.0.1 9137"):
        assert needle in text, needle


def _boxes(patcher):
    for b in patcher["boxes"]:
        box = b["box"]
        yield box
        if "patcher" in box:
            yield from _boxes(box["patcher"])


def test_maxpat_is_valid_json_naming_only_max_objects():
    pat = json.loads((EXAMPLES / "genredream.maxpat").read_text())
    patcher = pat["patcher"]
    ids = set()
    names = set()
    for box in _boxes(patcher):
        assert box["id"] not in ids
        ids.add(box["id"])
        assert box["maxclass"] in MAX_OBJECTS, box["maxclass"]
        if box["maxclass"] == "newobj":
            names.add(box["text"].split()[0])
        assert len(box["patching_rect"]) == 4
    assert names <= MAX_OBJECTS, names - MAX_OBJECTS
    assert {"udpsend", "udpreceive", "route", "zl"} <= names
    assert any(b["maxclass"] == "multislider" for b in _boxes(patcher))
    for line in patcher["lines"]:
        src, dst = line["patchline"]["source"], line["patchline"]["destination"]
        assert src[0] in ids and dst[0] in ids
    text = json.dumps(pat)
    assert "udpsend 127.0.0.1 9137" in text and "udpreceive 9138" in text and "/genredream/subscribe 127.0.0.1 9138" in text
