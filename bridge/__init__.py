"""OSC bridge: Max/MSP, Pure Data and DAWs send audio in and get scores and dreamed audio back.

* :mod:`bridge.protocol`: the ``/genredream/`` namespace and a strict codec around python-osc;
* :mod:`bridge.jitter`: reordering audio packets by sequence number, gaps, restarts;
* :mod:`bridge.server`: :class:`OscBridge`, the UDP server attached to an engine.

docs/osc.md documents the namespace.
"""

from bridge.protocol import DEFAULT_PORT

__all__ = ["DEFAULT_PORT", "OscBridge"]


def __getattr__(name):  # the server pulls in numpy and the engine: import it on first use
    if name == "OscBridge":
        from bridge.server import OscBridge

        return OscBridge
    raise AttributeError(name)
