"""`genredream devices`: the audio devices PortAudio sees, as a table or JSON.

Discovery itself is engine/io/devices.py; this module only prints it.
"""

from __future__ import annotations

import argparse
import json

__all__ = ["add_arguments", "main"]


def add_arguments(p):
    """Arguments of `genredream devices`."""
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.description = (
        "List the audio devices PortAudio sees (JACK, ALSA, CoreAudio, WASAPI, ...), "
        "with their channels and default sample rate.\n"
        "> marks the default input, < the default output."
    )
    p.epilog = (
        "examples:\n"
        "  genredream devices\n"
        "  genredream devices --json\n"
        "  genredream run --device JACK --channels 2     # a host API name picks its default device\n"
        "  genredream run --device 3 --output-device 5\n"
        "\nRouting a DAW in and out: docs/devices.md"
    )
    p.add_argument("--json", action="store_true", help="print the list as JSON (for scripts)")


def main(args) -> int:
    """`genredream devices`: the table (or JSON); returns the exit code."""
    from rich.console import Console
    from rich.table import Table

    from genredream.engine.io.devices import DeviceError, list_devices

    err = Console(stderr=True)
    try:
        devices = list_devices()
    except DeviceError as e:
        err.print(f"[red]genredream devices:[/] {e}", highlight=False)
        return 2
    if getattr(args, "json", False):
        print(json.dumps(devices, indent=2))
        return 0
    con = Console()
    if not devices:
        con.print(
            "PortAudio sees no audio device. On Linux start a JACK server (`jackd -d alsa`, or "
            "`jackd -d dummy` without a sound card); see docs/devices.md. "
            "Files work without a device: genredream run --input FILE"
        )
        return 1
    t = Table(title="audio devices (> default input, < default output)")
    for col, just in (("", "left"), ("index", "right"), ("name", "left"), ("host API", "left"), ("in", "right"), ("out", "right"), ("default Hz", "right")):
        t.add_column(col, justify=just)
    for d in devices:
        mark = (">" if d["default_input"] else " ") + ("<" if d["default_output"] else " ")
        t.add_row(mark, str(d["index"]), d["name"], d["hostapi"], str(d["max_input_channels"]), str(d["max_output_channels"]), f"{d['default_samplerate']:g}")
    con.print(t)
    return 0