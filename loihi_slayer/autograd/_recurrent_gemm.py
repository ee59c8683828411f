r"""The fused recurrence's backward time loop as register-tiled products (CPU, float32).

The gradient through a CUBA or ALIF Recurrent block's feedback weights ``w`` runs
backwards through time, one ``(B, n) @ (n, n)`` product a step, each needing the last:

.. math::

    g_a[t] = \bigl(g_s[t] + g_a[t+1]\, w\bigr) \odot \sigma[t],
    \qquad t = T-1, \dots, 0, \quad g_a[T] = 0

(:func:`._recurrent_cpu.backward_loop` is the same recurrence as row updates).
:func:`backward_gemm` forms each product as a GEMM's inner kernel does: a tile of
:data:`TILE_ROWS` batch items by :data:`TILE_VECTORS` vectors of 16 outputs keeps its
16 sums in vector registers over the whole sum over ``j``; a term loads the tile's
slices of the weight row ``w[j]`` and broadcasts its rows' ``g_a[t+1, b, j]``, 8 loads
for 16 fused multiply-adds, and no sum is reduced across lanes. Each sum runs over
``j`` in order, one rounding a term (:func:`~._f32x16.vfma`), so an output's value
does not depend on its place in a tile, on the split into jobs or on the thread count.

One parallel region for the whole loop: the batch's row tiles split into one
contiguous run per thread, each stepping through all of time (where OpenMP's idle
workers sleep, a region a step would wake them 200 times). Within a step a job walks
the outputs one tile column at a time with its row tiles inner, so a column's weights
(``n`` x 64 floats, 128 KB at ``n = 512``) are reused from the core's cache by every
row tile.

Measured at ``(T, B, n) = (200, 32, 512)`` on the 2-core Zen 4 VM (AVX-512; scratch
``gemm.py`` of stop 58, 9 alternating rounds): 17.3-17.9 ms against 25-27 ms for the
dot products it replaced (4 x 2 blocks of horizontal sums, a job per 4 batch items
re-reading all 1 MB of ``w`` from L3 each step) and 35 ms for a loop of
``torch.addmm`` calls: 3.4 GFLOP at 188 GFLOP/s, the rate of one large sgemm here.
Against the row updates (scratch ``speed.py``, 7 rounds, batch 32, T = 200): 0.30-0.37
of their time from 64 to 1024 neurons, 0.74-0.82 at 32, 1.23-1.28 at 8 and 24 (hence
:data:`GEMM_MIN_NEURONS`); batch 1 at 512: 0.88 (its lone row in :func:`_row`).
Compiled for AVX2 on the same machine (``NUMBA_CPU_NAME=znver3``, the AVX-512 features
off; scratch ``avx2.py``, 15 rounds), the 16-output tiles against the dot products:
25.7 against 29.4 ms at 512 neurons, 20.0 against 21.1 at 384, 9.6 against 12.5 at 256;
the 64-output tiles there: 49.6 ms (their sums spill).
"""

from __future__ import annotations

import functools

import numpy as np
from numba import njit, prange
from numba.core import codegen, config

from .._numba_cache import guard_cache_writes
from ..fixed._transpose import BLOCK
from ._f32x16 import vadd, vbroadcast, vfma, vload, vmul, vstore, vzero

guard_cache_writes()  # numba's failed cache writes: warnings (see _numba_cache)

__all__ = [
    "GEMM_MIN_NEURONS",
    "TILE_OUTPUTS",
    "TILE_ROWS",
    "backward_gemm",
    "padded_weights",
    "wide_tiles",
]

#: batch items of one register tile
TILE_ROWS = 4
#: vectors of 16 outputs of one register tile (16 sums with :data:`TILE_ROWS`: half the
#: 32 vector registers of AVX-512, the rest for the weight slices and broadcasts)
TILE_VECTORS = 4
#: outputs of one full tile column; the last ``n % 64`` outputs go a vector at a time
TILE_OUTPUTS = TILE_VECTORS * BLOCK
#: neurons from which the fused backward runs :func:`backward_gemm` (below it the row
#: updates of :func:`._recurrent_cpu.backward_loop`, which skip zero gradients)
GEMM_MIN_NEURONS = 32


@functools.cache
def wide_tiles() -> bool:
    """Whether numba compiles for AVX-512 (``+avx512f`` among its target's features,
    ``NUMBA_CPU_FEATURES`` where set): 32 registers of 16 floats hold :func:`_tile`'s 16
    sums beside its operands. AVX2's 16 registers of 8 floats would spill them, so there
    every output goes by :func:`_column`'s 4 x 16 tiles (8 registers of sums)."""
    features = config.CPU_FEATURES
    if features is None:
        features = codegen.get_host_cpu_features()
    return "+avx512f" in features.split(",")


def padded_weights(w: np.ndarray) -> np.ndarray:
    """``w`` ``(n, n)`` as :func:`backward_gemm` reads it: C-contiguous float32 with its
    rows padded by zero columns to a multiple of 16 (a vector load of a row's last
    outputs then stays inside it; the padding's sums are never stored)."""
    n, width = w.shape[0], -(-w.shape[1] // BLOCK) * BLOCK
    if width == w.shape[1]:
        return np.ascontiguousarray(w, np.float32)
    out = np.zeros((n, width), np.float32)
    out[:, : w.shape[1]] = w
    return out


@njit(inline="always", cache=True)
def _put(g_a, g_s, sigma, at, acc, has_gs):
    """``g_a.flat[at : at+16] = (g_s.flat[at : at+16] + acc) * sigma.flat[at : at+16]``
    (``g_s`` left out without ``has_gs``)."""
    if has_gs:
        acc = vadd(vload(g_s, at), acc)
    vstore(g_a, at, vmul(acc, vload(sigma, at)))


@njit(inline="always", cache=True)
def _put_lanes(g_a, g_s, sigma, at, acc, has_gs, lanes, tmp):
    """:func:`_put` of the first ``lanes`` (< 16) values only, one at a time through
    ``tmp``: the same two roundings."""
    vstore(tmp, 0, acc)
    for k in range(lanes):
        v = tmp[k]
        if has_gs:
            v = g_s[at + k] + v
        g_a[at + k] = v * sigma[at + k]


@njit(cache=True)
def _tile(g_a, src, dst, batch, n, b0, w, width, o0, g_s, sigma, has_gs):
    """Outputs ``o0 .. o0+63`` of batch items ``b0 .. b0+3`` (rows past the batch's last
    are computed as the last one and not stored): the flat step slabs of ``g_a`` start
    at ``src`` (step ``t+1``, read) and ``dst`` (step ``t``, written); ``w`` flat with
    rows of ``width`` values."""
    last = batch - 1
    r0 = src + b0 * n
    r1 = src + min(b0 + 1, last) * n
    r2 = src + min(b0 + 2, last) * n
    r3 = src + min(b0 + 3, last) * n
    a00 = a01 = a02 = a03 = vzero()
    a10 = a11 = a12 = a13 = vzero()
    a20 = a21 = a22 = a23 = vzero()
    a30 = a31 = a32 = a33 = vzero()
    for j in range(n):
        at = j * width + o0
        w0 = vload(w, at)
        w1 = vload(w, at + BLOCK)
        w2 = vload(w, at + 2 * BLOCK)
        w3 = vload(w, at + 3 * BLOCK)
        x = vbroadcast(g_a, r0 + j)
        a00, a01, a02, a03 = vfma(a00, x, w0), vfma(a01, x, w1), vfma(a02, x, w2), vfma(a03, x, w3)
        x = vbroadcast(g_a, r1 + j)
        a10, a11, a12, a13 = vfma(a10, x, w0), vfma(a11, x, w1), vfma(a12, x, w2), vfma(a13, x, w3)
        x = vbroadcast(g_a, r2 + j)
        a20, a21, a22, a23 = vfma(a20, x, w0), vfma(a21, x, w1), vfma(a22, x, w2), vfma(a23, x, w3)
        x = vbroadcast(g_a, r3 + j)
        a30, a31, a32, a33 = vfma(a30, x, w0), vfma(a31, x, w1), vfma(a32, x, w2), vfma(a33, x, w3)
    rows = min(TILE_ROWS, batch - b0)
    at = dst + b0 * n + o0
    _put(g_a, g_s, sigma, at, a00, has_gs)
    _put(g_a, g_s, sigma, at + BLOCK, a01, has_gs)
    _put(g_a, g_s, sigma, at + 2 * BLOCK, a02, has_gs)
    _put(g_a, g_s, sigma, at + 3 * BLOCK, a03, has_gs)
    if rows > 1:
        at += n
        _put(g_a, g_s, sigma, at, a10, has_gs)
        _put(g_a, g_s, sigma, at + BLOCK, a11, has_gs)
        _put(g_a, g_s, sigma, at + 2 * BLOCK, a12, has_gs)
        _put(g_a, g_s, sigma, at + 3 * BLOCK, a13, has_gs)
    if rows > 2:
        at += n
        _put(g_a, g_s, sigma, at, a20, has_gs)
        _put(g_a, g_s, sigma, at + BLOCK, a21, has_gs)
        _put(g_a, g_s, sigma, at + 2 * BLOCK, a22, has_gs)
        _put(g_a, g_s, sigma, at + 3 * BLOCK, a23, has_gs)
    if rows > 3:
        at += n
        _put(g_a, g_s, sigma, at, a30, has_gs)
        _put(g_a, g_s, sigma, at + BLOCK, a31, has_gs)
        _put(g_a, g_s, sigma, at + 2 * BLOCK, a32, has_gs)
        _put(g_a, g_s, sigma, at + 3 * BLOCK, a33, has_gs)


@njit(cache=True)
def _row(g_a, src, dst, n, b0, w, width, o0, g_s, sigma, has_gs):
    """:func:`_tile` of batch item ``b0`` alone (a batch's last item after whole tiles:
    a tile would repeat it three times)."""
    r0 = src + b0 * n
    a0 = a1 = a2 = a3 = vzero()
    for j in range(n):
        at = j * width + o0
        x = vbroadcast(g_a, r0 + j)
        a0 = vfma(a0, x, vload(w, at))
        a1 = vfma(a1, x, vload(w, at + BLOCK))
        a2 = vfma(a2, x, vload(w, at + 2 * BLOCK))
        a3 = vfma(a3, x, vload(w, at + 3 * BLOCK))
    at = dst + b0 * n + o0
    _put(g_a, g_s, sigma, at, a0, has_gs)
    _put(g_a, g_s, sigma, at + BLOCK, a1, has_gs)
    _put(g_a, g_s, sigma, at + 2 * BLOCK, a2, has_gs)
    _put(g_a, g_s, sigma, at + 3 * BLOCK, a3, has_gs)


@njit(cache=True)
def _column(g_a, src, dst, batch, n, b0, w, width, o0, g_s, sigma, has_gs, tmp):
    """:func:`_tile` of one vector of outputs ``o0 ..``: 16, or the ``n - o0`` left."""
    last = batch - 1
    r0 = src + b0 * n
    r1 = src + min(b0 + 1, last) * n
    r2 = src + min(b0 + 2, last) * n
    r3 = src + min(b0 + 3, last) * n
    a0 = a1 = a2 = a3 = vzero()
    for j in range(n):
        w0 = vload(w, j * width + o0)
        a0 = vfma(a0, vbroadcast(g_a, r0 + j), w0)
        a1 = vfma(a1, vbroadcast(g_a, r1 + j), w0)
        a2 = vfma(a2, vbroadcast(g_a, r2 + j), w0)
        a3 = vfma(a3, vbroadcast(g_a, r3 + j), w0)
    rows = min(TILE_ROWS, batch - b0)
    lanes = min(BLOCK, n - o0)
    at = dst + b0 * n + o0
    for q in range(rows):
        acc = a0 if q == 0 else (a1 if q == 1 else (a2 if q == 2 else a3))
        if lanes == BLOCK:
            _put(g_a, g_s, sigma, at + q * n, acc, has_gs)
        else:
            _put_lanes(g_a, g_s, sigma, at + q * n, acc, has_gs, lanes, tmp)


@njit(parallel=True, cache=True)
def backward_gemm(g_s, sigma, w, threads, wide, g_a):
    """The recurrence of the module into ``g_a``: C-contiguous float32 time-major
    ``(T, B, n)`` arrays ``sigma`` and ``g_a`` (every value written), ``g_s`` the same
    or with no steps (no gradient arrives at the spikes: 0), ``w`` the feedback weights
    as :func:`padded_weights` gives them; at most ``threads`` jobs (numba's thread count,
    passed in: read inside, it would keep the kernel from numba's cache); ``wide``:
    :func:`_tile`'s 64-output tiles where they fit (:func:`wide_tiles`), else 16-output
    ones only. Either way each output's sum is the same chain of fused multiply-adds."""
    steps, batch, n = sigma.shape
    if steps == 0 or batch == 0 or n == 0:
        return
    width = w.shape[1]
    has_gs = g_s.shape[0] > 0
    ga, gs, sg, wf = g_a.reshape(-1), g_s.reshape(-1), sigma.reshape(-1), w.reshape(-1)
    slab = batch * n
    tiles = (batch + TILE_ROWS - 1) // TILE_ROWS
    jobs = max(1, min(threads, tiles))
    full = n // TILE_OUTPUTS * TILE_OUTPUTS if wide else 0
    for job in prange(jobs):
        k0 = job * tiles // jobs
        k1 = (job + 1) * tiles // jobs
        tmp = np.empty(BLOCK, np.float32)
        top = (steps - 1) * slab
        for at in range(top + k0 * TILE_ROWS * n, top + min(k1 * TILE_ROWS, batch) * n):
            ga[at] = (gs[at] if has_gs else np.float32(0.0)) * sg[at]
        for t in range(steps - 2, -1, -1):
            src, dst = (t + 1) * slab, t * slab
            for o0 in range(0, full, TILE_OUTPUTS):
                for k in range(k0, k1):
                    b0 = k * TILE_ROWS
                    if batch - b0 == 1:
                        _row(ga, src, dst, n, b0, wf, width, o0, gs, sg, has_gs)
                    else:
                        _tile(ga, src, dst, batch, n, b0, wf, width, o0, gs, sg, has_gs)
            for o0 in range(full, n, BLOCK):
                for k in range(k0, k1):
                    b0 = k * TILE_ROWS
                    _column(ga, src, dst, batch, n, b0, wf, width, o0, gs, sg, has_gs, tmp)
