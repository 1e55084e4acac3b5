"""Doyle & Lopez: a five-block mel CNN on 5-second clips.

"Genre Classification and Generation of Music Samples via Neural Networks"
(seed paper, ``/work/shared/seeds/doyle-lopez-genre-classification-...``),
Sec. 2.2 (classification network):

* mel spectrograms of randomly selected 5 s clips of GTZAN (22 050 Hz),
  computed with librosa;
* five convolution layers, "each followed by a max pooling layer";
* batch normalisation "to increase the stability and speed";
* dropout probability 0.5;
* Adam, learning rate 0.0001; PyTorch.

Their Figure 3 (the layer table) is not in the text we have, so the sizes are
ours, chosen to keep the model around 2.5 MB:

* librosa's defaults for the mel (n_fft 2048, hop 512, 128 bands), in dB:
  5 s -> ``[128, 216]``;
* each block: 3x3 convolution (padding 1) -> batch norm -> ReLU -> 2x2 max
  pooling, with 16, 32, 64, 128, 128 filters: ``[128, 216]`` -> 64x108 ->
  32x54 -> 16x27 -> 8x13 -> 4x6;
* flatten (3072) -> dropout 0.5 -> dense 128 + ReLU -> dropout 0.5 -> logits.

The companion generator (``doyle-gru``, models/archs/doyle_gru.py) is not part of this
module.
"""

from typing import List

import torch
from torch import Tensor, nn

from genredream.engine.mel import MelConfig

from ._common import MelNet, flat_size, make_meta

PAPER = "Doyle & Lopez, Genre Classification and Generation of Music Samples via Neural Networks"

# librosa defaults (the paper computed its mels with librosa), dB; 216 frames per 5 s.
MEL = MelConfig(sr=22050, n_fft=2048, hop_length=512, n_mels=128, scaling="db")

# Doyle & Lopez Sec. 2.2: five conv layers each with max pooling. Widths are ours.
CHANNELS = (16, 32, 64, 128, 128)
DENSE = 128
# Doyle & Lopez Sec. 2.2: dropout probability 0.5.
DROPOUT = 0.5

LAYERS = [f"conv{i + 1}" for i in range(len(CHANNELS))] + ["dense"]


class Doyle(MelNet):
    """Five conv/BN/ReLU/max-pool blocks, a 128-unit dense layer, dropout 0.5.

    Parameters
    ----------
    labels : list of str
        Class names (GTZAN has 10).
    mel : engine.mel.MelConfig
        Front end; defaults to :data:`MEL` (128 x 216 dB per 5 s).
    """

    def __init__(self, labels: List[str], mel: MelConfig = MEL):
        super().__init__(labels, mel, LAYERS)
        blocks = []
        c_in = 1
        for c in CHANNELS:
            blocks.append(
                nn.Sequential(
                    nn.Conv2d(c_in, c, 3, padding=1),
                    nn.BatchNorm2d(c),
                    nn.ReLU(),
                    nn.MaxPool2d(2),
                )
            )
            c_in = c
        self.blocks = nn.ModuleList(blocks)
        n_flat = flat_size(nn.Sequential(*blocks), [1, self.n_mels, self.n_frames])
        self.dense = nn.Sequential(nn.Dropout(DROPOUT), nn.Linear(n_flat, DENSE), nn.ReLU())
        self.drop = nn.Dropout(DROPOUT)
        self.out = nn.Linear(DENSE, len(self.labels))

    def _trunk(self, x: Tensor) -> List[Tensor]:
        h = x.unsqueeze(1)
        outs: List[Tensor] = []
        for block in self.blocks:
            h = block(h)
            outs.append(h)
        outs.append(self.dense(torch.flatten(h, 1)))
        return outs

    def forward(self, x: Tensor) -> Tensor:
        """Logits from a dB mel window.

        Parameters
        ----------
        x : Tensor, float32, shape [batch, 128, 216]
            ``frontend(wave)`` of 5 s at 22 050 Hz.

        Returns
        -------
        Tensor, float32, shape [batch, n_labels]
        """
        return self.out(self.drop(self._trunk(x)[-1]))

    @torch.jit.export
    def features(self, x: Tensor) -> List[Tensor]:
        """Block outputs ``conv1 [B,16,64,108]`` ... ``conv5 [B,128,4,6]`` and ``dense [B,128]``."""
        return self._trunk(x)


def build(labels: List[str]):
    """An untrained :class:`Doyle` and its model-file metadata."""
    module = Doyle(labels)
    return module, make_meta("doyle", module, PAPER, MEL)
