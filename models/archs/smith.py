"""Smith (UMass): a mel "image" CNN whose first filter spans the whole spectrum.

"Music Classification With Deep Learning" (seed paper,
``/work/shared/seeds/smith-music-classification-deep-learning.txt``):

* Sec. 2.2: a square mel image (323 x 323 for a random 30 s clip) from
  librosa's melspectrogram on a mono signal;
* Sec. 3: first convolution with kernel ``(height, 1)`` - each filter sees one
  whole spectral column - with padding 2, ReLU, 2x2 max pooling; second
  convolution of kernel size 5 with padding 2, batch normalisation before
  the activation and pooling (and deliberately none after the first
  convolution), ReLU, 2x2 max pooling again; dense layers with at most 1024
  units; dropout 0.2 on the flattened tensor in the best model (Sec. 4);
  ReLU in all layers before the dense ones; PyTorch;
* Sec. 2.1 / 3: trains on a user's own folder-per-genre collection, with
  song-level train/test separation and 90/10 train/validation splits.

The author's code (github.com/jommysmoth/ECE_Music, ``CNN.py``) uses 20 and
40 filters for the two convolutions; we use those counts.

Our choices for the engine's 5 s window:

* **A 128 x 128 square image**: 128 mel bands (librosa's default count) and
  a hop of 864 samples at 22 050 Hz, so 5 s (110 250 samples) gives exactly
  ``1 + 110250 // 864 = 128`` centred frames; n_fft 2048 (librosa's default).
  Shapes: ``[B,128,128]`` -> conv1 (128x1, pad 2) ``[B,20,5,132]`` -> pool
  ``[B,20,2,66]`` -> conv2 (5x5, pad 2) + BN ``[B,40,2,66]`` -> pool
  ``[B,40,1,33]`` -> 1320 -> dense 1024 -> logits.
* **dB values** (librosa's ``power_to_db``; the paper does not name a
  compression, but a linear power image spans ~8 decades), mapped by a fixed
  affine ``(x + 40) / 40`` so -80..0 dB becomes -1..1: the first convolution
  has no batch norm after it, and a 128-tap filter on raw dB values
  (around -50) starts far outside the range ReLU layers train well in.
* **One hidden dense layer of 1024 units** with ReLU (the paper's maximum
  size; its code stacked linear layers without activations, which is one
  linear map), dropout 0.2 on the flattened tensor.
"""

from typing import Final, List

import torch
from torch import Tensor, nn

from genredream.engine.mel import MelConfig

from ._common import MelNet, flat_size, make_meta

PAPER = "Smith, Music Classification With Deep Learning (UMass Amherst)"

# Our square 5 s image: 128 bands x 128 frames (see module docstring).
MEL = MelConfig(sr=22050, n_fft=2048, hop_length=864, n_mels=128, scaling="db")

LAYERS = ["conv1", "conv2", "dense"]

# Smith Sec. 3: padding 2 on both convolutions, second kernel 5, 2x2 pooling.
PADDING = 2
KERNEL2 = 5
POOL = 2
# Smith's code (ECE_Music CNN.py): 20 and 40 filters.
CHANNELS = (20, 40)
# Smith Sec. 3: "1024 as the max hidden layer size"; Sec. 4: dropout 0.2.
DENSE = 1024
DROPOUT = 0.2


class Smith(MelNet):
    """Full-height first filter, 5x5 second filter with batch norm, dense 1024.

    Parameters
    ----------
    labels : list of str
        Class names (the paper used 6 genres and planned to add more).
    mel : engine.mel.MelConfig
        Front end; defaults to :data:`MEL` (128 x 128 dB image per 5 s).
    """

    DB_OFFSET: Final[float] = 40.0
    DB_SCALE: Final[float] = 40.0

    def __init__(self, labels: List[str], mel: MelConfig = MEL):
        super().__init__(labels, mel, LAYERS)
        # Smith Sec. 3: kernel (height, 1), padding 2, ReLU, 2x2 max pooling, no batch norm.
        self.conv1 = nn.Sequential(
            nn.Conv2d(1, CHANNELS[0], (self.n_mels, 1), padding=PADDING), nn.ReLU(), nn.MaxPool2d(POOL)
        )
        # Smith Sec. 3: kernel 5, padding 2, batch norm before ReLU and pooling.
        self.conv2 = nn.Sequential(
            nn.Conv2d(CHANNELS[0], CHANNELS[1], KERNEL2, padding=PADDING),
            nn.BatchNorm2d(CHANNELS[1]),
            nn.ReLU(),
            nn.MaxPool2d(POOL),
        )
        n_flat = flat_size(nn.Sequential(self.conv1, self.conv2), [1, self.n_mels, self.n_frames])
        self.drop = nn.Dropout(DROPOUT)
        self.dense = nn.Sequential(nn.Linear(n_flat, DENSE), nn.ReLU())
        self.out = nn.Linear(DENSE, len(self.labels))

    def _trunk(self, x: Tensor) -> List[Tensor]:
        z = (x + self.DB_OFFSET) / self.DB_SCALE
        h1 = self.conv1(z.unsqueeze(1))
        h2 = self.conv2(h1)
        d = self.dense(self.drop(torch.flatten(h2, 1)))
        return [h1, h2, d]

    def forward(self, x: Tensor) -> Tensor:
        """Logits from a dB mel image.

        Parameters
        ----------
        x : Tensor, float32, shape [batch, 128, 128]
            ``frontend(wave)`` of 5 s at 22 050 Hz.

        Returns
        -------
        Tensor, float32, shape [batch, n_labels]
        """
        return self.out(self._trunk(x)[-1])

    @torch.jit.export
    def features(self, x: Tensor) -> List[Tensor]:
        """Block outputs: ``conv1 [B,20,2,66]``, ``conv2 [B,40,1,33]``, ``dense [B,1024]``."""
        return self._trunk(x)


def build(labels: List[str]):
    """An untrained :class:`Smith` and its model-file metadata."""
    module = Smith(labels)
    return module, make_meta("smith", module, PAPER, MEL)
