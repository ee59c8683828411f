"""Weight quantization with a straight-through gradient (slayerPytorch ``quantizeWeights``)."""

from __future__ import annotations

import torch

__all__ = ["quantizeWeights", "quantize"]


class quantizeWeights(torch.autograd.Function):
    """``round(w / step) * step`` (round half to even); the gradient passes straight through.

    Examples
    --------
    >>> quantizeWeights.apply(torch.tensor([1.0, 3.2, -2.9]), 2)
    tensor([ 0.,  4., -2.])
    """

    @staticmethod
    def forward(ctx, weights: torch.Tensor, step: float = 1) -> torch.Tensor:
        return torch.round(weights / step) * step

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad, None


class _Quantize:
    """Callable ``quantize(weights, step=1)`` that also offers ``quantize.apply``."""

    apply = staticmethod(quantizeWeights.apply)

    def __call__(self, weights: torch.Tensor, step: float = 1) -> torch.Tensor:
        """Quantize ``weights`` to multiples of ``step`` (straight-through gradient)."""
        return quantizeWeights.apply(weights, step)

    def __repr__(self) -> str:
        return "loihi_slayer.slayer_pytorch.quantize"


#: ``snn.quantize(w, step)`` or ``snn.quantize.apply(w, step)``.
quantize = _Quantize()
