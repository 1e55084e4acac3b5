"""OSC bridge: Max/MSP, Pure Data and DAWs send audio in and get scores and dreamed audio back.

* :mod:`genredream.bridge.protocol`: the ``/genredream/`` namespace and a strict codec around python-osc;
* :mod:`genredream.bridge.jitter`: reordering audio packets by sequence number, gaps, restarts;
* :mod:`genredream.bridge.server`: :class:`OscBridge`, the UDP server attached to an engine.

docs/osc.md documents the namespace.
"""

from genredream.bridge.protocol import DEFAULT_PORT

__all__ = ["DEFAULT_PORT", "OscBridge"]


def __getattr__(name):  # the server pulls in numpy and the engine: import it on first use
    if name == "OscBridge":
        from genredream.bridge.server import OscBridge

        return OscBridge
    raise AttributeError(name)
