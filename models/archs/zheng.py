"""Zheng: a two-layer mel-spectrogram CNN for GTZAN.

"Musical Genre Classification with Convolutional Neural Networks" (seed
paper, ``/work/shared/seeds/zheng-genre-classification-cnn.txt``), Sec. IV.B-D:

* input: 128 mel bands (x 660 time windows for a 30 s GTZAN clip at 22 050 Hz),
  "scaled so that they are between 0 and 1";
* conv 16 filters 3x3 -> max pool 2x4 -> conv 32 filters 3x3 -> max pool 2x4
  -> dense 64 -> output 10 (softmax); ReLU in all hidden layers; dropout
  "used to prevent overfitting"; categorical cross-entropy;
* 20 % of the data held out for testing; overfitting began after about 15
  epochs.

What the paper leaves open, and what we chose:

* **Mel config.** 660 windows per 30 s is about 22 frames/s, i.e. a hop of
  about 1000 samples at 22 050 Hz. We use librosa's n_fft 2048 with hop 1024
  (21.5 frames/s, 50 % overlap), so 5 s -> 108 centred frames. Values in dB
  (``power_to_db``): the paper says only "scaled to 0..1", and a linear
  power spectrogram scaled to 0..1 is almost all zeros.
* **Scaling to 0..1 happens per window inside** :meth:`Zheng.forward`:
  ``(x - min) / (max - min)`` over each example's ``[128, 108]`` patch. The
  paper's scaling was presumably over its dataset; the engine has no dataset
  statistics at run time, and per-window min-max is the self-contained
  version (it also makes the model insensitive to input gain). A constant
  window (silence) maps to zeros.
* **Convolutions unpadded** (Keras' default "valid"), **dropout 0.5** before
  the output layer (the paper gives no rate), Glorot-uniform initialisation
  (Keras' default).

Shapes for 5 s: ``[B, 128, 108]`` -> conv1 block ``[B, 16, 63, 26]`` ->
conv2 block ``[B, 32, 30, 6]`` -> dense ``[B, 64]`` -> logits ``[B, n]``.
"""

from typing import Final, List

import torch
from torch import Tensor, nn

from genredream.engine.mel import MelConfig

from ._common import MelNet, flat_size, glorot_init, make_meta

PAPER = "Zheng, Musical Genre Classification with Convolutional Neural Networks (GTZAN)"

# Zheng Sec. IV.D: "128 mel scales"; GTZAN is 22 050 Hz (Sec. IV.A). n_fft and
# hop are our choice (see module docstring): hop 1024 ~ the paper's 660 frames / 30 s.
MEL = MelConfig(sr=22050, n_fft=2048, hop_length=1024, n_mels=128, scaling="db")

LAYERS = ["conv1", "conv2", "dense"]

# Zheng Sec. IV.D: 16 then 32 filters of 3x3, max pooling 2x4 after each, dense 64.
CONV_CHANNELS = (16, 32)
KERNEL = (3, 3)
POOL = (2, 4)
DENSE = 64
DROPOUT = 0.5  # our choice: the paper says only that dropout was used


class Zheng(MelNet):
    """Two conv/pool blocks and a 64-unit dense layer on a min-max scaled dB mel.

    Parameters
    ----------
    labels : list of str
        Class names (GTZAN has 10).
    mel : engine.mel.MelConfig
        Front end; defaults to :data:`MEL` (128 bands, 108 frames per 5 s, dB).
    """

    EPS: Final[float] = 1e-6

    def __init__(self, labels: List[str], mel: MelConfig = MEL):
        super().__init__(labels, mel, LAYERS)
        self.conv1 = nn.Sequential(nn.Conv2d(1, CONV_CHANNELS[0], KERNEL), nn.ReLU(), nn.MaxPool2d(POOL))
        self.conv2 = nn.Sequential(nn.Conv2d(CONV_CHANNELS[0], CONV_CHANNELS[1], KERNEL), nn.ReLU(), nn.MaxPool2d(POOL))
        n_flat = flat_size(nn.Sequential(self.conv1, self.conv2), [1, self.n_mels, self.n_frames])
        self.dense = nn.Sequential(nn.Flatten(1), nn.Linear(n_flat, DENSE), nn.ReLU())
        self.drop = nn.Dropout(DROPOUT)
        self.out = nn.Linear(DENSE, len(self.labels))
        glorot_init(self)

    def _minmax(self, x: Tensor) -> Tensor:
        # Per-window scaling to [0, 1] (see module docstring for why per window).
        lo = torch.amin(x, dim=(1, 2), keepdim=True)
        hi = torch.amax(x, dim=(1, 2), keepdim=True)
        return (x - lo) / (hi - lo + self.EPS)

    def _trunk(self, x: Tensor) -> List[Tensor]:
        h1 = self.conv1(self._minmax(x).unsqueeze(1))
        h2 = self.conv2(h1)
        d = self.dense(h2)
        return [h1, h2, d]

    def forward(self, x: Tensor) -> Tensor:
        """Logits from a dB mel window.

        Parameters
        ----------
        x : Tensor, float32, shape [batch, 128, 108]
            ``frontend(wave)`` of 5 s at 22 050 Hz (dB, as the engine's front end).

        Returns
        -------
        Tensor, float32, shape [batch, n_labels]
        """
        return self.out(self.drop(self._trunk(x)[-1]))

    @torch.jit.export
    def features(self, x: Tensor) -> List[Tensor]:
        """Block outputs: ``conv1 [B,16,63,26]``, ``conv2 [B,32,30,6]``, ``dense [B,64]`` (after ReLU/pool)."""
        return self._trunk(x)


def build(labels: List[str]):
    """An untrained :class:`Zheng` and its model-file metadata."""
    module = Zheng(labels)
    return module, make_meta("zheng", module, PAPER, MEL)
