"""Weight fake-quantization with straight-through gradients (lava-dl ``quantize_8bit``).

Loihi stores a weight as a signed 8-bit mantissa times 2 (MIXED sign mode),
so a float weight ``w`` with scale ``s`` is exported as the even integer
``W = clamp(rne(w * s / 2) * 2, -256, 254)`` and the training forward must see
exactly ``W / s``.
"""

from __future__ import annotations

import torch

from .autograd.op import check_finite


class _RoundSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, step):
        return torch.round(x / step) * step

    @staticmethod
    def backward(ctx, g):
        return g, None


def quantize(x: torch.Tensor, step: float = 1.0) -> torch.Tensor:
    """Round half to even onto the grid ``step``; straight-through gradient."""
    return _RoundSTE.apply(x, step)


def quantize_8bit(weight: torch.Tensor, scale: int = 1 << 6, descale: bool = False) -> torch.Tensor:
    r"""Quantize to the Loihi 8-bit MIXED weight grid.

    .. math::

        Q(w) = \operatorname{clamp}\!\left(\frac{2}{s}\operatorname{rne}\!\left(
               \frac{w s}{2}\right), -\frac{256}{s}, \frac{254}{s}\right)

    The rounding is straight-through; the clamp passes no gradient outside the
    range (as ``torch.clamp``).

    Parameters
    ----------
    weight
        Float tensor.
    scale
        Weight scale ``s`` (lava-dl ``w_scale``, default 64).
    descale
        Return the integer mantissas ``Q(w) * s`` instead.

    Raises
    ------
    ParameterError
        If the weight contains NaN/inf.
    """
    check_finite(weight, "quantize_8bit: weight contains NaN/inf")
    q = quantize(weight, 2.0 / scale).clamp(-256.0 / scale, 254.0 / scale)
    return q * scale if descale else q


def weight_mantissa(weight: torch.Tensor, scale: int = 1 << 6) -> torch.Tensor:
    """The exported integer mantissas ``W`` (int64) of ``weight``."""
    return torch.round(quantize_8bit(weight.detach(), scale, descale=True)).to(torch.int64)
