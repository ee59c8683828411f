r"""Convolution and correlation in time (lava-dl ``slayer.utils.filter.conv``).

.. math::

    \mathrm{conv}(x, h)[t] = T_s \sum_k h[k]\, x[t-k], \qquad
    \mathrm{corr}(x, h)[t] = T_s \sum_k h[k]\, x[t+k]

with zeros outside ``[0, T)``; ``corr`` is the adjoint of ``conv``. The input
gradient flows; the filter is treated as a constant (as lava-dl).

On the CPU, float32 input with a finite filter runs as :class:`_CausalFIR`, whose
forward and backward are the kernels of :mod:`._fir_cpu` (sparse rows, spikes, by
their events), writing into memory kept across steps (:mod:`loihi_slayer._recycle`);
elsewhere (another device or dtype, a non-finite filter, ``torch.compile``
tracing) as a depthwise ``conv1d``. Both sum each output over the taps in order.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..._recycle import kept_empty
from ...autograd._dispatch import use_parallel
from ...errors import ParameterError
from ._fir_cpu import adjoint_rows, causal_rows

#: take the CPU kernels where they apply (``False``: always ``conv1d``; for comparisons)
FAST = True

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
    if _fast(x, h):
        return _CausalFIR.apply(x.reshape(rows, shape[-1]), h, sampling_time).reshape(shape)
    return _conv1d(x.reshape(rows, shape[-1]), h, sampling_time).reshape(shape)


def _conv1d(x2: torch.Tensor, h: torch.Tensor, sampling_time: float) -> torch.Tensor:
    """:func:`conv` of the ``(R, T)`` rows ``x2`` as a depthwise ``conv1d`` (rows as
    channels: much faster on the CPU than rows of one channel)."""
    rows = x2.shape[0]
    weight = torch.flip(h, dims=[0]).reshape(1, 1, -1).expand(rows, 1, -1).contiguous()
    y = F.conv1d(F.pad(x2.reshape(1, rows, -1), (h.numel() - 1, 0)), weight, groups=rows)
    return (y * sampling_time).reshape(x2.shape)


def _fast(x: torch.Tensor, h: torch.Tensor) -> bool:
    """Whether :class:`_CausalFIR` runs :func:`conv`: eager CPU float32 and a finite
    filter (the events skip zero inputs, whose terms are zeros only then)."""
    return (
        FAST
        and x.device.type == "cpu"
        and x.dtype == torch.float32
        and x.numel() > 0
        and not torch.compiler.is_compiling()
        and bool(torch.isfinite(h).all())
    )


class _CausalFIR(torch.autograd.Function):
    """:func:`conv` of the ``(R, T)`` rows ``x2`` by :func:`._fir_cpu.causal_rows`; the
    input gradient by :func:`._fir_cpu.adjoint_rows`, or where a graph of the gradient
    is wanted (``create_graph``) by the depthwise ``conv1d`` of the gradient, which is
    differentiable again."""

    @staticmethod
    def forward(ctx, x2, h, sampling_time):
        src, h = x2.detach().contiguous(), h.contiguous()
        out = kept_empty("fir output", tuple(src.shape), src.dtype)
        causal_rows(src.numpy(), h.numpy(), out.numpy(), use_parallel(*src.shape))
        ctx.save_for_backward(h)
        ctx.sampling_time = sampling_time
        return out if sampling_time == 1 else out.mul_(sampling_time)

    @staticmethod
    def backward(ctx, g):
        (h,) = ctx.saved_tensors
        ts = ctx.sampling_time
        if torch.is_grad_enabled():  # create_graph: the correlation as differentiable ops
            flipped = _conv1d(torch.flip(g, dims=[-1]), h, 1.0)
            return torch.flip(flipped, dims=[-1]) * ts, None, None
        src = g.contiguous()
        out = kept_empty("fir input grad", tuple(src.shape), src.dtype)
        adjoint_rows(src.numpy(), h.numpy(), out.numpy(), use_parallel(*src.shape))
        return (out if ts == 1 else out.mul_(ts)), None, None


def corr(input: torch.Tensor, filter: torch.Tensor, sampling_time: float = 1) -> torch.Tensor:
    """Anti-causal correlation in time (the adjoint of :func:`conv`)."""
    x, _ = _check(input, filter)
    return torch.flip(conv(torch.flip(x, dims=[-1]), filter, sampling_time), dims=[-1])
