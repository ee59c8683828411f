r"""The fused recurrence's backward time loop as register-tiled products (CPU, float32).

The gradient through a CUBA or ALIF Recurrent block's feedback weights ``w`` runs
backwards through time, one ``(B, n) @ (n, n)`` product a step, each needing the last:

.. math::

    g_a[t] = \bigl(g_s[t] + g_a[t+1]\, w\bigr) \odot \sigma[t],
    \qquad t = T-1, \dots, 0, \quad g_a[T] = 0

(:func:`._recurrent_cpu.backward_loop` is the same recurrence as row updates; a
resonator block's, with two parts and float64 surrogates, is :func:`complex_backward_gemm`).
:func:`backward_gemm` forms each product as a GEMM's inner kernel does: a tile of
:data:`TILE_ROWS` batch items by :data:`TILE_VECTORS` vectors of 16 outputs keeps its
16 sums in vector registers over the whole sum over ``j``; a term loads the tile's
slices of the weight row ``w[j]`` and broadcasts its rows' ``g_a[t+1, b, j]``, 10 loads
for 16 fused multiply-adds, and no sum is reduced across lanes. Each sum runs over
``j`` in order, one rounding a term (:func:`~._f32x16.vfma`), so an output's value
does not depend on its place in a tile, on the split into jobs or on the thread count.

One parallel region for the whole loop: the batch's rows, in groups of four, split into
one contiguous run per thread, each stepping through all of time (where OpenMP's idle
workers sleep, a region a step would wake them 200 times). Within a step a job walks
the outputs one tile column at a time with its row tiles inner, so a column's weights
are reused from the core's cache by every row tile. They are read from panels
(:func:`packed_weights`): each tile column's weights one contiguous run (``n`` x 32
floats, 64 KB at ``n = 512``). A job's last rows go by :func:`_tile4` (up to four rows,
two panels at a time) or :func:`_row` (one).

Two things held the kernel at a third of the FMA units' rate, and were changed in stop 70
(the 2-core Ice Lake VM):

* the weights were read in place, a column's rows ``n`` floats apart: at ``n = 512`` (a
  2 KB stride) their lines fall into a sixteenth of the L1 sets and an eighth of the
  L2's, so a resonator block's ``2n`` rows (256 KB a column) were fetched again for
  every row tile. Its backward took 3.0x the time of the imaginary part's ``n`` rows
  alone (118.8 against 39.7 ms; scratch ``cbg2.py`` on the ``rf.Recurrent`` backward's
  own arguments, median of 7), 1.9x with the panels (70.8 against 37.5);
* tiles of 4 rows by 64 outputs load 256 bytes of weights a term for 16 multiply-adds,
  more than the L2 delivers beside them; 8 rows by 32 outputs load half of that for the
  same 16. A resonator job copies its source rows into rows of its own
  :data:`ROW_PAD` floats longer than a multiple of 2 KB.

Against the code before both (a5b3710; scratch ``ab.py``: the two modules in one
process, 25 alternating rounds, the same bits out): ``rf.Recurrent``'s both parts 117.8
-> 50.8 ms (paired 0.43), ``cuba.Recurrent`` at ``(T, B, n) = (200, 32, 512)`` 32.5 ->
17.9 ms (paired 0.55). Against the panels with the old tiles (8946405): 0.87 and 0.67.

Stop 58 (2-core Zen 4 VM; scratch ``gemm.py``, 9 alternating rounds), the 4 x 64 tiles
on weights in place: 17.3-17.9 ms at ``(200, 32, 512)`` against 25-27 ms for the dot
products they replaced (4 x 2 blocks of horizontal sums, a job per 4 batch items
re-reading all 1 MB of ``w`` from L3 each step) and 35 ms for a loop of
``torch.addmm`` calls. Against the row updates (scratch ``speed.py``, 7 rounds, batch
32, T = 200): 0.30-0.37 of their time from 64 to 1024 neurons, 0.74-0.82 at 32,
1.23-1.28 at 8 and 24 (hence :data:`GEMM_MIN_NEURONS`); batch 1 at 512: 0.88 (its lone
row in :func:`_row`). Compiled for AVX2 on the same machine (``NUMBA_CPU_NAME=znver3``,
the AVX-512 features off; scratch ``avx2.py``, 15 rounds), the 16-output columns
against the dot products: 25.7 against 29.4 ms at 512 neurons, 20.0 against 21.1 at
384, 9.6 against 12.5 at 256; the 64-output tiles there: 49.6 ms (their sums spill).
"""

from __future__ import annotations

import functools

import numpy as np
from numba import njit, prange
from numba.core import codegen, config

from .._numba_cache import guard_cache_writes
from ..fixed._transpose import BLOCK
from ._f32x16 import (
    vadd,
    vbroadcast,
    vfma,
    vload,
    vmul,
    vstore,
    vstore_f64_product,
    vzero,
)
from ._recurrent_cpu import FB_BOTH, FB_SUM

guard_cache_writes()  # numba's failed cache writes: warnings (see _numba_cache)

__all__ = [
    "GEMM_MIN_NEURONS",
    "TILE_OUTPUTS",
    "TILE_ROWS",
    "OUT_COMPLEX",
    "OUT_SIGMA",
    "backward_gemm",
    "complex_backward_gemm",
    "packed_weights",
    "wide_tiles",
]

#: batch items of one register tile
TILE_ROWS = 8
#: vectors of 16 outputs of one register tile (16 sums with :data:`TILE_ROWS`: half the
#: 32 vector registers of AVX-512, the rest for the weight slices and broadcasts)
TILE_VECTORS = 2
#: outputs of one full tile column; the last ``n % 32`` outputs go a vector at a time
TILE_OUTPUTS = TILE_VECTORS * BLOCK
#: floats between the rows of a resonator job's source beyond their length: rows a
#: multiple of 2 KB apart share a few L1 sets, and a tile reads :data:`TILE_ROWS` of
#: them at once (the imaginary part's backward alone 25.7 -> 21.7 ms, scratch ``cbg2.py``)
ROW_PAD = 16
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


def packed_weights(w: np.ndarray) -> np.ndarray:
    """``w`` ``(K, n)`` (``K`` source values by ``n`` outputs) as the kernels read it:
    panels of :data:`TILE_OUTPUTS` output columns, ``(P, K, 64)`` C-contiguous float32,
    panel ``p`` holding columns ``64 p .. 64 p + 63`` of every row (zeros past ``n``: a
    vector load of the last outputs stays inside the panel; the padding's sums are never
    stored). A tile column then reads its weights as one contiguous run, which the
    caches hold whole (see the module docstring)."""
    k, n = w.shape
    panels, full = -(-n // TILE_OUTPUTS), n // TILE_OUTPUTS
    out = np.zeros((panels, k, TILE_OUTPUTS), np.float32)
    cut = full * TILE_OUTPUTS
    columns = np.asarray(w[:, :cut], np.float32).reshape(k, full, TILE_OUTPUTS)
    out[:full] = columns.transpose(1, 0, 2)
    if cut < n:
        out[full, :, : n - cut] = w[:, cut:]
    return out


#: what a tile writes from its sums ``acc`` (:func:`_store`): the CUBA and ALIF
#: recurrence's ``g_a = (g_s + acc) * sigma`` (float32), or the resonators' ``g = g_s +
#: acc`` (float32) into ``gx[1] = float32(float64(g) * d_im)`` and, for a real part,
#: ``gx[0] = float32(float64(g) * d_re)``, the roundings of the PyTorch ops of their
#: stepped loop (:func:`._recurrent_cpu.surrogate_step`)
OUT_SIGMA, OUT_COMPLEX = 0, 1


@njit(inline="always", cache=True)
def _store_one(o, at, v):
    """:func:`_store` of one value ``v`` (float32) at flat offset ``at``."""
    kind, out, part, g_s, sigma, d_re, d_im, has_gs, real, _ = o
    if has_gs:
        v = g_s[at] + v
    if kind == OUT_SIGMA:
        out[at] = v * sigma[at]
    else:
        g64 = np.float64(v)
        out[part + at] = np.float32(g64 * d_im[at])
        if real:
            out[at] = np.float32(g64 * d_re[at])


@njit(inline="always", cache=True)
def _store(o, at, acc, lanes):
    """The first ``lanes`` of the 16 sums ``acc`` of the outputs at flat offset ``at``,
    by ``o = (kind, out, part, g_s, sigma, d_re, d_im, has_gs, real, tmp)``: ``kind`` of
    :data:`OUT_SIGMA` (``out`` = ``g_a``) or :data:`OUT_COMPLEX` (``out`` = ``gx``, its
    imaginary part ``part`` values on); ``tmp`` 16 float32 of scratch. A whole vector in
    vector operations (scalar stores of the resonators' float64 products had taken 35 of
    54 ms at 512 neurons), a partial one value by value (the same
    roundings: float32 sum and product, or the float64 products rounded once)."""
    kind, out, part, g_s, sigma, d_re, d_im, has_gs, real, tmp = o
    if lanes == BLOCK:
        if has_gs:
            acc = vadd(vload(g_s, at), acc)
        if kind == OUT_SIGMA:
            vstore(out, at, vmul(acc, vload(sigma, at)))
        else:
            vstore_f64_product(out, part + at, acc, d_im, at)
            if real:
                vstore_f64_product(out, at, acc, d_re, at)
        return
    vstore(tmp, 0, acc)
    for k in range(lanes):
        _store_one(o, at + k, tmp[k])


@njit(inline="always", cache=True)
def _store_two(o, at, v0, v1):
    """:func:`_store` of two whole vectors of sums, the outputs ``at .. at+31``."""
    _store(o, at, v0, BLOCK)
    _store(o, at + BLOCK, v1, BLOCK)


@njit(cache=True)
def _tile(src, base, stride, rows, terms, w, wb, o, dst, n):
    """Outputs ``o0 .. o0+31`` of :data:`TILE_ROWS` rows: row ``q`` sums ``terms`` values
    of ``src`` from ``base + q·stride`` times the weights of one panel of ``w`` (flat,
    :func:`packed_weights`; the tile's 32 weights of row ``j`` at ``wb + 32 j``) and is
    stored (:func:`_store`) at ``dst + q·n``; rows ``q >= rows`` are computed
    as the last valid one and not stored."""
    r0 = base
    r1 = base + min(1, rows - 1) * stride
    r2 = base + min(2, rows - 1) * stride
    r3 = base + min(3, rows - 1) * stride
    r4 = base + min(4, rows - 1) * stride
    r5 = base + min(5, rows - 1) * stride
    r6 = base + min(6, rows - 1) * stride
    r7 = base + min(7, rows - 1) * stride
    a00 = a01 = a10 = a11 = a20 = a21 = a30 = a31 = vzero()
    a40 = a41 = a50 = a51 = a60 = a61 = a70 = a71 = vzero()
    for j in range(terms):
        at = wb + j * TILE_OUTPUTS
        w0 = vload(w, at)
        w1 = vload(w, at + BLOCK)
        x = vbroadcast(src, r0 + j)
        a00, a01 = vfma(a00, x, w0), vfma(a01, x, w1)
        x = vbroadcast(src, r1 + j)
        a10, a11 = vfma(a10, x, w0), vfma(a11, x, w1)
        x = vbroadcast(src, r2 + j)
        a20, a21 = vfma(a20, x, w0), vfma(a21, x, w1)
        x = vbroadcast(src, r3 + j)
        a30, a31 = vfma(a30, x, w0), vfma(a31, x, w1)
        x = vbroadcast(src, r4 + j)
        a40, a41 = vfma(a40, x, w0), vfma(a41, x, w1)
        x = vbroadcast(src, r5 + j)
        a50, a51 = vfma(a50, x, w0), vfma(a51, x, w1)
        x = vbroadcast(src, r6 + j)
        a60, a61 = vfma(a60, x, w0), vfma(a61, x, w1)
        x = vbroadcast(src, r7 + j)
        a70, a71 = vfma(a70, x, w0), vfma(a71, x, w1)
    _store_two(o, dst, a00, a01)
    if rows > 1:
        _store_two(o, dst + n, a10, a11)
    if rows > 2:
        _store_two(o, dst + 2 * n, a20, a21)
    if rows > 3:
        _store_two(o, dst + 3 * n, a30, a31)
    if rows > 4:
        _store_two(o, dst + 4 * n, a40, a41)
    if rows > 5:
        _store_two(o, dst + 5 * n, a50, a51)
    if rows > 6:
        _store_two(o, dst + 6 * n, a60, a61)
    if rows > 7:
        _store_two(o, dst + 7 * n, a70, a71)


@njit(inline="always", cache=True)
def _fma4(a0, a1, a2, a3, x, w0, w1, w2, w3):
    """Four sums' next terms: ``a_k + x · w_k``, each one fused multiply-add."""
    return vfma(a0, x, w0), vfma(a1, x, w1), vfma(a2, x, w2), vfma(a3, x, w3)


@njit(cache=True)
def _tile4(src, base, stride, rows, terms, w, wb, wb2, o, dst, n):
    """:func:`_tile` of at most four rows (a job's last ones) over two panels, at ``wb``
    and ``wb2`` (outputs ``dst .. dst+63`` of each row): 16 sums, as in a whole tile,
    without computing four rows more. (A last odd panel goes by :func:`_tile`.)"""
    r0 = base
    r1 = base + min(1, rows - 1) * stride
    r2 = base + min(2, rows - 1) * stride
    r3 = base + min(3, rows - 1) * stride
    a00 = a01 = a02 = a03 = a10 = a11 = a12 = a13 = vzero()
    a20 = a21 = a22 = a23 = a30 = a31 = a32 = a33 = vzero()
    for j in range(terms):
        at, at2 = wb + j * TILE_OUTPUTS, wb2 + j * TILE_OUTPUTS
        w0, w1 = vload(w, at), vload(w, at + BLOCK)
        w2, w3 = vload(w, at2), vload(w, at2 + BLOCK)
        x = vbroadcast(src, r0 + j)
        a00, a01, a02, a03 = _fma4(a00, a01, a02, a03, x, w0, w1, w2, w3)
        x = vbroadcast(src, r1 + j)
        a10, a11, a12, a13 = _fma4(a10, a11, a12, a13, x, w0, w1, w2, w3)
        x = vbroadcast(src, r2 + j)
        a20, a21, a22, a23 = _fma4(a20, a21, a22, a23, x, w0, w1, w2, w3)
        x = vbroadcast(src, r3 + j)
        a30, a31, a32, a33 = _fma4(a30, a31, a32, a33, x, w0, w1, w2, w3)
    _store_two(o, dst, a00, a01)
    _store_two(o, dst + TILE_OUTPUTS, a02, a03)
    if rows > 1:
        _store_two(o, dst + n, a10, a11)
        _store_two(o, dst + n + TILE_OUTPUTS, a12, a13)
    if rows > 2:
        _store_two(o, dst + 2 * n, a20, a21)
        _store_two(o, dst + 2 * n + TILE_OUTPUTS, a22, a23)
    if rows > 3:
        _store_two(o, dst + 3 * n, a30, a31)
        _store_two(o, dst + 3 * n + TILE_OUTPUTS, a32, a33)


@njit(cache=True)
def _row(src, base, terms, w, wb, wb2, pair, o, dst):
    """:func:`_tile` of one row alone (a batch's last item after whole tiles: a tile
    would repeat it seven times), over the panel at ``wb`` and, where ``pair``, the next
    one at ``wb2`` too (outputs ``dst .. dst+63``): four sums in flight, not two."""
    a0 = a1 = a2 = a3 = vzero()
    if pair:
        for j in range(terms):
            at, at2 = wb + j * TILE_OUTPUTS, wb2 + j * TILE_OUTPUTS
            x = vbroadcast(src, base + j)
            a0 = vfma(a0, x, vload(w, at))
            a1 = vfma(a1, x, vload(w, at + BLOCK))
            a2 = vfma(a2, x, vload(w, at2))
            a3 = vfma(a3, x, vload(w, at2 + BLOCK))
        _store_two(o, dst, a0, a1)
        _store_two(o, dst + TILE_OUTPUTS, a2, a3)
        return
    for j in range(terms):
        at = wb + j * TILE_OUTPUTS
        x = vbroadcast(src, base + j)
        a0 = vfma(a0, x, vload(w, at))
        a1 = vfma(a1, x, vload(w, at + BLOCK))
    _store_two(o, dst, a0, a1)


@njit(cache=True)
def _column(src, base, stride, rows, terms, w, wb, o, dst, n, lanes):
    """One vector of outputs (its weights of row ``j`` at ``wb + 32 j``) of up to four
    rows (``rows`` of them stored, as :func:`_tile`'s), its first ``lanes`` stored: four
    sums, which AVX2's 16 registers hold too (as eight vectors of 8 floats)."""
    r0 = base
    r1 = base + min(1, rows - 1) * stride
    r2 = base + min(2, rows - 1) * stride
    r3 = base + min(3, rows - 1) * stride
    a0 = a1 = a2 = a3 = vzero()
    for j in range(terms):
        w0 = vload(w, wb + j * TILE_OUTPUTS)
        a0 = vfma(a0, vbroadcast(src, r0 + j), w0)
        a1 = vfma(a1, vbroadcast(src, r1 + j), w0)
        a2 = vfma(a2, vbroadcast(src, r2 + j), w0)
        a3 = vfma(a3, vbroadcast(src, r3 + j), w0)
    _store(o, dst, a0, lanes)
    if rows > 1:
        _store(o, dst + n, a1, lanes)
    if rows > 2:
        _store(o, dst + 2 * n, a2, lanes)
    if rows > 3:
        _store(o, dst + 3 * n, a3, lanes)


@njit(inline="always", cache=True)
def _step(src, base, stride, terms, w, o, dst, n, lo, hi, full):
    """One step's products for the rows ``lo .. hi`` of a job: row ``b`` of the source
    at ``base + (b - lo)·stride``, its outputs at ``dst + b·n``. Tile columns of 32
    outputs up to ``full``, each for tiles of :data:`TILE_ROWS` rows, the last up to
    four rows by :func:`_tile4` and a lone last row by :func:`_row` (two panels at a
    time); then vectors of 16 (the last one partial), four rows at a time."""
    panel = w.shape[1] * TILE_OUTPUTS  # one panel of packed weights (packed_weights)
    wf = w.reshape(-1)
    whole = lo + (hi - lo) // TILE_ROWS * TILE_ROWS  # rows of whole tiles end here
    rest = hi - whole
    if rest > 4:  # a last tile of 5-7 rows: one tile, its missing rows repeated
        whole, rest = hi, 0
    for o0 in range(0, full, TILE_OUTPUTS):
        wb = o0 // TILE_OUTPUTS * panel
        for b0 in range(lo, whole, TILE_ROWS):
            rows = min(TILE_ROWS, hi - b0)
            at = base + (b0 - lo) * stride
            _tile(src, at, stride, rows, terms, wf, wb, o, dst + b0 * n + o0, n)
    if rest > 0:  # the last rows, two panels at a time
        at = base + (whole - lo) * stride
        for o0 in range(0, full, 2 * TILE_OUTPUTS):
            wb = o0 // TILE_OUTPUTS * panel
            pair = o0 + TILE_OUTPUTS < full
            out = dst + whole * n + o0
            if rest == 1:
                _row(src, at, terms, wf, wb, wb + panel, pair, o, out)
            elif pair:
                _tile4(src, at, stride, rest, terms, wf, wb, wb + panel, o, out, n)
            else:  # a last odd panel: one tile, its missing rows repeated
                _tile(src, at, stride, rest, terms, wf, wb, o, out, n)
    for o0 in range(full, n, BLOCK):
        lanes = min(BLOCK, n - o0)
        wb = o0 // TILE_OUTPUTS * panel + o0 % TILE_OUTPUTS
        for b0 in range(lo, hi, 4):
            at = base + (b0 - lo) * stride
            rows = min(4, hi - b0)
            _column(src, at, stride, rows, terms, wf, wb, o, dst + b0 * n + o0, n, lanes)


@njit(inline="always", cache=True)
def _split(batch, n, threads, wide):
    """``(groups of four rows, jobs, outputs in 32-output tile columns)`` of a kernel
    call: a job per thread at most, whole tile columns only with ``wide``."""
    quads = (batch + 3) // 4
    full = n // TILE_OUTPUTS * TILE_OUTPUTS if wide else 0
    return quads, max(1, min(threads, quads)), full


@njit(inline="always", cache=True)
def _job_rows(job, jobs, quads, batch):
    """The rows ``lo .. hi`` of job ``job`` of ``jobs``: contiguous groups of four rows,
    as even as can be."""
    return 4 * (job * quads // jobs), min(4 * ((job + 1) * quads // jobs), batch)


_NO_F32 = np.zeros(0, np.float32)
_NO_F64 = np.zeros(0, np.float64)


@njit(cache=True)
def _sigma_job(lo, hi, g_a, g_s, sigma, w, has_gs, full):
    """:func:`backward_gemm`'s job of rows ``lo .. hi`` through all of time (its
    own function: a tuple of arrays built in a parallel loop's body lost its writes)."""
    steps, batch, n = sigma.shape
    ga, gs, sg = g_a.reshape(-1), g_s.reshape(-1), sigma.reshape(-1)
    slab = batch * n
    o = (OUT_SIGMA, ga, 0, gs, sg, _NO_F64, _NO_F64, has_gs, False, np.empty(BLOCK, np.float32))
    top = (steps - 1) * slab
    for at in range(top + lo * n, top + hi * n):
        _store_one(o, at, np.float32(0.0))
    for t in range(steps - 2, -1, -1):
        # the source rows: step t+1 of g_a itself
        src = (t + 1) * slab + lo * n
        _step(ga, src, n, n, w, o, t * slab, n, lo, hi, full)


@njit(parallel=True, cache=True)
def backward_gemm(g_s, sigma, w, threads, wide, g_a):
    """The recurrence of the module into ``g_a``: C-contiguous float32 time-major
    ``(T, B, n)`` arrays ``sigma`` and ``g_a`` (every value written), ``g_s`` the same
    or with no steps (no gradient arrives at the spikes: 0), ``w`` the feedback weights
    as :func:`packed_weights` gives them; at most ``threads`` jobs (numba's thread count,
    passed in: read inside, it would keep the kernel from numba's cache); ``wide``:
    :func:`_tile`'s 32-output tiles where they fit (:func:`wide_tiles`), else 16-output
    ones only. Either way each output's sum is the same chain of fused multiply-adds."""
    steps, batch, n = sigma.shape
    if steps == 0 or batch == 0 or n == 0:
        return
    has_gs = g_s.shape[0] > 0
    quads, jobs, full = _split(batch, n, threads, wide)
    for job in prange(jobs):
        lo, hi = _job_rows(job, jobs, quads, batch)
        _sigma_job(lo, hi, g_a, g_s, sigma, w, has_gs, full)


@njit(cache=True)
def _complex_job(lo, hi, g_s, d_re, d_im, w, form, real, has_gs, full, gx):
    """:func:`complex_backward_gemm`'s job of rows ``lo .. hi`` through all of time."""
    steps, batch, n = d_im.shape
    gxf, gs, dre, dim = gx.reshape(-1), g_s.reshape(-1), d_re.reshape(-1), d_im.reshape(-1)
    slab = batch * n
    part = steps * slab
    terms = 2 * n if form == FB_BOTH else n
    o = (OUT_COMPLEX, gxf, part, gs, _NO_F32, dre, dim, has_gs, real, np.empty(BLOCK, np.float32))
    stride = terms + ROW_PAD
    nx = np.empty(max(hi - lo, 0) * stride, np.float32)
    top = (steps - 1) * slab
    for at in range(top + lo * n, top + hi * n):
        _store_one(o, at, np.float32(0.0))
    for t in range(steps - 2, -1, -1):
        nxt = (t + 1) * slab
        for b in range(lo, hi):
            row, at = (b - lo) * stride, nxt + b * n
            for j in range(n):
                re, im = gxf[at + j], gxf[part + at + j]
                if form == FB_SUM:
                    nx[row + j] = re + im
                elif form == FB_BOTH:
                    nx[row + j] = re
                    nx[row + n + j] = im
                else:
                    nx[row + j] = im
        _step(nx, 0, stride, terms, w, o, t * slab, n, lo, hi, full)


@njit(parallel=True, cache=True)
def complex_backward_gemm(g_s, d_re, d_im, w, form, real, threads, wide, gx):
    r"""The time loop of a resonator Recurrent block's backward with dense feedback
    (:func:`.recurrent_complex._stepped_loop`, float32) in one call::

        g[t]     = g_s[t] + feedback(gx[:, t+1])          (t < T-1; g[T-1] = g_s[T-1])
        gx[1, t] = float32(float64(g[t]) * d_im[t])
        gx[0, t] = float32(float64(g[t]) * d_re[t])       (where ``real``)

    ``feedback`` by ``form`` (:data:`._recurrent_cpu.FB_SUM`: ``(gx[0] + gx[1]) @ w``,
    the sum in float32; ``FB_BOTH``: ``gx[0] @ w_0 + gx[1] @ w_1``, one sum over both
    parts' ``2n`` terms with ``w`` their weights stacked, ``(2n, n)``; ``FB_IMAG``:
    ``gx[1] @ w``), ``w`` packed by :func:`packed_weights`. ``d_re``, ``d_im`` the
    float64 surrogates ``(T, B, n)``, ``gx`` ``(2, T, B, n)`` (``gx[0]`` not written
    unless ``real``), ``g_s`` as in :func:`backward_gemm`. Each job copies (or sums) its
    rows' source at every step into rows of its own, which its tiles read."""
    steps, batch, n = d_im.shape
    if steps == 0 or batch == 0 or n == 0:
        return
    has_gs = g_s.shape[0] > 0
    quads, jobs, full = _split(batch, n, threads, wide)
    for job in prange(jobs):
        lo, hi = _job_rows(job, jobs, quads, batch)
        _complex_job(lo, hi, g_s, d_re, d_im, w, form, real, has_gs, full, gx)
