"""Quantization (lava-dl ``slayer.utils.quantize``): round or floor, straight-through gradient."""

from __future__ import annotations

from enum import IntEnum

import torch

from ..quantize import quantize as _round_quantize

__all__ = ["MODE", "quantize"]


class MODE(IntEnum):
    """Rounding mode of :func:`quantize`."""

    ROUND = 0
    FLOOR = 1


class _FloorSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, step):
        return torch.floor(x / step) * step

    @staticmethod
    def backward(ctx, g):
        return g, None


def quantize(input: torch.Tensor, step: float = 1, mode: MODE = MODE.ROUND) -> torch.Tensor:
    """Quantize onto multiples of ``step`` (round half to even, or floor); gradient straight."""
    if MODE(mode) is MODE.FLOOR:
        return _FloorSTE.apply(input, step)
    return _round_quantize(input, step)
