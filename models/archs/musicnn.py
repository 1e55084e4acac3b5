"""musicnn (Pons & Serra 2019) in torch: the real-music tagger.

Pons, J. and Serra, X. (2019), "musicnn: pre-trained convolutional neural
networks for music audio tagging", ISMIR late-breaking demo; weights from the
``musicnn`` PyPI package (ISC licence, Music Technology Group, Universitat
Pompeu Fabra; see ``models/pretrained/LICENSE-musicnn.txt``). This module is
written from the description of the network, and the conversion script
``scripts/convert_musicnn.py`` proves it equal to the original TensorFlow
graph (``docs/musicnn.md``).

Input
-----
A log-compressed mel spectrogram ``x``, float32 ``[batch, 96, frames]``:
16 kHz audio, n_fft 512 (32 ms), hop 256 (16 ms), 96 slaney mel bands, power
2, then ``log10(1 + 10000 * mel)`` (:func:`genredream.engine.mel.logc_scale`). The
network was trained on patches of 187 frames (3 s); it pools globally over
time, so any ``frames >= 1`` works, and the engine feeds its 5-second window
(313 frames) whole: see ``docs/musicnn.md`` for how close that is to the mean
of 3-second patches.

Network (shapes for ``T`` frames; ``F = 96`` mel bands)
------------------------------------------------------
front end, "musically motivated":
    batch norm of the input (one channel), then five branches whose outputs
    are max-pooled over whatever frequency extent is left:

    * timbral, 204 filters each, kernels 7 frames x 38 bands and
      7 frames x 67 bands (40 % and 70 % of the bands), time zero-padded 3+3,
      no frequency padding: ``[B, 204, T]`` each;
    * temporal, 51 filters each, kernels 128, 64 and 32 frames x 1 band,
      TensorFlow "same" padding along time (``(k-1)//2`` zeros before,
      ``k//2`` after: even kernels pad one more frame after than before):
      ``[B, 51, T]`` each.

    Each branch is conv -> ReLU -> batch norm -> max over frequency. The five
    are concatenated into ``[B, 561, T]``.
mid end, dense connections:
    three 1-D convolutions over time (64 filters, width 7, zero-padded 3+3),
    each conv -> ReLU -> batch norm, the second and third with a residual
    connection. The front-end output and the three mid-end outputs are
    concatenated: ``[B, 561 + 3 * 64 = 753, T]``.
back end:
    max and mean over time (``[B, 753]`` each) concatenated ``[max, mean]``
    into ``[B, 1506]``, batch norm, dense 200 + ReLU, batch norm (the
    "penultimate" layer), dense to the 50 tag logits. Dropout (0.5 during
    training) is an identity at inference and omitted.

All batch norms use epsilon 1e-3, TensorFlow's default. Outputs are logits:
the tags are independent, so probabilities are ``sigmoid(logits)``.
"""

from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from genredream.engine.mel import MelConfig

from ._common import MelNet, check_labels, glorot_init, make_meta

# The layers live in musicnn_blocks.py; TF_BN_EPS and _TemporalBlock are
# re-exported here, where tests/test_musicnn.py and older callers import them.
from .musicnn_blocks import TF_BN_EPS, _bn1d, _bn2d, _MidConv, _TemporalBlock, _TimbralBlock  # noqa: F401

__all__ = [
    "Musicnn",
    "MUSICNN_LAYERS",
    "MTT_LABELS",
    "MSD_LABELS",
    "MTT_GENRES",
    "MSD_GENRES",
    "MEL",
    "musicnn_mel_config",
    "build",
]

PAPER = "Pons & Serra 2019, musicnn: pre-trained convolutional neural networks for music audio tagging (ISMIR LBD)"

#: The front end musicnn was trained with: 16 kHz, n_fft 512, hop 256, 96
#: slaney-normalised mel bands from 0 Hz to 8 kHz, power 2, then
#: ``log10(1 + 10000 x)`` ("logC"). A 5 s window is 313 frames.
MEL = MelConfig(sr=16000, n_fft=512, hop_length=256, n_mels=96, scaling="logC")

#: Names of the tensors :meth:`Musicnn.features` returns, in order (the same
#: names the musicnn package's extractor uses).
MUSICNN_LAYERS = ["timbral", "temporal", "cnn1", "cnn2", "cnn3", "mean_pool", "max_pool", "penultimate"]

#: MagnaTagATune's 50 tags, in the order of the MTT model's outputs.
MTT_LABELS = [
    "guitar", "classical", "slow", "techno", "strings", "drums", "electronic", "rock", "fast", "piano",
    "ambient", "beat", "violin", "vocal", "synth", "female", "indian", "opera", "male", "singing",
    "vocals", "no vocals", "harpsichord", "loud", "quiet", "flute", "woman", "male vocal", "no vocal", "pop",
    "soft", "sitar", "solo", "man", "classic", "choir", "voice", "new age", "dance", "male voice",
    "female vocal", "beats", "harp", "cello", "no voice", "weird", "country", "metal", "female voice", "choral",
]  # fmt: skip

#: The Million Song Dataset's 50 most frequent last.fm tags, in the order of the MSD model's outputs.
MSD_LABELS = [
    "rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s", "alternative rock", "jazz",
    "beautiful", "metal", "chillout", "male vocalists", "classic rock", "soul", "indie rock", "Mellow", "electronica", "80s",
    "folk", "90s", "chill", "instrumental", "punk", "oldies", "blues", "hard rock", "ambient", "acoustic",
    "experimental", "female vocalist", "guitar", "Hip-Hop", "70s", "party", "country", "easy listening", "sexy", "catchy",
    "funk", "electro", "heavy metal", "Progressive rock", "60s", "rnb", "indie pop", "sad", "House", "happy",
]  # fmt: skip

#: The tags that name a genre or style (not an instrument, voice, mood or era).
#: A judgement call, written down so the engine can show a genre view of a
#: tagger: "classic" on MTT is listeners' shorthand for classical music.
MTT_GENRES = [
    "classical", "techno", "electronic", "rock", "ambient", "indian", "opera", "pop", "classic", "new age",
    "dance", "country", "metal", "choral",
]  # fmt: skip
MSD_GENRES = [
    "rock", "pop", "alternative", "indie", "electronic", "dance", "alternative rock", "jazz", "metal", "chillout",
    "classic rock", "soul", "indie rock", "electronica", "folk", "punk", "blues", "hard rock", "ambient", "experimental",
    "Hip-Hop", "country", "easy listening", "funk", "electro", "heavy metal", "Progressive rock", "rnb", "indie pop", "House",
]  # fmt: skip


def musicnn_mel_config() -> MelConfig:
    """The front end musicnn was trained with (:data:`MEL`)."""
    return MEL


class Musicnn(MelNet):
    """The musicnn tagger (``MTT_musicnn`` and ``MSD_musicnn`` share this shape).

    Parameters
    ----------
    labels : list of str
        Tag names, one per output (50 for both pre-trained models:
        :data:`MTT_LABELS`, :data:`MSD_LABELS`).
    mel : engine.mel.MelConfig
        The front end (:data:`MEL`); :meth:`frontend` computes it in torch
        (``models.torch_mel.TorchMel``) so the dreamer can differentiate from
        waveform to tags.
    frontend_filters : float
        Width factor of the front end: ``int(1.6 * 128) = 204`` timbral and
        ``int(1.6 * 32) = 51`` temporal filters per branch.
    midend_filters : int
        Filters of each mid-end convolution (64).
    backend_units : int
        Units of the penultimate dense layer (200).

    Methods
    -------
    forward(x) : ``[B, n_mels, T]`` -> logits ``[B, n_labels]`` (any ``T >= 1``)
    features(x) : the activations named in :data:`MUSICNN_LAYERS`
    frontend(wave) : ``[B, samples]`` at 16 kHz -> ``[B, n_mels, 1 + samples // 256]``
    """

    def __init__(
        self,
        labels: Optional[List[str]] = None,
        mel: MelConfig = MEL,
        frontend_filters: float = 1.6,
        midend_filters: int = 64,
        backend_units: int = 200,
    ):
        super().__init__(check_labels(MTT_LABELS if labels is None else labels), mel, list(MUSICNN_LAYERS))
        n_mels = self.n_mels
        timbral = int(frontend_filters * 128)
        temporal = int(frontend_filters * 32)
        self.input_bn = _bn2d(1)
        self.timbral = nn.ModuleList(
            [_TimbralBlock(timbral, int(0.4 * n_mels)), _TimbralBlock(timbral, int(0.7 * n_mels))]
        )
        self.temporal = nn.ModuleList([_TemporalBlock(temporal, k) for k in (128, 64, 32)])
        front = 2 * timbral + 3 * temporal
        self.mid = nn.ModuleList(
            [_MidConv(front, midend_filters), _MidConv(midend_filters, midend_filters), _MidConv(midend_filters, midend_filters)]
        )
        pooled = front + 3 * midend_filters
        self.pool_bn = _bn1d(2 * pooled)
        self.dense = nn.Linear(2 * pooled, backend_units)
        self.dense_bn = _bn1d(backend_units)
        self.out = nn.Linear(backend_units, len(self.labels))
        glorot_init(self)  # tf.compat.v1.layers' default initialiser, as the original was trained from

    def _check(self, x: torch.Tensor):
        if x.dim() != 3 or x.size(1) != self.n_mels:
            raise ValueError(f"musicnn: x must be [batch, {self.n_mels} mel bands, frames], got {list(x.shape)}")

    def _front(self, x: torch.Tensor) -> List[torch.Tensor]:
        x = self.input_bn(x.unsqueeze(1))
        outs: List[torch.Tensor] = []
        for block in self.timbral:
            outs.append(block(x))
        for block in self.temporal:
            outs.append(block(x))
        return outs

    def _mid(self, front: torch.Tensor) -> List[torch.Tensor]:
        c1 = self.mid[0](front)
        c2 = self.mid[1](c1) + c1
        c3 = self.mid[2](c2) + c2
        return [c1, c2, c3]

    def _head(self, front: torch.Tensor) -> List[torch.Tensor]:
        """Mid end and back end of the front-end output ``[B, 561, T]``:
        cnn1, cnn2, cnn3, mean_pool, max_pool, penultimate, logits."""
        return self._tail(front, self._mid(front))

    def _tail(self, front: torch.Tensor, mids: List[torch.Tensor]) -> List[torch.Tensor]:
        """The back end from the front end's and the mid end's outputs: the same list as :meth:`_head`."""
        # Pooled piece by piece: the same numbers as pooling their concatenation, without copying 1 MB.
        parts = [front] + mids
        max_pool = torch.cat([p.amax(dim=2) for p in parts], dim=1)
        mean_pool = torch.cat([p.mean(dim=2) for p in parts], dim=1)
        h = self.pool_bn(torch.cat([max_pool, mean_pool], dim=1))
        penultimate = self.dense_bn(F.relu(self.dense(h)))
        logits = self._logits(h, penultimate)
        return mids + [mean_pool, max_pool, penultimate, logits]

    def _logits(self, pooled: torch.Tensor, penultimate: torch.Tensor) -> torch.Tensor:
        """The output layer on the back end's batch-normed pooled features ``[B, 1506]`` and the
        penultimate ``[B, 200]``. A subclass replaces it (``musicnn_head``: a genre head on the
        tagger's body), so forward, features and the engine's streaming step stay one code path."""
        return self.out(penultimate)

    def _all(self, x: torch.Tensor) -> List[torch.Tensor]:
        self._check(x)
        fr = self._front(x)
        timbral = torch.cat([fr[0], fr[1]], dim=1)
        temporal = torch.cat([fr[2], fr[3], fr[4]], dim=1)
        return [timbral, temporal] + self._head(torch.cat(fr, dim=1))

    # -- streaming: the engine computes the front end only where the window changed
    #
    # Every front-end branch is a convolution along time followed by
    # per-frame operations, so its output at frame t depends only on frames
    # t - before .. t + after (stream_context). A window that moved on by n
    # frames shares all outputs whose context lies inside both windows; only
    # the new frames and the zero-padded edges need computing. The engine
    # (models/incremental/runner.py) does that with these methods; forward() is
    # stream_tail(front, [cnn1, cnn2, cnn3]) with front = cat(stream_branch(i,
    # stream_prepare(x), before_i, after_i)) and each cnn = stream_mid of the last.

    @torch.jit.export
    def stream_context(self) -> List[List[int]]:
        """Per front-end branch, ``[frames before, frames after]`` each output frame depends on."""
        ctx: List[List[int]] = []
        for block in self.timbral:
            ctx.append([block.pad, block.pad])
        for block in self.temporal:
            ctx.append([block.pad_before, block.pad_after])
        return ctx

    @torch.jit.export
    def stream_prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Scaled mel ``[B, n_mels, T]`` -> the branches' input ``[B, 1, n_mels, T]`` (input batch norm; per frame)."""
        self._check(x)
        return self.input_bn(x.unsqueeze(1))

    @torch.jit.export
    def stream_constants(self, i: int) -> List[torch.Tensor]:
        """What branch ``i`` can reuse between calls, computed from the weights
        (the timbral branches' signed filters, the temporal branches' edge matrices)."""
        j = 0
        for block in self.timbral:
            if j == i:
                return block.signed_params()
            j += 1
        for block in self.temporal:
            if j == i:
                return [m.detach() for m in block.edge_matrices()]
            j += 1
        return []

    @torch.jit.export
    def stream_branch(self, i: int, xb: torch.Tensor, pad_before: int, pad_after: int, constants: List[torch.Tensor]) -> torch.Tensor:
        """Branch ``i`` on ``xb`` ``[B, 1, F, T]`` with that many zero frames around it and no other
        padding: ``[B, C_i, pad_before + T + pad_after - before - after]``. ``constants``:
        :meth:`stream_constants` of ``i`` (or ``[]``, slower)."""
        j = 0
        for block in self.timbral:
            if j == i:
                return block.valid(F.pad(xb, (pad_before, pad_after)), constants)
            j += 1
        for block in self.temporal:
            if j == i:
                return block.padded(xb, pad_before, pad_after, constants)
            j += 1
        raise ValueError("musicnn: no such front-end branch")

    @torch.jit.export
    def stream_mid_context(self) -> List[List[int]]:
        """Per mid-end convolution, ``[frames before, frames after]`` each output frame depends on."""
        ctx: List[List[int]] = []
        for block in self.mid:
            ctx.append([block.pad, block.pad])
        return ctx

    @torch.jit.export
    def stream_mid_constants(self, j: int) -> List[torch.Tensor]:
        """What mid stage ``j`` can reuse between calls (cnn1's stacked weights; nothing for the others)."""
        k = 0
        for block in self.mid:
            if k == j:
                return block.constants()
            k += 1
        return []

    @torch.jit.export
    def stream_mid(self, j: int, x: torch.Tensor, pad_before: int, pad_after: int, constants: List[torch.Tensor]) -> torch.Tensor:
        """Mid-end stage ``j`` (cnn1, cnn2, cnn3) on its input ``x`` ``[B, C, T]`` (the front end's
        output for cnn1, the previous stage's otherwise) with that many zero frames around it:
        ``[B, 64, pad_before + T + pad_after - 6]``. cnn2 and cnn3 add their input (the residual).
        ``constants``: :meth:`stream_mid_constants` of ``j`` (or ``[]``, slower)."""
        k = 0
        for block in self.mid:
            if k == j:
                y = block.valid(F.pad(x, (pad_before, pad_after)), constants)
                if j > 0:
                    # output t is centred on padded frame t + pad, which is real frame t + pad - pad_before
                    start = block.pad - pad_before
                    y = y + x[:, :, start : start + y.size(2)]
                return y
            k += 1
        raise ValueError("musicnn: no such mid-end stage")

    @torch.jit.export
    def stream_tail(self, front: torch.Tensor, mids: List[torch.Tensor]) -> torch.Tensor:
        """Logits from the concatenated branch outputs ``[B, 561, T]`` and the three mid stages' ``[B, 64, T]``."""
        return self._tail(front, mids)[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Tag logits ``[B, n_classes]`` of scaled mel ``x`` ``[B, n_mels, T]``."""
        return self._all(x)[-1]

    @torch.jit.export
    def features(self, x: torch.Tensor) -> List[torch.Tensor]:
        """Activations in the order of :data:`MUSICNN_LAYERS`.

        timbral ``[B, 408, T]``, temporal ``[B, 153, T]``, cnn1/cnn2/cnn3
        ``[B, 64, T]`` (front end and mid end, one column per frame),
        mean_pool and max_pool ``[B, 753]``, penultimate ``[B, 200]``.
        """
        return self._all(x)[:-1]



def build(labels: Optional[List[str]] = None) -> Tuple[Musicnn, Dict[str, Any]]:
    """An untrained musicnn and its metadata (the shape of :data:`genredream.models.archs.ARCHS` factories).

    The pre-trained taggers are ``models/pretrained/musicnn-{msd,mtt}.pt``
    (made by ``scripts/convert_musicnn.py``; task "tags", sigmoid). This
    builds the same network freshly initialised, for training on one's own
    labels with the project's trainer, hence the metadata of a genre
    classifier (softmax); ``labels=None`` means the MTT tags.
    """
    net = Musicnn(labels)
    return net, make_meta("musicnn", net, PAPER, MEL, notes="the musicnn architecture (Pons & Serra 2019), untrained")
