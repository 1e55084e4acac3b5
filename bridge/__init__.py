"""OSC bridge: Max/MSP, Pure Data and DAWs send audio in and get scores and dreamed audio back.

* :mod:`genredream.bridge.protocol`: the ``/genredream/`` namespace and a strict codec around python-osc;
* :mod:`genredream.bridge.jitter`: reordering audio packets by sequence number, gaps, restarts;
* :mod:`genredream.bridge.server`: :class:`OscBridge`, the UDP server attached to an engine
  (its socket, receive threads and dispatch), which owns one collaborator per job:
  :mod:`~genredream.bridge.audio_in` (audio in), :mod:`~genredream.bridge.audio_out`
  (dreamed audio out), :mod:`~genredream.bridge.handlers` (control messages),
  :mod:`~genredream.bridge.replies` (acks, errors, scores; the leased subscribers of
  :mod:`~genredream.bridge.subscribers`) and
  :mod:`~genredream.bridge.status` (``/genredream/status``);
* :mod:`genredream.bridge.early`: the port bound before the models load;

docs/osc.md documents the namespace.
"""

from genredream.bridge.protocol import DEFAULT_PORT

__all__ = ["DEFAULT_PORT", "OscBridge"]


def __getattr__(name):  # the server pulls in numpy and the engine: import it on first use
    if name == "OscBridge":
        from genredream.bridge.server import OscBridge

        return OscBridge
    raise AttributeError(name)
