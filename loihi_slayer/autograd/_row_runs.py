r"""Runs along one row of a time-last array, 16 steps a vector, for any row length.

LLVM vectorises a loop over a row's steps 16 lanes wide and unrolls it, so a vector pass
covers 32-64 steps and the rest runs value by value: a row of T = 60 steps (N-MNIST)
ran mostly scalar. The sum-pool forward's per-neuron passes (the pooled row, its test
for a non-zero value, a quiet neuron's zero outputs) took 416 us on the all-quiet
N-MNIST pool block at T = 60 against 338 us at T = 64 (Zen 4, 2 threads). Here each
run is whole 16-lane vectors (:mod:`._f32x16`), the last one ending at the run's last
step and overlapping the one before: it computes those steps again from the same
inputs, so every value written is the loop's. Runs shorter than 16 steps, and arrays
other than C-contiguous float32, take the plain loop.
"""

from __future__ import annotations

import numpy as np
from numba import njit, types
from numba.extending import overload

from .._numba_cache import guard_cache_writes
from ..fixed._transpose import BLOCK
from ._f32x16 import f32_c, vadd, vany, vload, vscale, vstore, vzero

guard_cache_writes()  # numba's failed cache writes: warnings (see _numba_cache)

__all__ = ["any_nonzero", "pool2x2_run", "zero_row"]


def pool2x2_run(x, r0, r2, t0, tn, w, seg, j):
    """``seg[j, tt] = ((x[r0, t] + x[r0 + 1, t]) + (x[r2, t] + x[r2 + 1, t])) · w`` for
    ``t = t0 + tt``, ``tt < tn``: a 2 x 2 window's sum (rows ``r0``, ``r0 + 1`` and
    ``r2``, ``r2 + 1`` of the ``(rows, T)`` input), in that order, times ``w``."""
    for tt in range(tn):
        t = t0 + tt
        seg[j, tt] = ((x[r0, t] + x[r0 + 1, t]) + (x[r2, t] + x[r2 + 1, t])) * w


def any_nonzero(a, j, t0, tn):
    """Whether any of ``a[j, t0 : t0 + tn]`` is not 0 (NaN is not 0)."""
    return bool(np.any(a[j, t0 : t0 + tn] != 0))


def zero_row(out, n):
    """``out[n, :] = 0``."""
    out[n, :] = 0


@njit(inline="always", cache=True)
def _pool2x2_loop(x, r0, r2, t0, tn, w, seg, j):
    """:func:`pool2x2_run` as a loop (unsigned indices, see ``_cpu._tile_in``)."""
    a, b = np.uint64(r0), np.uint64(r2)
    u0, one = np.uint64(t0), np.uint64(1)
    for tt in range(np.uint64(tn)):
        t = u0 + tt
        seg[j, tt] = ((x[a, t] + x[a + one, t]) + (x[b, t] + x[b + one, t])) * w


@njit(inline="always", cache=True)
def _nonzero_loop(a, j, t0, tn):
    """:func:`any_nonzero` as one vectorised count, no early exit."""
    nz = 0
    r, u0 = np.uint64(j), np.uint64(t0)
    for t in range(np.uint64(tn)):
        nz += a[r, u0 + t] != 0
    return nz != 0


@njit(inline="always", cache=True)
def _zero_loop(out, n):
    """:func:`zero_row` as a loop."""
    r = np.uint64(n)
    for t in range(np.uint64(out.shape[1])):
        out[r, t] = 0


@overload(pool2x2_run, inline="always")
def _pool2x2_run(x, r0, r2, t0, tn, w, seg, j):
    scalar = _pool2x2_loop
    if not (f32_c(x, seg, ndim=2) and w == types.float32):
        return lambda x, r0, r2, t0, tn, w, seg, j: _pool2x2_loop(x, r0, r2, t0, tn, w, seg, j)

    def vectors(x, r0, r2, t0, tn, w, seg, j):
        if tn < BLOCK:
            scalar(x, r0, r2, t0, tn, w, seg, j)
            return
        steps = x.shape[1]
        a = np.uint64(r0 * steps + t0)
        b = np.uint64(r2 * steps + t0)
        out = np.uint64(j * seg.shape[1])
        row, last = np.uint64(steps), np.uint64(tn - BLOCK)
        for k in range(np.uint64(0), np.uint64(tn), np.uint64(BLOCK)):
            tt = min(k, last)
            top = vadd(vload(x, a + tt), vload(x, a + row + tt))
            bottom = vadd(vload(x, b + tt), vload(x, b + row + tt))
            vstore(seg, out + tt, vscale(w, vadd(top, bottom)))

    return vectors


@overload(any_nonzero)
def _any_nonzero(a, j, t0, tn):
    scalar = _nonzero_loop
    if not f32_c(a, ndim=2):
        return lambda a, j, t0, tn: _nonzero_loop(a, j, t0, tn)

    def vectors(a, j, t0, tn):
        if tn < BLOCK:
            return scalar(a, j, t0, tn)
        at = np.uint64(j * a.shape[1] + t0)
        last = np.uint64(tn - BLOCK)
        found = False
        for k in range(np.uint64(0), np.uint64(tn), np.uint64(BLOCK)):
            found |= vany(vload(a, at + min(k, last)))
        return found

    # not inlined by numba: inlined into a loop that returns early (``_cpu._quiet_row``)
    # its variables failed numba's SSA scope check (NumbaIRAssumptionWarning); LLVM
    # inlines the compiled function instead

    return vectors


@overload(zero_row, inline="always")
def _zero_row(out, n):
    scalar = _zero_loop
    if not f32_c(out, ndim=2):
        return lambda out, n: _zero_loop(out, n)

    def vectors(out, n):
        cols = out.shape[1]
        if cols < BLOCK:
            scalar(out, n)
            return
        at = np.uint64(n * cols)
        last = np.uint64(cols - BLOCK)
        zero = vzero()
        for k in range(np.uint64(0), np.uint64(cols), np.uint64(BLOCK)):
            vstore(out, at + min(k, last), zero)

    return vectors
