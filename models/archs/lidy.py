"""Lidy & Schindler (2016): sequential and parallel mel CNNs from MIREX 2016.

"Parallel Convolutional Neural Networks for Music Genre and Mood
Classification" (seed paper, ``/work/shared/seeds/lidy-schindler-2016-...``).
Three models, ids ``lidy1``, ``lidy2``, ``lidy3`` (the paper's Models 1-3).

From the paper:

* Sec. 2.1: mono; Hann window of 3072 samples with 50 % overlap at 44.1 kHz,
  "automatically adapted proportionally for 22 or 11 kHz" (footnote 1); 40 mel
  bands; log10 of all values; segments of 80 frames (124 416 samples,
  2.82 s); 30 random segments per file for training.
* Sec. 2.2.1, Model 1: 30 filters of 10x12, max pooling 1x20.
* Sec. 2.2.2, Model 2: two parallel pipelines on the same input:
  32 filters 14x15 + pooling 1x17 (frequency relations) and 32 filters 4x8 +
  pooling 15x1 (temporal relations); flattened, concatenated, dense 200,
  softmax output.
* Sec. 2.2.3, Model 3: 30 filters 10x12 and 30 filters 10x34 in parallel,
  both pooled 1x20; "all the other parameters remain the same as model 2".
* Sec. 2.3: Glorot-uniform initialisation, LeakyReLU alpha 0.3 in conv
  layers, sigmoid in dense layers, dropout 0.2 on the dense layer.
* Sec. 2.4: SGD, constant learning rate 0.02, mini-batch 40, 150 epochs.

Kernel and pooling sizes are (frequency, time), as the paper's reading of
them says ("pooled drastically on the time axis" for 1x20). The output
shapes the paper quotes for Model 2 (67x68 and 5x75) correspond to an
80 x 82 input, not the 40 x 80 it describes (probably carried over from
the earlier 80-band work it builds on); we follow the stated 40 x 80 input,
which gives 27x3 and 2x73 after pooling.

Our choices for the engine's 5 s window:

* **Sample rate 22 050 Hz**, so per footnote 1 the window is 3072/2 = 1536
  samples with hop 768 (50 %). 5 s = 110 250 samples -> 144 centred frames.
* **Segments.** The network is defined on 80-frame segments (at hop 768 that
  is 2.79 s, the paper's 2.82 s). The 144-frame window is cut into 3
  overlapping segments starting at frames 0, 32 and 64 (hop 32 frames,
  ~1.1 s), which cover the window exactly; the model's logits are the mean of
  the 3 segments' logits (a geometric mean of their softmax outputs, up to
  normalisation). Training on 5 s windows therefore trains on 3 segments
  at a time, which is close to the paper's many-segments-per-file sampling.
* **Model 1's dense layer.** The paper only describes conv + pooling for
  Model 1; Sec. 2.3 puts sigmoid dense layers with dropout 0.2 in "all
  architectures", so Model 1 gets the same dense 200 as Models 2 and 3.
* **No padding** (Keras' "valid" default); pooling floors partial windows.

Feature tensors keep the segments as a second axis: conv features are
``[B, 3, C, H, W]`` and the dense one ``[B, 3, 200]``.
"""

from typing import List, Tuple

import torch
from torch import Tensor, nn

from genredream.engine.mel import MelConfig

from ._common import MelNet, flat_size, glorot_init, make_meta

PAPER = "Lidy & Schindler 2016, Parallel Convolutional Neural Networks for Music Genre and Mood Classification (MIREX)"

# Lidy & Schindler 2016, Sec. 2.1: Hann 3072 / 50 % at 44.1 kHz, halved for 22 kHz
# (footnote 1); 40 mel bands; log10.
MEL = MelConfig(sr=22050, n_fft=1536, hop_length=768, n_mels=40, scaling="log10")

# Lidy & Schindler 2016, Sec. 2.1: segments of 80 frames.
SEGMENT_FRAMES = 80
# Our choice: 3 segments at 0, 32, 64 cover the 144-frame window exactly.
SEGMENT_HOP = 32

# Lidy & Schindler 2016, Sec. 2.3: LeakyReLU alpha 0.3; dropout 0.2; Sec. 2.2.2: dense 200.
LEAKY_SLOPE = 0.3
DROPOUT = 0.2
DENSE = 200

# (filters, kernel (freq, time), pool (freq, time)) per pipeline; Sec. 2.2.1-2.2.3.
Branch = Tuple[int, Tuple[int, int], Tuple[int, int]]
VARIANTS = {
    # Sec. 2.2.1: 30 filters 10x12, max pooling 1x20.
    "lidy1": ([(30, (10, 12), (1, 20))], ["conv"]),
    # Sec. 2.2.2: 32 filters 14x15 + pool 1x17 || 32 filters 4x8 + pool 15x1.
    "lidy2": ([(32, (14, 15), (1, 17)), (32, (4, 8), (15, 1))], ["conv_freq", "conv_time"]),
    # Sec. 2.2.3: 30 filters 10x12 || 30 filters 10x34, both pooled 1x20.
    "lidy3": ([(30, (10, 12), (1, 20)), (30, (10, 34), (1, 20))], ["conv_10x12", "conv_10x34"]),
}


class Lidy(MelNet):
    """Lidy & Schindler's Models 1-3: one or two conv pipelines, dense 200, softmax.

    Parameters
    ----------
    labels : list of str
        Class names.
    variant : {"lidy1", "lidy2", "lidy3"}
        Which of the paper's models.
    mel : engine.mel.MelConfig
        Front end; defaults to :data:`MEL` (40 bands, log10, 144 frames per 5 s).

    Shapes (5 s window, ``S = 3`` segments)
    ---------------------------------------
    input ``[B, 40, 144]`` -> segments ``[B*S, 1, 40, 80]`` -> each pipeline's
    conv/LeakyReLU/pool -> flattened and concatenated -> dense 200 (sigmoid)
    -> per-segment logits -> mean over segments ``[B, n_labels]``.
    """

    segment_frames: int
    segment_hop: int
    n_segments: int

    def __init__(self, labels: List[str], variant: str = "lidy2", mel: MelConfig = MEL):
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {sorted(VARIANTS)}, got {variant!r}")
        branches, names = VARIANTS[variant]
        super().__init__(labels, mel, names + ["dense"])
        self.variant = variant
        self.segment_frames = SEGMENT_FRAMES
        self.segment_hop = SEGMENT_HOP
        if self.n_frames < SEGMENT_FRAMES:
            raise ValueError(f"the window has {self.n_frames} frames, fewer than one {SEGMENT_FRAMES}-frame segment")
        self.n_segments = 1 + (self.n_frames - SEGMENT_FRAMES) // SEGMENT_HOP
        self.branches = nn.ModuleList(
            nn.Sequential(nn.Conv2d(1, c, k), nn.LeakyReLU(LEAKY_SLOPE), nn.MaxPool2d(p)) for c, k, p in branches
        )
        n_flat = sum(flat_size(b, [1, self.n_mels, SEGMENT_FRAMES]) for b in self.branches)
        self.dense = nn.Sequential(nn.Linear(n_flat, DENSE), nn.Sigmoid())
        self.drop = nn.Dropout(DROPOUT)
        self.out = nn.Linear(DENSE, len(self.labels))
        glorot_init(self)

    def _segments(self, x: Tensor) -> Tensor:
        # [B, n_mels, T] -> [B*S, 1, n_mels, 80]: overlapping 80-frame segments.
        seg = x.unfold(2, self.segment_frames, self.segment_hop)  # [B, M, S, 80]
        b, m, s, f = seg.shape
        return seg.permute(0, 2, 1, 3).reshape(b * s, 1, m, f)

    def _trunk(self, x: Tensor) -> List[Tensor]:
        # Per-segment activations, batch axis B*S: each pipeline, then the dense layer.
        seg = self._segments(x)
        outs: List[Tensor] = []
        flats: List[Tensor] = []
        for branch in self.branches:
            h = branch(seg)
            outs.append(h)
            flats.append(torch.flatten(h, 1))
        outs.append(self.dense(torch.cat(flats, dim=1)))
        return outs

    def forward(self, x: Tensor) -> Tensor:
        """Logits averaged over the window's segments.

        Parameters
        ----------
        x : Tensor, float32, shape [batch, 40, 144]
            log10 mel of 5 s at 22 050 Hz (``frontend(wave)``).

        Returns
        -------
        Tensor, float32, shape [batch, n_labels]
        """
        b = x.shape[0]
        logits = self.out(self.drop(self._trunk(x)[-1]))
        return logits.reshape(b, -1, logits.shape[1]).mean(dim=1)

    @torch.jit.export
    def features(self, x: Tensor) -> List[Tensor]:
        """Each pipeline's pooled output ``[B, S, C, H, W]`` and the dense layer ``[B, S, 200]``."""
        b = x.shape[0]
        return [h.reshape([b, -1] + list(h.shape[1:])) for h in self._trunk(x)]


def build_variant(variant: str, labels: List[str]):
    """An untrained :class:`Lidy` of the given variant and its metadata."""
    module = Lidy(labels, variant)
    notes = f"Model {variant[-1]} of the paper; {module.n_segments} segments of {SEGMENT_FRAMES} frames per window"
    return module, make_meta(variant, module, PAPER, MEL, notes)


def build_lidy1(labels: List[str]):
    return build_variant("lidy1", labels)


def build_lidy2(labels: List[str]):
    return build_variant("lidy2", labels)


def build_lidy3(labels: List[str]):
    return build_variant("lidy3", labels)
