"""musicnn's layers: the front-end branches, the mid-end convolutions, and their batch norm.

The network that joins them is :class:`genredream.models.archs.musicnn.Musicnn`
(shapes and the paper there). Each block computes the same numbers several
ways, the fastest for its case: training, dreaming (the input needs a
gradient), a whole window, or the few frames a streaming hop recomputes
(``valid``/``padded`` without the padding's work, constants the streaming
engine asks for once). ``benchmarks/bench_musicnn.py`` measures the choices.
"""

from typing import List, Tuple

import torch
import torch.nn.functional as F
from torch import nn

#: TensorFlow's batch-norm epsilon (``tf.compat.v1.layers.batch_normalization``).
TF_BN_EPS = 1e-3


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
