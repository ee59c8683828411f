"""Weight fake-quantization with straight-through gradients (lava-dl ``quantize_8bit``).

Loihi stores a weight as a signed 8-bit mantissa times 2 (MIXED sign mode),
so a float weight ``w`` with scale ``s`` is exported as the even integer
``W = clamp(rne(w * s / 2) * 2, -256, 254)`` and the training forward must see
exactly ``W / s``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from numba import njit

from ._numba_cache import guard_cache_writes
from .autograd.op import check_finite, plain_eager
from .errors import ParameterError

guard_cache_writes()  # numba's failed cache writes: warnings (see _numba_cache)


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


def grid_8bit(scale: int = 1 << 6) -> tuple[float, float, float]:
    """``(step, lo, hi)`` of the 8-bit MIXED weight grid of scale ``s``: ``2 / s``,
    ``-256 / s``, ``254 / s`` (see :func:`quantize_8bit`)."""
    return 2.0 / scale, -256.0 / scale, 254.0 / scale


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
    step, lo, hi = grid_8bit(scale)
    if _one_pass(weight, step):
        if torch.is_grad_enabled() and weight.requires_grad:
            q = _Quantize8bit.apply(weight, step, lo, hi)
        else:  # no graph to build: the pass alone (the autograd function costs ~20 us)
            q = _quantized(weight, step, lo, hi)[0]
    else:
        check_finite(weight, "quantize_8bit: weight contains NaN/inf")
        q = quantize(weight, step).clamp(lo, hi)
    return q * scale if descale else q


#: weight hooks that refuse NaN/inf weights themselves (a :class:`ParameterError`): a
#: synapse calls them without a finiteness pass of its own (functions; a bound method is
#: looked up by its ``__func__``)
REFUSE_NON_FINITE: set[Callable] = {quantize_8bit}


def refuses_non_finite(hook: Callable) -> bool:
    """Whether the weight hook ``hook`` raises a :class:`ParameterError` on NaN/inf weights
    (see :data:`REFUSE_NON_FINITE`)."""
    return getattr(hook, "__func__", hook) in REFUSE_NON_FINITE


def _one_pass(weight: torch.Tensor, step: float) -> bool:
    """Whether :class:`_Quantize8bit` may stand in for the composite: eager CPU float32/64
    and a power-of-two step (every operation is then exact scaling, so the one-pass
    kernel's values are the composite's bit for bit)."""
    return (
        weight.device.type == "cpu"
        and weight.dtype in (torch.float32, torch.float64)
        and math.frexp(step)[0] == 0.5
        and plain_eager((weight,))
    )


@njit(cache=True)
def _quantize_pass(w, step, lo, hi, q, inside, m):
    """``q = clamp(rne(w / step) * step, lo, hi)``, ``inside = lo <= rne(w / step) * step
    <= hi`` (where the clamp passes gradient) and the mantissas ``m = q / step`` (int8:
    ``lo`` and ``hi`` are -128 and 127 steps); returns the number of NaN/inf weights, the
    largest ``|m|`` and the number of weights the clamp cut. ``step``, ``lo``, ``hi``
    have ``w``'s dtype, so the arithmetic is the composite's. The outputs at NaN/inf
    weights are unspecified (the caller refuses such a weight).

    Three branch-free loops, each of which LLVM vectorises: one loop doing all of it,
    with or without a skip at NaN/inf, stayed scalar (52 us a pass over N-MNIST's
    578 -> 128 weight inside the step, 24 alone; 13 as three loops). A NaN/inf weight
    is never inside the (finite) range, so only a pass that cut a weight counts them.
    """
    m_lo, m_hi = lo / step, hi / step
    n = w.shape[0]
    for i in range(n):
        r = np.rint(w[i] / step) * step
        inside[i] = (r >= lo) & (r <= hi)
        r = r if r >= lo else lo
        q[i] = r if r <= hi else hi
    top = np.int32(0)
    for i in range(n):
        k = np.rint(w[i] / step)
        k = k if k >= m_lo else m_lo  # NaN: m_lo, a defined conversion
        k = k if k <= m_hi else m_hi
        mi = np.int32(k)
        m[i] = np.int8(mi)
        top = max(top, abs(mi))
    kept = 0
    flags = inside.view(np.uint8)
    for i in range(n):
        kept += flags[i]
    cut = n - kept
    bad = 0
    if cut:
        for i in range(n):
            bad += not np.isfinite(w[i])
    return bad, top, cut


#: the attribute of a quantized weight that holds its int8 grid (see :func:`int8_grid`)
_GRID = "_loihi_slayer_int8_grid"


def _quantized(
    w: torch.Tensor, step: float, lo: float, hi: float
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(clamp(quantize(w, step), lo, hi), where the clamp passes gradient)`` by
    :func:`_quantize_pass`, the mask None where the clamp cut no weight (the usual case:
    :func:`clamp_gradient` then passes the gradient as it is); a :class:`ParameterError`
    for NaN/inf weights. The result carries its int8 mantissas for :func:`int8_grid` (an
    int8 product then skips finding the grid again: 75 us a step for N-MNIST's 578 -> 128
    weight)."""
    src = w.detach().contiguous()
    q = torch.empty_like(src)
    inside = torch.empty(src.shape, dtype=torch.bool)
    m = torch.empty(src.shape, dtype=torch.int8)
    typed = src.numpy().dtype.type
    bad, top, cut = _quantize_pass(
        src.reshape(-1).numpy(),
        typed(step),
        typed(lo),
        typed(hi),
        q.reshape(-1).numpy(),
        inside.reshape(-1).numpy(),
        m.reshape(-1).numpy(),
    )
    if bad:
        raise ParameterError("quantize_8bit: weight contains NaN/inf")
    setattr(q, _GRID, (m, step, int(top), q._version))
    return q, (inside if cut else None)


def clamp_gradient(g: torch.Tensor, inside: torch.Tensor | None) -> torch.Tensor:
    """The clamp's straight-through gradient: ``g`` where ``inside``, else 0; ``g`` itself
    where no weight was cut (``inside`` None: :func:`_quantized`), the same values as the
    select, which took 23 us a step on N-MNIST's 578 -> 128 weight."""
    return g if inside is None else torch.where(inside, g, 0.0)


def int8_grid(q: torch.Tensor) -> tuple[torch.Tensor, float, int] | None:
    """``(m, unit, max |m|)`` with ``q == unit * m`` exactly (``m`` int8 of ``q``'s shape,
    ``unit`` a power of two) where ``q`` is an output of :func:`quantize_8bit` (eager CPU)
    not changed in place since, else None."""
    grid = getattr(q, _GRID, None)
    if grid is None or grid[3] != q._version:
        return None
    return grid[:3]


class _Quantize8bit(torch.autograd.Function):
    """``clamp(quantize(w, step), lo, hi)`` in one pass: round straight through, the clamp's
    gradient (``g`` where ``lo <= rounded <= hi``, else 0)."""

    @staticmethod
    def forward(ctx, w: torch.Tensor, step: float, lo: float, hi: float) -> torch.Tensor:
        q, inside = _quantized(w, step, lo, hi)
        ctx.save_for_backward(inside)
        return q

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        (inside,) = ctx.saved_tensors
        return clamp_gradient(g, inside), None, None, None


def weight_mantissa(weight: torch.Tensor, scale: int = 1 << 6) -> torch.Tensor:
    """The exported integer mantissas ``W`` (int64) of ``weight``."""
    return torch.round(quantize_8bit(weight.detach(), scale, descale=True)).to(torch.int64)
