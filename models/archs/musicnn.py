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

#: TensorFlow's batch-norm epsilon (``tf.compat.v1.layers.batch_normalization``).
TF_BN_EPS = 1e-3

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


class _AffineWhenFrozen(nn.Module):
    """Batch norm that, in eval mode, is the per-channel affine ``x * s + b``.

    Same numbers as ``nn.BatchNorm`` (``s = gamma / sqrt(var + eps)``,
    ``b = beta - mean * s``), but autograd sees one multiply-add instead of
    batch_norm's backward, which was half of a dreaming step's time.
    Parameter and buffer names are BatchNorm's, so checkpoints load as before.
    """

    def __init__(self, channels: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))
        self.eps = eps
        self.num_features = channels

    def scale_shift(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """The eval-mode affine ``(s, b)``: ``forward(x) == x * s + b`` per channel."""
        s = self.weight * torch.rsqrt(self.running_var + self.eps)
        return s, self.bias - self.running_mean * s

    def pool_sign(self) -> torch.Tensor:
        """``g[c] = +1`` where the eval-mode scale ``s[c] >= 0``, else ``-1`` (see :meth:`max_after_relu`)."""
        s, _ = self.scale_shift()
        one = torch.ones_like(s)
        return torch.where(s >= 0, one, -one)

    def max_after_relu(self, m: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """``max over an axis of self(relu(y))`` from ``m``, the max over that axis of ``g * y`` (eval mode).

        ``m``: ``[B, C, T]``; ``g``: :meth:`pool_sign`. ``relu`` and the
        per-channel affine ``y * s + b`` are monotone, rising where
        ``s >= 0`` and falling where ``s < 0``, so the largest output comes
        from the largest ``y`` or the smallest, and the smallest ``y`` is
        ``-max(-y)``. A caller that folds ``g`` into its filters' weights and
        bias (negating a float is exact, and so is every sum of negated
        terms) needs one max instead of a max and a min, and never touches
        the activations it pools: the same numbers as pooling after the
        activation, at a fraction of the memory traffic.
        """
        s, b = self.scale_shift()
        g = g.view(1, -1, 1)
        return F.relu(m * g) * s.view(1, -1, 1) + b.view(1, -1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.num_batches_tracked += 1
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, True, 0.1, self.eps)
        s, b = self.scale_shift()
        shape = [1, -1] + [1] * (x.dim() - 2)  # channels on axis 1: [B, C], [B, C, T] or [B, C, H, W]
        return x * s.view(shape) + b.view(shape)


def _bn2d(channels: int) -> nn.Module:
    return _AffineWhenFrozen(channels, TF_BN_EPS)


_bn1d = _bn2d  # the channel axis is 1 either way

# Inference (no gradient) computes the temporal convolutions as one matrix
# product over unfolded patches (im2col) when the patch matrix stays small:
# for the short stretches the streaming engine computes, that is up to 2x
# faster than conv2d with one input channel and a 1-band kernel. Whole
# batches of windows would need hundreds of MB of patches, so they keep
# conv2d. (The timbral kernels span 38 or 67 bands: conv2d is the faster.)
_IM2COL_MAX_FRAMES = 512


def musicnn_mel_config() -> MelConfig:
    """The front end musicnn was trained with (:data:`MEL`)."""
    return MEL


class _TimbralBlock(nn.Module):
    """Conv over (bands x 7 frames), valid in frequency, time zero-padded 3+3;
    ReLU; batch norm; max over the remaining frequency positions.

    In ``[B, 1, F, T]`` -> out ``[B, filters, T]``.

    Two equal ways to compute the convolution: ``conv2d`` (fastest forward),
    and, when the input needs a gradient (dreaming), the ``F - bands + 1``
    frequency positions unfolded into a batch of 1-D convolutions with the
    bands as channels. The latter's backward pass to the input is about five
    times faster on CPU than conv2d's for a single input channel
    (``benchmarks/bench_musicnn.py``), and the results agree to float32
    rounding.
    """

    def __init__(self, filters: int, bands: int, frames: int = 7):
        super().__init__()
        self.pad = frames // 2  # odd kernel: symmetric
        self.bands = bands
        self.frames = frames
        self.conv = nn.Conv2d(1, filters, kernel_size=(bands, frames))
        self.bn = _bn2d(filters)

    def _conv_unfolded(self, x: torch.Tensor) -> torch.Tensor:
        b, _, f, t = x.shape
        positions = f - self.bands + 1
        cols = x[:, 0].unfold(1, self.bands, 1)  # [B, positions, T', bands]
        cols = cols.permute(0, 1, 3, 2).reshape(b * positions, self.bands, t)
        w = self.conv.weight.view(self.conv.out_channels, self.bands, self.frames)
        y = F.conv1d(cols, w, self.conv.bias)  # [B * positions, filters, T]
        return y.view(b, positions, self.conv.out_channels, t - self.frames + 1).transpose(1, 2)

    def valid(self, x: torch.Tensor, signed: List[torch.Tensor]) -> torch.Tensor:
        """No time padding: ``[B, 1, F, T]`` -> ``[B, filters, T - 6]``, output ``t`` from frames ``t .. t + 6``.

        ``signed``: :meth:`signed_params`, or ``[]`` to compute them here."""
        if x.requires_grad:
            return self.bn(F.relu(self._conv_unfolded(x))).amax(dim=2)
        if self.training:
            return self.bn(F.relu(self.conv(x))).amax(dim=2)
        if len(signed) != 3:
            signed = self.signed_params()
        y = F.conv2d(x, signed[0], signed[1])  # g * conv: [B, filters, positions, T']
        return self.bn.max_after_relu(y.amax(dim=2), signed[2])

    def signed_params(self) -> List[torch.Tensor]:
        """``[weight, bias, g]``: the filters and biases multiplied by the batch norm's pool sign ``g``.

        See ``max_after_relu``. The streaming engine asks once and passes
        them back on every call: a convolution given the same weight tensor
        each time runs faster than one given a freshly computed one.
        """
        g = self.bn.pool_sign()
        bias = self.conv.bias
        b = bias * g if bias is not None else torch.zeros_like(g)
        return [(self.conv.weight * g.view(-1, 1, 1, 1)).detach(), b.detach(), g.detach()]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.valid(F.pad(x, (self.pad, self.pad)), [])


class _TemporalBlock(nn.Module):
    """Conv over (1 band x k frames) with TensorFlow "same" padding along time;
    ReLU; batch norm; max over all bands.

    TensorFlow pads ``k - 1`` frames in total, the smaller half before: for an
    even ``k`` that is ``k/2 - 1`` before and ``k/2`` after, which torch's
    symmetric ``padding=`` cannot express, so the padding is explicit.

    In ``[B, 1, F, T]`` -> out ``[B, filters, T]``.
    """

    def __init__(self, filters: int, frames: int):
        super().__init__()
        self.pad_before = (frames - 1) // 2
        self.pad_after = frames - 1 - self.pad_before
        self.conv = nn.Conv2d(1, filters, kernel_size=(1, frames))
        self.bn = _bn2d(filters)
        self.im2col_max_frames = _IM2COL_MAX_FRAMES

    def valid(self, x: torch.Tensor) -> torch.Tensor:
        """No time padding: ``[B, 1, F, T]`` -> ``[B, filters, T - k + 1]``."""
        if not self.training and not x.requires_grad and x.size(0) * x.size(3) <= self.im2col_max_frames:
            g = self.bn.pool_sign()
            k = self.conv.kernel_size[1]
            b, _, f, t = x.shape
            cols = x[:, 0].unfold(2, k, 1).reshape(-1, k)  # im2col, [B * F * T', k]
            y = torch.mm(cols, self._signed_weight(g).t()).view(b, f, t - k + 1, self.conv.out_channels)
            return self._pool_bands(y, g)
        return self.bn(F.relu(self.conv(x))).amax(dim=2)

    def _signed_weight(self, g: torch.Tensor) -> torch.Tensor:
        """The filters as ``[filters, k]``, each multiplied by its pool sign ``g`` (see ``max_after_relu``)."""
        return self.conv.weight.view(self.conv.out_channels, self.conv.kernel_size[1]) * g.view(-1, 1)

    def _pool_bands(self, y: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """Signed conv output ``[B, F, T', filters]`` without bias -> bias, ReLU, batch norm, max over bands: ``[B, filters, T']``.

        The bias is the same in every band, so it is added after the max
        (float addition is monotone: the same numbers), to 96 times fewer values.
        """
        m = y.amax(dim=1)
        bias = self.conv.bias
        if bias is not None:
            m = m + bias * g
        return self.bn.max_after_relu(m.transpose(1, 2), g)

    def _toeplitz(self, u: int, outs: int, offset: int) -> torch.Tensor:
        """``[u, outs * filters]``: entry ``(v, t, c)`` is signed weight ``v - t + offset`` of filter ``c`` (zero off the kernel)."""
        c = self.conv.out_channels
        w = F.pad(self._signed_weight(self.bn.pool_sign()), (u, u))  # weight j at j + u, zeros around
        # windows[:, s, v] = weight s + v - u; output t needs s = u + offset - t
        windows = w.unfold(1, u, 1)[:, u + offset - outs + 1 : u + offset + 1].flip(1)  # [C, outs, u]
        return windows.permute(2, 1, 0).reshape(u, outs * c)

    def edge_matrices(self) -> List[torch.Tensor]:
        """The two edges' Toeplitz matrices for this block's own padding (see :meth:`_edge`)."""
        k = self.conv.kernel_size[1]
        return [self._toeplitz(k - 1, self.pad_before, self.pad_before), self._toeplitz(k - 1, self.pad_after, 0)]

    def _edge(self, x: torch.Tensor, outs: int, offset: int, toeplitz: torch.Tensor) -> torch.Tensor:
        """The ``outs`` outputs whose filter reaches into zero padding, from the ``k - 1`` real frames they see.

        Output ``t`` takes weight ``v - t + offset`` at frame ``v``, so the
        edge is one product with a Toeplitz matrix of the weights: a wide
        matrix product instead of a convolution over the padding's zeros
        with only 51 output channels to keep the cores busy.
        """
        b, _, f, u = x.shape
        c = self.conv.out_channels
        if toeplitz.numel() != u * outs * c:
            toeplitz = self._toeplitz(u, outs, offset)
        y = torch.matmul(x[:, 0], toeplitz).view(b, f, outs, c)
        return self._pool_bands(y, self.bn.pool_sign())

    def padded(self, x: torch.Tensor, before: int, after: int, edges: List[torch.Tensor]) -> torch.Tensor:
        """``valid`` of ``x`` with ``before`` zero frames in front and ``after`` behind, without the zeros' work.

        ``edges``: :meth:`edge_matrices`, computed once by the caller, or
        ``[]`` to build them here.
        """
        k = self.conv.kernel_size[1]
        t = x.size(3)
        if (before == 0 and after == 0) or self.training or x.requires_grad or t < k - 1 or before > k - 1 or after > k - 1:
            return self.valid(F.pad(x, (before, after)))
        parts: List[torch.Tensor] = []
        if before > 0:
            toe = edges[0] if len(edges) == 2 and before == self.pad_before else torch.zeros(0)
            parts.append(self._edge(x[..., : k - 1], before, before, toe))
        if t >= k:
            parts.append(self.valid(x))
        if after > 0:
            toe = edges[1] if len(edges) == 2 and after == self.pad_after else torch.zeros(0)
            parts.append(self._edge(x[..., t - k + 1 :], after, 0, toe))
        return torch.cat(parts, dim=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.valid(F.pad(x, (self.pad_before, self.pad_after)))


class _MidConv(nn.Module):
    """1-D conv over time (width 7, zero-padded 3+3), ReLU, batch norm. ``[B, C, T] -> [B, filters, T]``."""

    def __init__(self, in_channels: int, filters: int, frames: int = 7):
        super().__init__()
        self.conv = nn.Conv1d(in_channels, filters, kernel_size=frames, padding=frames // 2)
        self.bn = _bn1d(filters)
        self.pad = frames // 2
        # Inference computes a wide convolution (the first: 561 channels in) as
        # one matrix product of the stacked taps and shifted sums. Compiled,
        # on the ~182 frames a streaming hop recomputes, that is 1.1x (2
        # threads) to 1.2x (1 thread) faster than conv1d, and on a whole
        # 313-frame window about as fast (benchmarks/bench_musicnn.py). The
        # narrow ones stay conv1d.
        self.shifted_min_channels = 256

    def stacked_weight(self) -> torch.Tensor:
        """The taps stacked, ``[k * C_out, C_in]``: row ``j * C_out + o`` is tap ``j`` of filter ``o``."""
        k = self.conv.kernel_size[0]
        return self.conv.weight.permute(2, 0, 1).reshape(k * self.conv.out_channels, -1).detach()

    def _conv_shifted(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """The unpadded convolution as ``sum_j W_j @ x[t + j]``: every tap's product in one matrix multiplication.

        ``w``: :meth:`stacked_weight` (a copy of the weights, 1 MB for the
        first stage: the streaming engine asks once and passes it back)."""
        c, k = self.conv.out_channels, self.conv.kernel_size[0]
        b, _, t = x.shape
        out = t - k + 1
        z = torch.matmul(w, x).view(b, k, c, t)
        y = z[:, 0, :, :out]
        for j in range(1, k):
            y = y + z[:, j, :, j : j + out]
        bias = self.conv.bias
        if bias is not None:
            y = y + bias.view(1, -1, 1)
        return y

    def valid(self, x: torch.Tensor, constants: List[torch.Tensor]) -> torch.Tensor:
        """No time padding (inference): ``[B, C, T] -> [B, filters, T - 6]``, output ``t`` from frames ``t .. t + 6``.

        ``constants``: :meth:`constants`, or ``[]`` to compute them here."""
        if x.size(1) >= self.shifted_min_channels:
            y = self._conv_shifted(x, constants[0] if len(constants) == 1 else self.stacked_weight())
        else:
            y = F.conv1d(x, self.conv.weight, self.conv.bias)
        return self.bn(F.relu(y))

    def constants(self) -> List[torch.Tensor]:
        """What :meth:`valid` can reuse from call to call: the stacked weights, if it uses them."""
        if self.conv.in_channels >= self.shifted_min_channels:
            return [self.stacked_weight()]
        return []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training and not x.requires_grad:
            return self.valid(F.pad(x, (self.pad, self.pad)), [])
        return self.bn(F.relu(self.conv(x)))


class Musicnn(MelNet):
    """The musicnn tagger (``MTT_musicnn`` and ``MSD_musicnn`` share this shape).

    Parameters
    ----------
    labels : list of str
        Tag names, one per output (50 for both pre-trained models:
        :data:`MTT_LABELS`, :data:`MSD_LABELS`).
    mel : engine.mel.MelConfig
        The front end (:data:`MEL`); :meth:`frontend` computes it in torch
        (``models.frontend.TorchMel``) so the dreamer can differentiate from
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
