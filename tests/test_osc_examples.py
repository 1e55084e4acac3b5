"""examples/: the Pd patch runs headless with DSP on against the real engine; the Max patch
sends the same OSC messages and names only Max objects.

The Pd test opens examples/genredream.pd as shipped, beside a small driver patch
(tests/peers/example_driver.pd) that plays a known sound file into it through its
`gd-play` receive, turns sending and dreaming on through its toggles' receive names,
prints what its score sliders send, and writes its playback ring to a file. The engine
runs in this process (real models, real OscBridge on loopback); the test reads every
sample it received and every dreamed sample it sent.
"""

import json
import re
import socket
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import require_program

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
PEERS = Path(__file__).resolve().parent / "peers"
SR = 48000
RING = 65536  # the example's playback ring (table gd-out)
SLIDERS = ["rock", "pop", "electronic", "jazz", "metal", "ambient", "Hip-Hop", "blues"]

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


def _free_udp_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class _Tap:
    """Copies everything written to a RingBuffer, polling it from a thread (the rings hold seconds)."""

    def __init__(self, ring):
        self.ring, self.cursor, self.parts = ring, ring.total_written, []
        self.lost = 0
        self._run = True
        self._t = threading.Thread(target=self._loop, daemon=True)
        self._t.start()

    def _loop(self):
        while self._run:
            self.poll()
            time.sleep(0.05)

    def poll(self):
        if self.ring.total_written > self.cursor:
            data, start = self.ring.read_since(self.cursor)
            self.lost += start - self.cursor
            self.parts.append(np.array(data, np.float32))
            self.cursor = start + data.size

    def stop(self):
        self._run = False
        self._t.join()
        self.poll()
        return np.concatenate(self.parts) if self.parts else np.zeros(0, np.float32)


def _run_pd_example(tmp_path, dream, seconds, rate=SR, y=None, engine=None, lease=60.0):
    """Run the example headless against an in-process engine; returns (received, dreamed, pd output, bridge, results).

    By default the engine runs musicnn-msd (and dreams with it) at Pd's rate ``rate``, and the
    file is 4 s of a tone and noise; ``engine`` (a started-later Engine) and ``y`` replace them."""
    pd = require_program("pd", "puredata-core")
    from genredream.bridge.server import OscBridge
    from genredream.engine.dream import Dreamer
    from genredream.engine.runtime import Engine

    if y is None:
        rng = np.random.default_rng(7)
        t = np.arange(int(4.0 * rate)) / rate
        y = (0.2 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
        y[0] = 0.5  # the first sample marks where the file starts in the stream
    wav = tmp_path / "known.wav"
    sf.write(wav, y, rate, subtype="FLOAT")
    dump = tmp_path / "ring.wav"

    if engine is None:
        engine = Engine(SR, torch_threads=1)
        engine.load_model("musicnn-msd")
        if dream:
            engine.set_transform(Dreamer(engine.models["musicnn-msd"].loaded, layer="all", steps=1, step_size=0.003, mix=1.0))
    results = []
    engine.sinks.append(results.append)
    bridge = OscBridge(engine, port=0, lease=lease).start()
    engine.start()
    tap_in, tap_out = _Tap(engine.ring), _Tap(engine.output)
    reply = _free_udp_port()
    proc = subprocess.Popen(
        [pd, "-nogui", "-nosound", "-nrt", "-r", str(rate), "-stderr",
         "-open", str(EXAMPLES / "genredream.pd"), "-open", str(PEERS / "example_driver.pd"),
         "-send", f"gd-ports {bridge.port} {reply}",
         "-send", f"drv-go {int(dream)} {seconds} {wav} {dump}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        out, _ = proc.communicate(timeout=seconds + 20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        time.sleep(0.2)
        engine.stop()
        bridge.stop()
        received, dreamed = tap_in.stop(), tap_out.stop()
    assert tap_in.lost == 0 and tap_out.lost == 0, "the test's tap fell behind the rings"
    return y, received, dreamed, out, bridge, results, dump


@pytest.fixture(scope="module")
def pd_run(tmp_path_factory):
    """One ~10 s run of the example with dreaming on (loading musicnn-msd dominates the time)."""
    return _run_pd_example(tmp_path_factory.mktemp("pd_example"), dream=True, seconds=9)


def test_pd_example_streams_every_sample_in_order_and_shows_the_scores(pd_run):
    y, received, _, out, bridge, results, _ = pd_run
    st = bridge.status()
    assert st["rejected"] == 0 and st["lost"] == 0 and st["reordered"] == 0 and st["duplicates"] == 0, (st, dict(bridge.counters), out)
    assert st["audio_packets"] > 0 and received.size == 512 * st["audio_packets"], (received.size, st)
    # The file arrives whole and in order: Pd's adc~ (silent with -nosound) before and after it.
    start = int(np.flatnonzero(received)[0])
    assert received[start] == y[0]
    assert np.array_equal(received[start : start + y.size], y), "the samples the engine received differ from the file"
    assert not np.any(received[start + y.size :])
    # Scores came back to the patch's sliders (each slider sends to gd-LABEL), the values the engine computed.
    printed = {lab: [float(v) for v in re.findall(rf"^drv-score-{re.escape(lab)}: ([-0-9.e]+)", out, re.M)] for lab in SLIDERS}
    assert all(printed[lab] for lab in SLIDERS), out
    computed = {lab: [float(r.scores[r.labels.index(lab)]) for r in results if not r.error] for lab in SLIDERS}
    for lab in SLIDERS:
        for v in printed[lab]:
            assert min(abs(v - c) for c in computed[lab]) < 1e-4, (lab, v)
    assert "error" not in out.lower(), out  # Pd printed no error (its [print genredream] shows /genredream/error too)


def _segments(newest, dreamed, probe=256):
    """Split the unrolled ring, newest first, into runs that are contiguous in the dreamed stream.

    Returns [(ring_start, ring_end, stream_end)] newest first, or None where a run is not in
    the stream at all (a sample the server never sent: stale or corrupt).
    """
    out = []
    hi = newest.size
    bound = dreamed.size  # a run must lie before the newer run in the stream
    while hi > 0:
        m = min(probe, hi)
        tail = newest[hi - m : hi]
        ks = [k for k in range(m, bound + 1) if dreamed[k - 1] == tail[-1] and np.array_equal(dreamed[k - m : k], tail)]
        if not ks:
            return None
        k = ks[-1]
        n = m
        while n < hi and k - n - 1 >= 0 and dreamed[k - n - 1] == newest[hi - n - 1]:
            n += 1
        out.append((hi - n, hi, k))
        hi -= n
        bound = k - n
    return out


def test_pd_example_plays_dreamed_audio_from_a_ring_without_stale_samples(pd_run):
    _, received, dreamed, out, bridge, _, dump = pd_run
    st = bridge.status()
    assert st["rejected"] == 0 and st["lost"] == 0, (st, out)
    assert "unavailable" not in out, out
    assert st["audio_out_packets"] > 0 and dreamed.size > RING, (dreamed.size, out)
    pos = int(float(re.findall(r"^drv-pos: ([0-9.e+]+)", out, re.M)[-1]))
    ring, sr = sf.read(dump, dtype="float32")
    assert ring.size == RING and sr == SR
    # Unrolled at its write position, the ring is the RING samples the server sent last before the dump:
    # every sample fresh, in order, none left over from an earlier pass.
    newest = np.roll(ring, -pos)
    segs = _segments(newest, dreamed)
    assert segs is not None, f"the playback ring holds samples the server never sent; server: {st}"
    # Newest first, each run older in the stream than the one after it: nothing left over from an
    # earlier pass of the ring. A break between runs is a datagram Pd's socket dropped (a hop's
    # dreamed audio arrives as one burst, and this machine is shared): the write position does not
    # advance for it, so the ring stays in order, with a gap.
    gaps = [segs[i][2] - (segs[i][1] - segs[i][0]) - segs[i + 1][2] for i in range(len(segs) - 1)]
    assert all(g > 0 for g in gaps) and len(segs) <= 4, (segs, gaps)
    assert segs[0][1] - segs[0][0] > RING // 2, segs  # mostly one run
    assert np.any(newest), "the ring holds only silence"


def test_pd_example_at_44k1_plays_its_dream_at_44k1_and_renews_its_lease(tmp_path):
    """Pd at 44.1 kHz (its default) against a 48 kHz engine whose dreamer is dry (mix 0): the ring the
    patch plays from holds the file at 44.1 kHz. The engine's lease (21 s) is shorter than the run
    (24 s): the patch's 20 s renewal keeps it subscribed, so the newest dream is from after 21 s."""
    from genredream.engine.dream import Dreamer
    from genredream.engine.runtime import Engine
    from tests.conftest import make_model_file

    rate, seconds, lease = 44100, 24, 21.0
    t = np.arange(int((seconds + 1) * rate)) / rate
    y = (0.3 * np.sin(2 * np.pi * (100 * t + 60 * t * t))).astype(np.float32)  # a slow sweep: one lag matches
    engine = Engine(SR, torch_threads=1)
    engine.set_transform(Dreamer(make_model_file("geng", tmp_path, ["a", "b", "c"]), steps=1, mix=0.0))
    y, received, dreamed, out, bridge, _, dump = _run_pd_example(tmp_path, True, seconds, rate=rate, y=y, engine=engine, lease=lease)
    st = bridge.status()
    assert "error" not in out.lower(), out
    assert st["rejected"] == 0 and st["subscribers"] == 1 and st["subscriptions_expired"] == 0, st
    ring, sr = sf.read(dump, dtype="float32")
    assert sr == rate
    pos = int(float(re.findall(r"^drv-pos: ([0-9.e+]+)", out, re.M)[-1]))
    newest = np.roll(ring, -pos)
    seg = newest[-rate // 5 :]  # the newest 0.2 s
    lag = int(np.argmax(np.correlate(y, seg, mode="valid")))
    err = np.sqrt(np.mean((seg - y[lag : lag + seg.size]) ** 2)) / np.sqrt(np.mean(seg**2))
    assert err < 0.05, (lag / rate, err)  # at 48 kHz the ring would hold the sweep 8.8 % slower: no lag matches
    assert lag / rate > lease - 0.5, lag / rate  # still subscribed after the lease's first term


def test_pd_example_plays_a_file_sent_as_gd_play_file(tmp_path):
    """docs/osc.md: send `gd-play FILE` from any patch. Pd delivers that as a message whose selector is
    the file name (what `pd -send "gd-play FILE"` sends too): the patch must read it, not fail on `$1`."""
    pd = require_program("pd", "puredata-core")
    from genredream.bridge.server import OscBridge
    from genredream.engine.runtime import Engine

    t = np.arange(SR) / SR
    y = (0.25 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    y[0] = 0.5  # marks where the file starts in the stream
    wav = tmp_path / "play-me.wav"
    sf.write(wav, y, SR, subtype="FLOAT")
    engine = Engine(SR)
    bridge = OscBridge(engine, port=0).start()
    engine.start()
    tap = _Tap(engine.ring)
    proc = subprocess.Popen(
        [pd, "-nogui", "-nosound", "-nrt", "-r", str(SR), "-stderr", "-open", str(EXAMPLES / "genredream.pd"),
         "-send", f"gd-ports {bridge.port} {_free_udp_port()}", "-send", "pd dsp 1", "-send", "gd-send 1",
         "-send", f"gd-play {wav}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and engine.ring.total_written < 2 * SR:
            time.sleep(0.05)
    finally:
        proc.kill()
        out = proc.communicate()[0]
        engine.stop()
        bridge.stop()
        received = tap.stop()
    assert "out of range" not in out and "error" not in out.lower(), out
    start = int(np.flatnonzero(received)[0]) if np.any(received) else None
    assert start is not None, f"the file never reached the engine; pd said:\n{out}"
    assert np.array_equal(received[start : start + y.size], y)


# ---- the Max patch mirrors the Pd patch ---------------------------------------------------------
def _pd_sent_addresses():
    """The OSC addresses examples/genredream.pd sends: one per [oscformat] object."""
    text = (EXAMPLES / "genredream.pd").read_text()
    return {"/" + "/".join(m.split()) for m in re.findall(r"oscformat ([^;\\]+);", text)}


def _boxes(patcher):
    for b in patcher["boxes"]:
        box = b["box"]
        yield box
        if "patcher" in box:
            yield from _boxes(box["patcher"])


def _max_sent_messages():
    """(address, arguments) of every OSC message the .maxpat sends: message boxes and [prepend /addr] objects."""
    pat = json.loads((EXAMPLES / "genredream.maxpat").read_text())
    out = []
    for box in _boxes(pat["patcher"]):
        text = box.get("text", "")
        if box["maxclass"] == "message" and text.startswith("/genredream"):
            out.append((text.split()[0], text.split()[1:]))
        elif box["maxclass"] == "newobj" and text.startswith("prepend /genredream"):
            out.append((text.split()[1], ["<value>"]))
    return out


def test_maxpat_sends_only_the_messages_the_tested_pd_patch_sends():
    pd_addresses = _pd_sent_addresses()
    # The Pd patch's messages, which the running test above exercises.
    assert pd_addresses == {"/genredream/subscribe", "/genredream/audio/in/format", "/genredream/audio/in/f",
                            "/genredream/dream", "/genredream/dream/mix", "/genredream/status"}, pd_addresses
    sent = _max_sent_messages()
    max_addresses = {a for a, _ in sent}
    # Max sends audio through the sound card (`--device`), so not /audio/in*; everything else is the same.
    assert max_addresses == pd_addresses - {"/genredream/audio/in/format", "/genredream/audio/in/f"}, max_addresses
    # The subscription differs only in its audio argument: Max does not play dreamed audio from OSC.
    assert ("/genredream/subscribe", ["127.0.0.1", "9138", "none"]) in sent
    assert "/genredream/dream/latency" not in (EXAMPLES / "genredream.maxpat").read_text()  # always `unsupported` while running


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
    assert "--dream" in text  # the dream toggle needs the engine started with --dream
