r"""Convolution and correlation in time (lava-dl ``slayer.utils.filter.conv``).

.. math::

    \mathrm{conv}(x, h)[t] = T_s \sum_k h[k]\, x[t-k], \qquad
    \mathrm{corr}(x, h)[t] = T_s \sum_k h[k]\, x[t+k]

with zeros outside ``[0, T)``; ``corr`` is the adjoint of ``conv``. The input
gradient flows; the filter is treated as a constant (as lava-dl).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ...errors import ParameterError

__all__ = ["conv", "corr"]


def _check(input: torch.Tensor, filter: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if not torch.is_tensor(input) or not input.is_floating_point():
        raise ParameterError(f"filter.conv: input must be a float tensor, got {type(input)}")
    if input.dim() == 1:
        input = input.reshape(1, -1)
    h = torch.as_tensor(filter).detach().flatten()
    if h.numel() == 0:
        raise ParameterError("filter.conv: the filter is empty")
    return input, h.to(dtype=input.dtype, device=input.device)


def conv(input: torch.Tensor, filter: torch.Tensor, sampling_time: float = 1) -> torch.Tensor:
    """Causal convolution in time (last axis); output shape = input shape.

    Parameters
    ----------
    input
        signal, time last (1-D is treated as one row).
    filter
        impulse response (flattened).
    sampling_time
        :math:`T_s`, multiplies the sum.
    """
    x, h = _check(input, filter)
    shape = x.shape
    rows = math.prod(shape[:-1])
    # depthwise form (rows as channels): much faster on the CPU than rows of one channel
    flat = x.reshape(1, rows, shape[-1])
    weight = torch.flip(h, dims=[0]).reshape(1, 1, -1).expand(rows, 1, -1).contiguous()
    y = F.conv1d(F.pad(flat, (h.numel() - 1, 0)), weight, groups=rows)
    return (y * sampling_time).reshape(shape)


def corr(input: torch.Tensor, filter: torch.Tensor, sampling_time: float = 1) -> torch.Tensor:
    """Anti-causal correlation in time (the adjoint of :func:`conv`)."""
    x, _ = _check(input, filter)
    return torch.flip(conv(torch.flip(x, dims=[-1]), filter, sampling_time), dims=[-1])
