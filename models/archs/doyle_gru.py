"""Doyle & Lopez's generation network: a 1-D convolution, then a bidirectional GRU.

The paper (section 2.1) feeds 0.9 s of 10 kHz audio through a 1-D
convolution "to reduce the number of parameters", then a bidirectional GRU
("faster to train than an LSTM"), and predicts the next 0.1 s, trained with
mean squared error, one network per genre. It leaves every size open; ours:

==========================  ====================================================
stage                       size (defaults of :class:`DoyleGRU`)
==========================  ====================================================
input                       ``[batch, 9000]`` float32, 0.9 s at 10 000 Hz
level normalisation         the context is scaled to RMS 0.1 (-20 dBFS); the
                            prediction is scaled back by the same gain
conv1d                      1 -> 32 channels, kernel 100 (10 ms), stride 50
                            (5 ms): 179 frames, tanh
bidirectional GRU           1 layer, hidden 64 per direction, over the 179 frames
summary                     concat(forward state after the last frame,
                            backward state after the last frame (local, for
                            continuity), backward state after the first
                            frame): 192 values
dense                       192 -> 1000, linear
output                      ``[batch, 1000]`` float32, the next 0.1 s
==========================  ====================================================

About 235 000 parameters (0.95 MB as float32), so one file per genre stays
under 1 MB.

The level normalisation is inside the module (``forward`` takes and returns
audio at its real level): the network sees every context at the same RMS, so
a quiet song and a loud one are the same problem, and what it predicts is in
units of the context's level. It is one half of the fix for the paper's "too
low amplitude" (the other half, matching each generated chunk's RMS to the
seed's, is in :mod:`genredream.models.generator`).

``forward`` is deterministic: randomness (noise injected while generating)
belongs to the caller, which seeds it.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["DoyleGRU", "SAMPLE_RATE", "CONTEXT_SAMPLES", "PREDICT_SAMPLES", "TARGET_RMS", "SIZES"]

#: Hz (the paper's rate).
SAMPLE_RATE = 10_000
#: 0.9 s of context.
CONTEXT_SAMPLES = 9_000
#: 0.1 s predicted per step.
PREDICT_SAMPLES = 1_000
#: RMS every context is scaled to before the network sees it (-20 dBFS).
TARGET_RMS = 0.1
#: RMS under which a context counts as silence (-80 dBFS): its gain is capped.
SILENCE_RMS = 1e-4

#: The sizes the paper leaves open (defaults), recorded in each file's metadata.
SIZES = {"channels": 32, "kernel": 100, "stride": 50, "hidden": 64, "layers": 1}


class DoyleGRU(nn.Module):
    """Predict the next ``predict`` samples from ``context`` samples (one genre).

    Parameters
    ----------
    context : int
        Input samples (9000: 0.9 s at 10 kHz).
    predict : int
        Output samples (1000: 0.1 s).
    channels, kernel, stride : int
        The 1-D convolution: output channels, kernel length and stride in samples.
    hidden : int
        GRU hidden size per direction.
    layers : int
        Stacked GRU layers.
    target_rms : float
        Level the context is normalised to inside ``forward``.
    """

    def __init__(self, context=CONTEXT_SAMPLES, predict=PREDICT_SAMPLES, channels=32, kernel=100, stride=50, hidden=64, layers=1, target_rms=TARGET_RMS):
        super().__init__()
        if context < kernel:
            raise ValueError(f"context ({context}) must be at least the kernel ({kernel})")
        self.context = int(context)
        self.predict = int(predict)
        self.hidden = int(hidden)
        self.target_rms = float(target_rms)
        self.silence_rms = float(SILENCE_RMS)
        self.sample_rate = int(SAMPLE_RATE)
        self.conv = nn.Conv1d(1, channels, kernel, stride=stride)
        self.gru = nn.GRU(channels, hidden, num_layers=layers, batch_first=True, bidirectional=True)
        self.out = nn.Linear(3 * hidden, predict)
        self.frames = (context - kernel) // stride + 1

    def gain(self, x: torch.Tensor) -> torch.Tensor:
        """Per-example gain ``[batch, 1]`` that brings the context to ``target_rms`` (capped for silence)."""
        rms = torch.sqrt(torch.mean(x * x, dim=1, keepdim=True))
        return self.target_rms / torch.clamp(rms, min=self.silence_rms)

    def predict_normalised(self, xn: torch.Tensor) -> torch.Tensor:
        """The network on a context already at ``target_rms``: ``[batch, context] -> [batch, predict]``."""
        h = torch.tanh(self.conv(xn.unsqueeze(1)))  # [b, channels, frames]
        seq, _ = self.gru(h.transpose(1, 2))  # [b, frames, 2 * hidden]
        last = seq[:, -1, :]  # forward: whole context; backward: the last frame only
        first_bwd = seq[:, 0, self.hidden :]  # backward: whole context
        return self.out(torch.cat([last, first_bwd], dim=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [batch, context]`` audio (any level) -> ``[batch, predict]``, the next samples at the same level."""
        g = self.gain(x)
        return self.predict_normalised(x * g) / g

    @torch.jit.export
    def describe(self) -> list[int]:
        """[sample_rate, context, predict] (for a TorchScript file's reader)."""
        return [self.sample_rate, self.context, self.predict]
