"""An audio device as the session's source: `genredream run --device`.

The device is found and its rate read before anything loads (a wrong name
fails at once, listing the devices); once the engine is built, the runner
opens the stream: the C callback (engine/io/cring.py, the default) or the
Python one (engine/io/duplex.py, kept to measure against). Dreamed audio goes
back out of the same device (duplex) or ``output_device``, delayed by the
output transform's latency so that every block is dreamed.
"""

from __future__ import annotations

from genredream.engine.io.devices import import_sounddevice, list_devices, resolve_device
from genredream.engine.io.source import Source, wait_stream

__all__ = ["DeviceSource"]


class DeviceSource(Source):
    """Duplex audio from a device (see :class:`genredream.engine.io.duplex.DuplexRunner` for the parameters).

    ``callback``: "c" (rtmixer, no Python on the audio thread) or "python".
    ``ring_lead``: seconds of output the C callback keeps ready (None: its default).
    Raises :class:`genredream.engine.io.devices.DeviceError` when the device does not exist.
    """

    def __init__(self, device=None, output_device=None, channels=None, samplerate=None, blocksize=256, when_late="dry", callback="c", ring_lead=None):
        sd = import_sounddevice()
        self.device = resolve_device(device, "input", list_devices())
        info = sd.query_devices(self.device)
        self.sample_rate = int(samplerate or round(info["default_samplerate"]))
        self.channels = int(channels) if channels is not None else min(2, int(info["max_input_channels"]))
        self._ask_channels = channels
        self.output_device, self.blocksize, self.when_late = output_device, blocksize, when_late
        self.callback, self.ring_lead = callback, ring_lead
        self.runner = None

    def start(self, session):
        engine = session.engine
        kw = {}
        if self.callback == "c":  # the C callback (rtmixer): no Python on the audio thread
            from genredream.engine.io.cring import DEFAULT_LEAD_S, CRingRunner as cls

            kw["lead_s"] = DEFAULT_LEAD_S if self.ring_lead is None else self.ring_lead
        else:
            from genredream.engine.io.duplex import DuplexRunner as cls
        transform = session.transform
        self.runner = cls(
            engine,
            device=self.device,
            output_device=self.output_device,
            channels=self._ask_channels,
            samplerate=self.sample_rate,
            blocksize=self.blocksize,
            when_late=self.when_late,
            # The transform writes its output that many samples behind the input
            # clock; delaying playback by as much makes every block dreamed.
            output_delay=transform.latency_samples if transform is not None else 0,
            **kw,
        )
        self.runner.open()
        engine.start()
        self.runner.start()

    def run(self, session):
        engine = session.engine

        def publish():  # the device's xruns, in the engine's status (live view, OSC /status, JSON)
            engine.counters["xruns"] = self.runner.xruns

        return wait_stream(engine, session.duration, alive=lambda: self.runner.active, tick=publish)

    def stop(self, session):
        if self.runner is not None:
            self.runner.stop()
            session.engine.counters["xruns"] = self.runner.xruns

    def summary_lines(self):
        return self.runner.summary_lines() if self.runner is not None else []
