r"""Integer helpers (lava-dl ``slayer.utils.int_utils``).

Loihi rounds the decay products toward zero (spec §2.1); these are the tensor
forms of :math:`\operatorname{rz}` used in tests and integer emulation.
"""

from __future__ import annotations

import torch

from ..errors import ParameterTypeError

__all__ = ["Q2Zero", "right_shift_to_zero"]


def right_shift_to_zero(x: torch.Tensor, bits: int) -> torch.Tensor:
    r"""Arithmetic right shift rounding toward zero: :math:`\operatorname{sign}(x)\,(|x| \gg b)`.

    Parameters
    ----------
    x
        int32 or int64 tensor.
    bits
        shift amount.
    """
    if x.dtype not in (torch.int32, torch.int64):
        raise ParameterTypeError(
            f"right_shift_to_zero: expected torch.int32 or torch.int64, found {x.dtype}"
        )
    sign = torch.where(x < 0, -1, 1).to(x.dtype)
    return (sign * ((sign * x) >> int(bits))).to(x.dtype)


class Q2Zero(torch.autograd.Function):
    """Truncation toward zero with a straight-through gradient (autograd form)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return torch.trunc(x)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> torch.Tensor:
        return grad_output
