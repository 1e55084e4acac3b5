"""Subscriptions are leases: they run out unless renewed, a vanished subscriber is dropped,
a full table gives way to the newcomer, and a refusal reaches the asker.

The peers are real clients no one here wrote: python-osc's ``SimpleUDPClient`` (its own
socket, an ephemeral port bound by its first send, as any python-osc script has) and
liblo's ``oscdump``; the engine and its bridge run in this process on loopback.
"""

import subprocess
import time

import numpy as np
import pytest
from pythonosc.osc_message import OscMessage
from pythonosc.udp_client import SimpleUDPClient

from genredream.bridge.client import OscClient
from genredream.bridge.protocol import A
from genredream.bridge.server import OscBridge
from genredream.engine.runtime import Engine
from tests.conftest import make_model_file, require_program

SR = 8000


@pytest.fixture(scope="module")
def geng_file(tmp_path_factory):
    return make_model_file("geng", tmp_path_factory.mktemp("models"), ["a", "b", "c"], seed=0)


class Peer:
    """A python-osc client that also reads what comes back to its socket."""

    def __init__(self, server_port):
        self.client = SimpleUDPClient("127.0.0.1", server_port)
        self.client.send_message(A.PING, 0)  # the first send binds the socket to a fresh port
        self.port = self.client._sock.getsockname()[1]  # python-osc keeps its socket private; the port is all we need
        self.got = []

    def send(self, address, *args):
        self.client.send_message(address, list(args))

    def subscribe(self, *extra):
        self.send(A.SUBSCRIBE, "127.0.0.1", self.port, *extra)

    def read(self, timeout=0.3):
        """Everything that arrives until ``timeout`` s pass with nothing: [(address, args)]."""
        while data := self.client.receive(timeout):
            m = OscMessage(data)
            self.got.append((m.address, list(m.params)))
        return self.got

    def wait_for(self, address, pred=lambda a: True, timeout=5.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i, (a, args) in enumerate(self.got):
                if a == address and pred(args):
                    del self.got[i]
                    return args
            data = self.client.receive(0.05)
            if data:
                m = OscMessage(data)
                self.got.append((m.address, list(m.params)))
        raise TimeoutError(f"no {address} within {timeout} s; got {[a for a, _ in self.got][-8:]}")

    def close(self):
        self.client._sock.close()


def ages(status):
    """subscriber_ages as {port: age_s}."""
    text = status["subscriber_ages"]
    return {int(p): float(a) for h, p, a in (x.split(":") for x in text.split(",") if x)}


def test_a_lease_runs_out_unless_renewed(served):
    b, c = served(Engine(SR), lease=1.0)
    stay, leave = Peer(b.port), Peer(b.port)
    try:
        stay.subscribe()
        ack = stay.wait_for(A.ACK)
        assert ack[:4] == [A.SUBSCRIBE, "127.0.0.1", stay.port, "none"] and ack[6] == pytest.approx(1.0), ack
        leave.subscribe()
        leave.wait_for(A.ACK)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 2.5:  # `stay` renews every 0.3 s, `leave` never
            stay.subscribe()
            time.sleep(0.3)
        stay.read()
        assert not any("warning" in str(args) for _, args in stay.got), stay.got  # a renewal changes nothing: no warning
        st = c.status()
        assert st["subscribers"] == 1 and st["lease_s"] == pytest.approx(1.0), st
        a = ages(st)
        assert list(a) == [stay.port] and a[stay.port] < 1.0, st["subscriber_ages"]
        assert st["subscriptions_expired"] == 1, st
        leave.read()
        leave.got.clear()
        c.send(A.HOP, 0.25)  # its ack goes to the subscribers: `leave` is no longer one
        assert stay.wait_for(A.ACK, lambda a: a[0] == A.HOP) == [A.HOP, 0.25]
        assert A.ACK not in [x for x, _ in leave.read()]
    finally:
        stay.close()
        leave.close()


def test_a_vanished_subscriber_is_dropped_and_the_others_miss_nothing(served):
    """oscdump subscribed, then killed: the next sends to it fail, it is dropped, and the live
    subscriber still gets every ack (the failed send is reported on a later one, which is retried)."""
    oscdump = require_program("oscdump", "liblo-tools")
    b, c = served(Engine(SR))
    live = Peer(b.port)
    port = Peer(b.port)  # a free port for oscdump: this peer's, given up
    dump_port = port.port
    port.close()
    dump = subprocess.Popen([oscdump, "-L", str(dump_port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(0.3)  # oscdump binds its port
        live.subscribe()
        live.wait_for(A.ACK)
        live.send(A.SUBSCRIBE, "127.0.0.1", dump_port)
        live.wait_for(A.ACK, lambda a: a[2] == dump_port)
        assert c.status()["subscribers"] == 2
    finally:
        dump.kill()
        out = dump.communicate()[0]
    assert A.ACK in out  # oscdump heard its subscription's ack: it was a real subscriber
    for k in range(5):
        live.send(A.HOP, 0.25 + 0.05 * k)
    for k in range(5):
        assert live.wait_for(A.ACK, lambda a: a[0] == A.HOP)[1] == pytest.approx(0.25 + 0.05 * k)
    st = c.status()
    assert st["subscribers"] == 1 and list(ages(st)) == [live.port], st
    assert st["subscriptions_dropped"] == 1, st
    live.close()


def test_a_full_table_gives_way_to_the_newcomer_and_the_stalest_is_told(served):
    b, c = served(Engine(SR))
    peers = [Peer(b.port) for _ in range(33)]
    try:
        for p in peers[:32]:
            p.subscribe()
            p.wait_for(A.ACK, lambda a: a[2] == p.port)
        peers[0].subscribe()  # renewed: now peers[1] is the stalest
        peers[0].wait_for(A.ACK, lambda a: a[2] == peers[0].port)
        newcomer = peers[32]
        newcomer.subscribe("none")
        ack = newcomer.wait_for(A.ACK, lambda a: a[2] == newcomer.port)
        assert ack[3] == "none"
        code, message = peers[1].wait_for(A.ERROR)
        assert code == "evicted" and str(peers[1].port) in message
        st = c.status()
        a = ages(st)
        assert st["subscribers"] == 32 and len(a) == 32 and newcomer.port in a and peers[1].port not in a, st
        assert st["subscriptions_evicted"] == 1
    finally:
        for p in peers:
            p.close()


def test_a_refused_subscription_reaches_the_asker():
    e = Engine(SR)
    b = OscBridge(e, port=0).start()
    p = Peer(b.port)
    try:
        p.send(A.SUBSCRIBE, "10.1.2.3", 9000)  # a third party: denied, and the asker (no subscriber yet) hears it
        code, message = p.wait_for(A.ERROR)
        assert code == "denied" and "10.1.2.3" in message
        p.send(A.SUBSCRIBE, "127.0.0.1", p.port, "none", 0, 4096)  # frames beyond 1024
        assert p.wait_for(A.ERROR)[0] == "bad_args"
    finally:
        p.close()
        b.stop()


def test_after_a_hundred_clients_came_and_went_a_new_one_gets_scores(served, geng_file):
    """The issue's fuzz: clients subscribing from fresh ports, then gone. A newcomer must still get scores."""
    e = Engine(SR)
    e.load_model(geng_file)
    b, c = served(e)
    e.start()
    for _ in range(100):
        p = Peer(b.port)
        p.subscribe("f")
        p.close()
    with OscClient(b.port) as newcomer:
        newcomer.subscribe()
        newcomer.wait_for(A.ACK, pred=lambda a: a[0] == A.SUBSCRIBE and a[2] == newcomer.port)
        t = np.arange(SR * 6) / SR
        y = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
        for seq in range(y.size // 500):
            newcomer.send_audio(seq, y[seq * 500 : (seq + 1) * 500], SR)
            time.sleep(0.004)
        _, args = newcomer.wait_for(A.SCORES, timeout=20)
        assert args[0] == "test-geng"
        st = newcomer.status()
        assert st["subscribers"] <= 32 and newcomer.port in ages(st), st
        assert st["subscriptions_evicted"] + st["subscriptions_dropped"] >= 100 - 31, st


def test_status_reports_the_dream_latency_and_the_lease(served, geng_file):
    from genredream.engine.dream import Dreamer

    e = Engine(SR)
    e.load_model(geng_file)
    b, c = served(e, lease=7.5)
    st = c.status()
    assert st["dream_latency_ms"] == -1 and st["lease_s"] == 7.5 and st["subscriber_ages"] == ""
    e.set_transform(Dreamer(geng_file, steps=1))
    e.start()
    st = c.status()
    assert st["dream_latency_ms"] == pytest.approx(1000 * e.transform.latency_samples / SR, abs=1e-3) and st["dream_latency_ms"] > 0


def test_the_lease_is_a_run_option(capsys):
    import argparse

    from genredream.engine.cli import run

    p = argparse.ArgumentParser()
    run.add_arguments(p)
    args = p.parse_args(["--osc-port", "9999", "--osc-lease", "2.5"])
    assert run._endpoint(args)["lease"] == 2.5
    assert run._endpoint(p.parse_args(["--osc-port", "9999"]))["lease"] == 60.0
    with pytest.raises(SystemExit):
        p.parse_args(["--osc-port", "9999", "--osc-lease", "-1"])
    assert "lease must be 0 (forever) or more seconds" in capsys.readouterr().err
