"""numba.cuda kernel of the resonator backward: :func:`._resonator_bwd.backward_span` over
shared-memory time tiles (:mod:`._cuda_tiles`: a warp of 32 rows, tiles of 16 steps
walked from the end, each holding the step before it for the parameter gradients).
Imported lazily; nothing is compiled at import.

The row function calls the per-step helpers :func:`._resonator_bwd.step_terms`,
:func:`._resonator_bwd.surrogate` and :func:`._fastexp.exp_nonpos`, which are ``njit``
functions for the CPU kernels. Here each is compiled as a CUDA device function of its
own (:func:`_device`: the same Python function with its helpers bound to their device
versions), rather than left to numba-cuda's retargeting of CPU dispatchers.
"""

from __future__ import annotations

import types
from collections.abc import Callable

from numba import cuda, float64

from ._cuda_tiles import ROWS, TILE, WIDTH, block_rows, load, store_from, tile_from_end
from ._fastexp import exp_nonpos
from ._resonator_bwd import backward_span, given_flags, step_terms, surrogate


def _device(fn: Callable, **helpers):
    """``fn`` (a plain Python function) compiled as a CUDA device function, with the
    global names ``helpers`` bound to the given device functions."""
    scope = dict(fn.__globals__, **helpers)
    copy = types.FunctionType(fn.__code__, scope, fn.__name__, fn.__defaults__, fn.__closure__)
    return cuda.jit(device=True)(copy)


_exp = _device(exp_nonpos.py_func)
_surrogate = _device(surrogate.py_func, exp_nonpos=_exp)
_terms = _device(step_terms.py_func, surrogate=_surrogate)
_span = _device(backward_span, step_terms=_terms)
_flags = cuda.jit(device=True)(given_flags)


@cuda.jit
def backward(
    g_s,
    g_re,
    g_im,
    re,
    im,
    thr,
    spk,
    theta,
    tau,
    rho,
    graded,
    mode,
    sin_d,
    cos_d,
    re0,
    im0,
    im_reset,
    g_xre,
    g_xim,
    g_sin,
    g_cos,
):
    # every tile holds steps lo - 1 .. hi - 1: column j is step lo - 1 + j
    gss = cuda.shared.array((ROWS, WIDTH), float64)
    grs = cuda.shared.array((ROWS, WIDTH), float64)
    gis = cuda.shared.array((ROWS, WIDTH), float64)
    res = cuda.shared.array((ROWS, WIDTH), float64)
    ims = cuda.shared.array((ROWS, WIDTH), float64)
    ths = cuda.shared.array((ROWS, WIDTH), float64)
    sps = cuda.shared.array((ROWS, WIDTH), float64)
    xrs = cuda.shared.array((ROWS, WIDTH), float64)
    xis = cuda.shared.array((ROWS, WIDTH), float64)
    rows, steps = re.shape
    if rows == 0:
        return
    tid = cuda.threadIdx.x
    n0, n, live, _ = block_rows(rows)
    flags = _flags(g_s, g_re, g_im, thr, spk, g_sin, False)
    carry = (0.0, 0.0, 0.0, 0.0)
    for k0 in range(0, steps, TILE):
        lo, hi, tl = tile_from_end(k0, steps)
        load(g_s, gss, n0, lo - 1, tl + 1)
        load(g_re, grs, n0, lo - 1, tl + 1)
        load(g_im, gis, n0, lo - 1, tl + 1)
        load(re, res, n0, lo - 1, tl + 1)
        load(im, ims, n0, lo - 1, tl + 1)
        load(thr, ths, n0, lo - 1, tl + 1)
        load(spk, sps, n0, lo - 1, tl + 1)
        cuda.syncthreads()
        if live:
            carry = _span(
                n,
                tid,
                lo - 1,
                hi,
                lo,
                carry,
                flags,
                gss,
                grs,
                gis,
                res,
                ims,
                ths,
                sps,
                theta,
                tau,
                rho,
                graded,
                mode,
                sin_d,
                cos_d,
                re0,
                im0,
                im_reset,
                xrs,
                xis,
            )
        cuda.syncthreads()
        store_from(xrs, 1, g_xre, n0, lo, tl)
        store_from(xis, 1, g_xim, n0, lo, tl)
        cuda.syncthreads()
    if live and flags[5]:
        g_sin[n] = carry[2] / 4096.0
        g_cos[n] = carry[3] / 4096.0
