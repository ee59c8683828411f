"""Float <-> integer conversions of the family ops, one parallel pass each.

On CPU tensors they run as ``njit`` loops (one pass over memory instead of a chain
of torch operations); on CUDA tensors as torch operations. Both give the same
values: ``rne`` of a float64 product, and int64 sums scaled in float64.
"""

from __future__ import annotations

import numpy as np
import torch
from numba import njit, prange

from .._recycle import kept_empty
from .._threads import follow_torch_threads

__all__ = [
    "FLOAT_TRACE",
    "INPUT_LIMIT",
    "chip_int",
    "scaled_sum",
    "spikes_float",
    "state_float",
    "to_int",
]

#: a neuron input whose integer synaptic sum ``|rint(x * scale)|`` reaches this is refused
#: (NaN/inf too): beyond the chip's 32-bit accumulation
INPUT_LIMIT = float(1 << 31)
_TWO31 = float(1 << 31)
_TWO32 = float(1 << 32)


@njit(inline="always", cache=True)
def chip_int(x, scale, limit):
    """``(rint(x * scale), 0)`` as int64 (``scale`` is a float64, and so is the
    product), or ``(0, 1)`` when ``|x * scale|`` is not below ``limit`` or not finite.
    Branch-free (the refused value is replaced before the conversion), so the loops
    around it vectorise; the one test, on ``limit``, is loop-invariant (a constant at
    the kernels' call sites, where it folds)."""
    f = x * scale
    ok = abs(f) < limit
    r = np.rint(f if ok else 0.0)
    # through int32: AVX2 has no vector double -> int64 conversion (the loop would
    # convert one value at a time)
    if limit <= _TWO31:  # a constant at every call site: the branch folds
        # |r| <= 2**31, and r = 2**31 wraps and is restored
        big = r >= _TWO31
        a = np.int64(np.int32(r - _TWO32 if big else r))
        return a + (np.int64(1 << 32) if big else np.int64(0)), 0 if ok else 1
    # |r| < 2**63: r = hi 2**32 + lo with lo in [0, 2**32), both exact in float64
    hi = np.floor(r * (1.0 / _TWO32))
    lo = r - hi * _TWO32
    a = (np.int64(np.int32(hi)) << 32) + np.int64(np.int32(lo - _TWO31))
    return a + np.int64(1 << 31), 0 if ok else 1


@njit(inline="always", cache=True)
def state_float(x):
    """An int64 value known to fit 32 bits (a 24-bit neuron state) as float64, exactly,
    through int32: AVX2 has no vector int64 -> double conversion, so the loop would
    convert one value at a time."""
    return np.float64(np.int32(x))


@njit(inline="always", cache=True)
def int_float(x):
    """``float64(x)`` of any int64, correctly rounded, in vector code on AVX2 (which has
    no int64 -> double conversion): ``x = hi 2**32 + lo``, both halves converted exactly
    through int32, one rounding in the final sum."""
    hi = np.int32(x >> 32)
    lo = np.int32((x & 0xFFFFFFFF) - 0x80000000)
    return np.float64(hi) * _TWO32 + (np.float64(lo) + _TWO31)


@njit(parallel=True, cache=True)
def _rint(x, scale, limit, out):
    bad = 0
    for i in prange(x.shape[0]):
        a, refused = chip_int(x[i], scale, limit)
        bad += refused
        out[i] = a
    return bad


@njit(parallel=True, cache=True)
def _scaled_sum(a, b, inv, out):
    with_b = b.shape[0] > 0
    for i in prange(a.shape[0]):
        v = a[i] + b[i] if with_b else a[i]
        out[i] = v * inv


#: the role of the family ops' float traces in memory kept across steps
#: (:func:`~loihi_slayer._recycle.kept_empty`)
FLOAT_TRACE = "family float trace"


def spikes_float(s: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Integer spikes ``s`` as ``dtype``; on the CPU in memory kept across steps."""
    if s.is_cuda:
        return s.to(dtype)
    return kept_empty("family spikes", tuple(s.shape), dtype).copy_(s)


def _to_int_torch(x: torch.Tensor, scale: float, limit: float) -> tuple[torch.Tensor, int]:
    f = x.to(torch.float64) * scale
    ok = f.abs() < limit
    return torch.round(torch.where(ok, f, 0.0)).to(torch.int64), int((~ok).sum())


def _scaled_sum_torch(a: torch.Tensor, b: torch.Tensor | None, inv: float, dtype):
    s = a if b is None else a + b
    return (s.to(torch.float64) * inv).to(dtype)


def to_int(
    x: torch.Tensor, scale: float, limit: float, out: torch.Tensor | None = None
) -> tuple[torch.Tensor, int]:
    """``(rne(x * scale) as int64, number of entries that are NaN/inf or reach limit)``.

    The product is taken in float64; refused entries become 0. ``out``: int64 CPU
    memory of ``x``'s number of values to write into (e.g. kept across steps).
    """
    x = x.detach()
    if x.is_cuda:
        return _to_int_torch(x, scale, limit)
    src = x.contiguous()
    out = torch.empty(src.shape, dtype=torch.int64) if out is None else out.view(src.shape)
    follow_torch_threads()
    bad = _rint(src.reshape(-1).numpy(), float(scale), float(limit), out.reshape(-1).numpy())
    return out, int(bad)


def scaled_sum(
    a: torch.Tensor,
    b: torch.Tensor | None,
    inv: float,
    dtype: torch.dtype,
    out: torch.Tensor | None = None,
    kept: str | None = None,
):
    """``(a + b) * inv`` (``b`` optional) of integer tensors, as ``dtype``; into ``out``
    (contiguous, ``a``'s number of values) where given (CPU), e.g. memory kept across
    steps, or with ``kept`` into memory kept across steps for that role
    (:func:`~loihi_slayer._recycle.kept_empty`)."""
    if a.is_cuda:
        return _scaled_sum_torch(a, b, inv, dtype)
    a = a.contiguous()
    if out is None and kept is not None:
        out = kept_empty(kept, a.shape, dtype)
    out = torch.empty(a.shape, dtype=dtype) if out is None else out.view(a.shape)
    bb = np.zeros(0, np.int64) if b is None else b.contiguous().reshape(-1).numpy()
    follow_torch_threads()
    _scaled_sum(a.reshape(-1).numpy(), bb, float(inv), out.reshape(-1).numpy())
    return out
