"""Under JACK the engine is the client README names: `genredream`, its ports genredream:in_0...

The real command line runs against a JACK dummy-driver server (the helpers of
tests/test_realtime_jack.py); jack_lsp, from jackd2, lists the ports while it runs.
"""

import os
import re
import subprocess
import sys
import time

import pytest

from tests.test_realtime_jack import jack_server

pytestmark = pytest.mark.realtime
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_the_jack_client_is_called_genredream(tmp_path):
    from tests.conftest import make_model_file

    model = make_model_file("geng", tmp_path)
    with jack_server(256, str(tmp_path)) as srv:
        env = dict(srv.env, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
        p = subprocess.Popen([sys.executable, "-m", "genredream.engine.cli", "run", "--device", "JACK", "--channels", "2",
                              "--model", str(model), "--no-view", "--duration", "20", "--threads", "1"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
        try:
            ports = []
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and p.poll() is None:
                ports = srv.run("jack_lsp", check=False).stdout.split()
                if any(x.endswith(":in_0") and not x.startswith("system:") for x in ports):
                    break
                time.sleep(0.2)
        finally:
            p.terminate()
            err = p.communicate(timeout=60)[1]
    # This test process holds a PortAudio client of its own (jack_server's device rescan), named
    # genredream too: JACK names the second one genredream-01, as it would a second engine.
    ours = [x for x in ports if re.fullmatch(r"genredream(-\d\d)?:(in|out)_\d+", x)]
    assert {x.split(":")[1] for x in ours} >= {"in_0", "in_1"}, (ports, err[-2000:])
    assert not any(x.startswith("PortAudio") for x in ports), ports
