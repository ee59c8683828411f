"""numba ``njit`` training kernels (CPU): fused float<->int forward and compiled backward.

The per-step integer arithmetic is :func:`loihi_slayer.fixed.dynamics.cuba_step`
and :func:`~loihi_slayer.fixed.dynamics.sdnn_step`, compiled here with
``njit(inline='always')``: the training forward and the hardware model are the
same code. What these kernels add is the conversion of the float training
tensors to the integer hardware quantities on the fly (no extra pass over
memory) and the output conversion back to float.

Layout: 2-D time-last views ``(rows, T)`` where ``rows = batch * neurons``;
parameter vectors have length 1 (shared) or ``neurons`` and are indexed with
``row % len``. Arrays of shape ``(rows, 0)`` (or ``(0,)``) mean "not used".

The forward kernels step :data:`LANES` neurons together through
:data:`TILE`-step tiles (see the section "SIMD tiles"), so that the shared step
compiles to vector code across neurons. Every kernel has a parallel version
(``prange`` over blocks of rows) and a ``*_serial`` one for the calling thread;
the callers pick the serial one below ``fixed.workers.PARALLEL_MIN_WORK``
neuron-steps, where a parallel region costs more than it saves.

The surrogate gradient needs ``exp``; numba has no vector ``exp`` without
Intel SVML, so :func:`_vexp_neg` computes it on a row buffer with a
branch-free Cody-Waite reduction and a degree-6 polynomial, which LLVM
vectorizes (relative error below ``4e-7`` in float32).
"""

from __future__ import annotations

from collections.abc import Callable

import numba
import numpy as np
from numba import literally, njit, prange

from .._threads import on_one_thread
from ..fixed import dynamics
from ..fixed._prefetch import fetch_run
from ..fixed._transpose import BLOCK, block_in, block_out
from ..fixed._unowned import keep, unowned
from ..fixed._vector_width import prefer_wide_vectors
from ..fixed.params import DECAY_MAX
from ._convert import INPUT_LIMIT, chip_int, int_float, state_float
from ._lane_scan import (
    copy16,
    fma32,
    lanes_to_rows,
    mul32,
    reverse_scans,
    rows_to_lanes,
    scale16,
    sigma_scans,
)
from ._row_runs import any_nonzero, pool2x2_run, zero_row

_cuba_step = njit(inline="always", cache=True)(dynamics.cuba_step)
_cuba_rests = njit(inline="always", cache=True)(dynamics.cuba_rests)
_sdnn_step = njit(inline="always", cache=True)(dynamics.sdnn_step)

_LOG2E = np.float32(1.4426950408889634)
_LN2_HI = np.float32(0.693359375)
_LN2_LO = np.float32(-2.12194440e-4)


@njit(inline="always", fastmath=True, cache=True)
def _vexp_neg(arg, out, ibuf):
    """``out[:] = exp(arg[:])`` for ``arg <= 0`` (float32 buffers, vectorizable)."""
    n = arg.shape[0]
    for t in range(n):
        y = max(arg[t], np.float32(-87.0))
        k = np.floor(y * _LOG2E + np.float32(0.5))
        r = y - k * _LN2_HI - k * _LN2_LO
        p = np.float32(1.0) + r * (
            np.float32(1.0)
            + r
            * (
                np.float32(0.5)
                + r
                * (
                    np.float32(1.0 / 6.0)
                    + r
                    * (
                        np.float32(1.0 / 24.0)
                        + r * (np.float32(1.0 / 120.0) + r * np.float32(1.0 / 720.0))
                    )
                )
            )
        )
        ibuf[t] = (np.int32(k) + np.int32(127)) << np.int32(23)
        out[t] = p
    scale = ibuf.view(np.float32)
    for t in range(n):
        out[t] = out[t] * scale[t]


# ------------------------------------------------------------------ SIMD tiles
# The kernels step LANES neurons together, lanes innermost: with a branch-free
# step LLVM turns the lane loop into vector code (int64 multiplies, compares and
# selects across neurons). The (rows, T) time-last inputs are moved through small
# (TILE, LANES) tiles, transposed on the way in (with both trip counts fixed LLVM
# unrolls the transpose); the outputs collect in (OUT_SEGMENT, LANES) segments, each
# lane's run then written to its row at once.
# The state and parameters of a block live in 2-D (k, LANES) arrays and the
# outputs in one (k, OUT_SEGMENT, LANES) array: few distinct arrays keep LLVM's
# runtime alias checks within its limits, so the lane loop still vectorises.

#: neurons stepped together (two AVX-512 / four AVX2 int64 vectors)
LANES = 16
#: neurons the sigma-delta forward steps together: its int64 lane loop vectorises for
#: AMD CPUs (znver3-5) only from 64 lanes (LLVM's vector width times its unroll), and ran
#: scalar at 16 (20 ms at (32, 512, 200), 3.3x the C kernel; 64 lanes: see the README)
SD_LANES = 64
#: time steps per tile
TILE = 16
#: parallel chunks per call at most: 32, or two per thread numba may start where that is
#: more. numba divides a ``prange`` into one contiguous run of chunks per thread, so more
#: chunks only add per-chunk setup (small tile allocations, a new queue): the N-MNIST
#: pool block took 0.87-0.88x the time with 16-32 chunks instead of 256
MAX_CHUNKS = max(32, 2 * numba.config.NUMBA_NUM_THREADS)
#: time steps of pooled neuron input formed at a time (a multiple of TILE; 16 KB per block)
POOL_SEGMENT = 256
#: neurons ahead whose pool windows the queue prefetches: the CPU's prefetchers did not
#: keep up with the short window runs. N-MNIST pool block kernel, paired against no
#: prefetch (25 alternating rounds, 2 threads): 0.91 of the time (input from cache), 0.84
#: (input flushed from cache); 16 ahead the same within noise; one thread, all quiet: 0.65
POOL_AHEAD = 8
#: time steps of output the forward kernels keep per lane before writing them (a multiple of
#: TILE; 64 KB for its four outputs): each output row then gets one run of up to this many
#: values at a time. Written tile by tile (16 values in each of 16 rows), every output
#: took several times a plain write of it, the more so with more outputs: the kernel
#: paired 0.69-0.81 with the voltage recorded, 0.73-0.83 with spikes alone
#: ((16384, 200), (4096, 200), (512, 2000)), 0.84 at (4096, 60); 128 steps did less
#: well than 256, 1024 no better
OUT_SEGMENT = 256
#: fast-math flags of the fast CUBA backward: all of ``fastmath=True``'s but
#: ``reassoc``, so a product of three factors is formed in the written order in every
#: loop it appears in (the neuron-last and time-last layouts multiply the surrogate by
#: the spike gradient in different loops, and must give the same bits)
NO_REASSOC = {"nnan", "ninf", "nsz", "arcp", "contract", "afn"}
#: the CUBA forward's ``pool`` argument when the input is the neuron input itself
NO_POOL = np.zeros(0, np.int64)


#: lane j's row in a tile buffer (:func:`_tile_in` from a per-lane buffer)
LANE_IDS = np.arange(LANES)


@njit(inline="always", cache=True)
def _tile_in(x, rows, m, t0, tl, buf):
    """``buf[tt, j] = x[rows[j], t0 + tt]`` for ``j < m``, ``tt < tl``; lanes ``>= m`` get 0
    (:data:`LANES` lanes; :func:`_tile_in_lanes`)."""
    _tile_in_lanes(x, rows, m, t0, tl, buf, LANES)


@njit(inline="always", cache=True)
def _tile_in_lanes(x, rows, m, t0, tl, buf, lanes):
    """:func:`_tile_in` for a ``buf`` of ``lanes`` lanes (a constant where it is inlined).
    Indexed directly with unsigned indices (no negative-index wrap-around, so the copy
    vectorises). No row views: each view of an array shared by the threads adds and
    drops a reference to it, atomic operations on one cache line that the threads take
    in turn (with views here and in :func:`_segment_out_flat` the N-MNIST pool block spent
    about a fifth of its time in numba's ``NRT_incref``/``NRT_decref``, ``perf``)."""
    u0 = np.uint64(t0)
    if m == lanes and tl == TILE:  # whole 16 x 16 blocks, transposed in registers
        for j0 in range(0, lanes, BLOCK):
            block_in(x, rows, j0, t0, buf, j0, lanes)
    else:
        for j in range(m):
            r = np.uint64(rows[j])
            for tt in range(np.uint64(tl)):
                buf[tt, j] = x[r, u0 + tt]
        for tt in range(tl):
            for j in range(m, lanes):
                buf[tt, j] = 0


@njit(inline="always", cache=True)
def _tile_span(start, tl):
    """``(first, count, back)``: the source steps :func:`_tile_in` reads for a tile of
    ``tl`` steps from ``start``, and the tile row of its first step. A short tile (the
    end of a time axis that is no multiple of :data:`TILE`) reads the whole tile ending at
    its last step where the source holds one (``start >= TILE - tl``): a 16 x 16 block
    transposed in registers instead of value by value, its first ``back`` rows already
    stepped and skipped. The CUBA forward at (4096, 60) took 1.08-1.10x its time at
    (4096, 64) with short tiles read value by value."""
    back = TILE - tl
    if back > 0 and start >= back:
        return start - back, TILE, back
    return start, tl, 0


@njit(inline="always", cache=True)
def _segment_out_flat(out, segs, base, rows, m, g0, gl, sh=0, lanes=LANES):
    """``out[rows[j], g0 + sh + t] = segs[base + t * lanes + j]`` for ``j < m``, ``t < gl``
    (``sh = 1``: one step later, the last step dropped at the end of the time axis; a
    flat segment buffer of ``lanes`` lanes, a constant where it is inlined): each row one
    contiguous run, indexed directly (see :func:`_tile_in`)."""
    gl = min(gl, out.shape[1] - g0 - sh)
    if gl <= 0:
        return
    # whole 16 x 16 blocks (every lane queued) transposed in registers, the rest moved
    # one value at a time
    full = gl // BLOCK * BLOCK if m == lanes else 0
    for tb in range(0, full, BLOCK):
        for j0 in range(0, lanes, BLOCK):
            block_out(segs, base + tb * lanes + j0, lanes, out, rows, j0, g0 + sh + tb)
    if 0 < full < gl:  # the rest as the whole block ending at the last step (its first
        # values written again, the same): no value-by-value moves (see _tile_span)
        tb = gl - BLOCK
        for j0 in range(0, lanes, BLOCK):
            block_out(segs, base + tb * lanes + j0, lanes, out, rows, j0, g0 + sh + tb)
        full = gl
    u0 = np.uint64(g0 + sh)
    for j in range(m):
        r = np.uint64(rows[j])
        src = np.uint64(base + j)
        for t in range(np.uint64(full), np.uint64(gl)):
            out[r, u0 + t] = segs[src + t * np.uint64(lanes)]


@njit(inline="always", cache=True)
def _at(n, k):
    """Neuron ``n``'s index into a parameter array of ``k`` values (one shared value, or
    one per neuron of a batch entry): no division for a shared value."""
    return 0 if k == 1 else n % k


@njit(inline="always", cache=True)
def _pool_base(pool, n):
    r"""The input row of the first tap of pooled row ``n``'s window (see
    :func:`_pool_segment`): ``n = (plane, i, j)`` on the ``(H', W')`` grid, the window at
    input row ``(plane·H' + i)·kH`` (``q = n // W'``, one division), column ``j·kW``:

    .. math:: ((q\,k_H W' + n - q W')\,k_W, \qquad q = \lfloor n / W' \rfloor = plane\,H' + i
    """
    kh, kw, wo = pool[0], pool[1], pool[3]
    q = n // wo
    return (q * (kh - 1) * wo + n) * kw


#: values of a row the quiet test counts at a time before it looks at the count
QUIET_BLOCK = 64


@njit(inline="always", cache=True)
def _quiet_row(x, n):
    """Whether every value of row ``n`` of ``x`` is 0 (NaN is not), block by block of
    :data:`QUIET_BLOCK` values (:func:`~._row_runs.any_nonzero`: whole vectors, the last
    one overlapping), stopping at the first block with a non-zero value. (With signed
    indices numba kept its wrap-around check for negative indices and the count stayed
    scalar; a loop over a row of T = 60 ran mostly value by value.)"""
    steps = x.shape[1]
    for t0 in range(0, steps, QUIET_BLOCK):
        if any_nonzero(x, n, t0, min(QUIET_BLOCK, steps - t0)):
            return False
    return True


@njit(cache=True, error_model="numpy")
def _quiet_input(x, pool, n, base):
    """Whether neuron ``n``'s input is 0 at every step: its row of ``x``, or (pooled) every
    tap of its window (then so is the sum, whatever the weight).

    Compiled apart, not inlined (as :func:`_pool_segment`): called once a neuron where the
    input is not pooled as the neuron is queued, it left the chunk (:func:`_cuba_chunk`)
    smaller, which compiled 4 s sooner (29 against 33 s for the pool block's first call)
    at no time measurable on the N-MNIST calls."""
    if pool.shape[0] == 0:
        return _quiet_row(x, n)
    # every tap counted in full: an all-quiet N-MNIST pool block took 0.78x the time of
    # stopping at the first non-zero block of each tap (fewer loop exits, fewer views)
    kh, kw = pool[0], pool[1]
    width = pool[3] * kw
    nz = 0
    for a in range(kh):
        for b in range(kw):
            r = np.uint64(base + a * width + b)
            for t in range(np.uint64(x.shape[1])):
                nz += x[r, t] != 0
    return nz == 0


@njit(inline="always", cache=True)
def _window_row(x, row, kw, t0, tn, seg, k):
    """``seg[k, tt] = sum_{b < kW} x[row + b, t0 + tt]`` for ``tt < tn``, left to right
    (indexed directly with unsigned indices: see :func:`_tile_in`)."""
    r = np.uint64(row)
    u0 = np.uint64(t0)
    for tt in range(np.uint64(tn)):
        seg[k, tt] = x[r, u0 + tt]
    for b in range(1, kw):
        rb = r + np.uint64(b)
        for tt in range(np.uint64(tn)):
            seg[k, tt] = seg[k, tt] + x[rb, u0 + tt]


@njit(inline="always", cache=True)
def _pool_row(x, pool, w, base, t0, tn, seg, j):
    """One neuron input of a sum pool whose ``(kH, kW)`` windows tile the input exactly:
    ``seg[j, tt] = w * sum_{a, b} x[base + a·W + b, t0 + tt]`` for ``tt < tn``.

    ``x`` is the ``(C·H·W, T)`` input, ``pool = (kH, kW, H', W')``, ``base`` from
    :func:`_pool_base`, ``seg`` a ``(LANES + 1, S)`` buffer whose last row is scratch. The
    float32 sums run in the order of the synapse's separable sum
    (``synapse.layer._slice_pool``: the ``kW`` columns of each window row left to right,
    then the ``kH`` row sums, then one multiply by ``w``), so the values are the
    synapse's bit for bit. Each sum runs along time over contiguous input rows, long
    enough for whole vectors, indexed with unsigned indices and without row views (see
    :func:`_tile_in`); the common 2x2 pool is one pass.
    """
    kh, kw = pool[0], pool[1]
    width = pool[3] * kw
    if kh == 2 and kw == 2:
        pool2x2_run(x, base, base + width, t0, tn, w, seg, j)
        return
    _window_row(x, base, kw, t0, tn, seg, j)
    for a in range(1, kh):
        _window_row(x, base + a * width, kw, t0, tn, seg, LANES)
        for tt in range(np.uint64(tn)):
            seg[j, tt] = seg[j, tt] + seg[LANES, tt]
    for tt in range(np.uint64(tn)):
        seg[j, tt] = seg[j, tt] * w


@njit(inline="always", cache=True)
def _fetch_window(x, pool, base):
    """Prefetch the ``kH`` input runs of the window from row ``base`` (see
    :func:`_pool_row`; :func:`~loihi_slayer.fixed._prefetch.fetch_run`)."""
    kh, kw = pool[0], pool[1]
    width = pool[3] * kw
    steps = x.shape[1]
    for a in range(kh):
        fetch_run(x, (base + a * width) * steps, kw * steps)


@njit(cache=True, error_model="numpy")
def _pool_segment(x, pool, w, bases, m, t0, tn, seg):
    """:func:`_pool_row` for lanes ``j < m`` into ``seg[j]`` (``seg`` a ``(LANES + 1, S)``
    buffer, its last row the scratch row), input rows from ``bases[j]``. Compiled apart
    (see :func:`_quiet_input`): once per segment of :data:`POOL_SEGMENT` steps."""
    for j in range(m):
        _pool_row(x, pool, w, bases[j], t0, tn, seg, j)


@njit(inline="always", cache=True)
def chunk_span(c, chunks, items):
    """Chunk ``c`` of ``chunks``'s contiguous share ``[lo, hi)`` of ``items`` (numba gives
    each thread a contiguous run of chunks, so a thread streams through memory in order;
    round-robin items took 1.16x the time on the N-MNIST pool block and 1.1-1.2x on the
    sigma-delta forward)."""
    return c * items // chunks, (c + 1) * items // chunks


@njit(cache=True)
def n_chunks(rows, lanes=LANES):
    """Parallel chunks for ``rows`` neurons (blocks of ``lanes``)."""
    return max(1, min((rows + lanes - 1) // lanes, MAX_CHUNKS))


# --------------------------------------------------------------------------- CUBA


#: the range of the lanes' narrow (int32) state, decay factors and refractory counts
INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


#: rows of :func:`_cuba_chunk`'s flat lane array ``ln`` (``k * LANES + j``: lane ``j``):
#: current, voltage, refractory count, ``4096 - iDecay``, ``4096 - vDecay``, threshold,
#: bias, refused inputs
LN_U, LN_V, LN_RC, LN_FI, LN_FV, LN_TH, LN_BIAS, LN_BAD = (k * LANES for k in range(8))
#: rows of the flat lane array
LN_ROWS = 8
#: values of one output row of the flat output segments (``k * OT_ROW + t * LANES + j``)
OT_ROW = OUT_SEGMENT * LANES


@njit(inline="always", cache=True)
def _lane_tile(
    xt, x0, tl, in_scale, out_scale, ref, graded, ln, lane_int, ot, s0, refractory, records
):
    """``tl`` steps of the :data:`LANES` lanes of :func:`_cuba_chunk` on the input tile
    ``xt`` from its row ``x0`` on (see :func:`_tile_span`): state, decay factors
    (``4096 - decay``), threshold, bias and refused-input counts in the flat int64 lane
    array ``ln`` (rows ``LN_*``), outputs into the flat
    ``ot`` (rows of :data:`OT_ROW`) from its step ``s0`` on (spikes; the pre-reset
    voltage and the current only when ``records``, the refractory marks only when
    ``refractory``, both constants at the call sites).

    One array at constant row offsets: LLVM proves the rows disjoint. With a 2-D array
    per role (runtime row strides) it compared every pair of rows' address ranges before
    each step's lane loop (53-91 compares); a harness of the lane tile alone paired
    0.72 (spikes) and 0.58 (voltage and current recorded) flat against 2-D.
    With ``lane_int`` ``np.int32`` (:func:`_narrow_lanes`) the state and decay factors
    pass through int32, so each decay product is one of sign-extended 32-bit values,
    which AVX2 multiplies in one instruction (``vpmuldq``); int64 operands take three
    multiplies and the shifts that join them."""
    one = 1.0
    for tt in range(tl):
        row = (s0 + tt) * LANES
        for j in range(LANES):
            a, refused = chip_int(xt[x0 + tt, j], in_scale, INPUT_LIMIT)
            ln[LN_BAD + j] += refused
            rc0 = np.int64(lane_int(ln[LN_RC + j])) if refractory else 0
            i_dec = DECAY_MAX - np.int64(lane_int(ln[LN_FI + j]))
            v_dec = DECAY_MAX - np.int64(lane_int(ln[LN_FV + j]))
            u0, v0 = np.int64(lane_int(ln[LN_U + j])), np.int64(lane_int(ln[LN_V + j]))
            u, v, rc, s, vp = _cuba_step(
                u0, v0, rc0, a, i_dec, v_dec, ln[LN_TH + j], ref, ln[LN_BIAS + j], 0
            )
            vpf = state_float(vp) * out_scale
            ot[row + j] = (vpf if graded else one) if s != 0 else 0.0
            if records:
                ot[OT_ROW + row + j] = vpf
                ot[2 * OT_ROW + row + j] = state_float(u) * out_scale
            if refractory:
                ot[3 * OT_ROW + row + j] = 1.0 if rc0 > 0 else 0.0
                ln[LN_RC + j] = rc
            ln[LN_U + j] = u
            ln[LN_V + j] = v


#: the forward kernels' ``q_out`` and ``q_counts`` where no int8 operand is wanted
NO_OPERAND = np.zeros((0, 0, 0), np.int8)
NO_COUNTS = np.zeros((0, 0), np.int32)


@njit(inline="always", cache=True)
def _operand_row(s_out, n, q_out, q_counts):
    """Spike row ``n = b·I + i`` of ``s_out`` (0/1 values) into the int8 operand of the
    next dense product: ``q_out[i, b, :] = s_out[n, :]`` (``(I, B, T)``) and
    ``q_counts[b, i]`` its non-zero values, as
    :func:`~loihi_slayer.synapse._int_product.int8_operand` makes them from the spikes.
    Unsigned indices (see :func:`_tile_in`), so the row converts in vectors."""
    n_i = q_out.shape[0]
    b, i = n // n_i, n % n_i
    r, ub, ui = np.uint64(n), np.uint64(b), np.uint64(i)
    nz = np.int32(0)
    for t in range(np.uint64(s_out.shape[1])):
        v = s_out[r, t]
        q_out[ui, ub, t] = np.int8(v)
        nz += v != 0
    q_counts[ub, ui] = nz


@njit(cache=True, error_model="numpy")
def _cuba_chunk(
    c,
    chunks,
    x,
    in_scale,
    out_scale,
    i_decay,
    v_decay,
    v_th,
    ref,
    bias,
    u_st,
    v_st,
    rc_st,
    graded,
    s_out,
    vp_out,
    u_out,
    r_out,
    bad,
    pool,
    pool_w,
    shift,
    q_out,
    q_counts,
    refractory,
    lane_int,
):
    """Chunk ``c`` of ``chunks`` of :func:`cuba_forward`'s rows (a contiguous run of blocks
    of :data:`LANES` rows), queued :data:`LANES` at a time into the lanes of one step loop.

    A quiet neuron is not queued: at rest (zero current, voltage and refractory count, no
    bias, a threshold >= 0: :func:`~loihi_slayer.fixed.dynamics.cuba_rests`) with an input
    of 0 at every step, the step keeps it there (``u = v = 0``, no spike), so only its
    zero outputs are written.
    On event data most neurons are quiet (53 % of the N-MNIST pool block's), and the
    lanes then step the others only. The test reads a row's input in blocks of
    :data:`QUIET_BLOCK` values until one holds a non-zero value (a queued neuron's input
    is read again by the step); a pooled input of at most :data:`POOL_SEGMENT` steps is
    summed into the lane's row as the neuron is queued, and the test reads those sums.

    ``refractory`` is a constant at each call site: without a refractory period
    the counter is the constant 0 and its branch in the step folds away. ``lane_int``
    (``np.int32`` or ``np.int64``) is the integer type of the lanes' state and decay
    factors: int32 where :func:`_narrow_lanes` holds, else int64 (every value exact).

    Compiled as a function of its own (NumPy's error model, as numba gives a ``prange``
    body: no zero test before integer ``//`` and ``%``; every divisor here is a length
    or a pool size, never 0), which the parallel kernels' ``prange`` body calls
    (:func:`_cuba_rows`). Inlined into that body, the chunk went through numba's parallel
    passes too: :func:`cuba_forward` took 59 s to compile, 29 s with the chunk in a
    function of its own. That function had inlined this one, and numba copies an
    inlined function's IR block by block (each block with its own copy of the variable
    scope, then the whole once more): 6 s of copying for this function's 390 blocks,
    which a call does not make (the pool block's first call, empty caches: 28.8 -> 22.0 s).
    ``refractory`` is taken as a literal (one compile for each value), so its branches
    fold as they did inlined.

    Every array is used through a view without an owner (:mod:`~loihi_slayer.fixed._unowned`):
    compiled apart from a ``prange`` body, the loops below had otherwise counted
    references with atomic instructions at every helper they inline (1.14-1.22x the
    time); the kernels run as fast as with the chunk inlined into the ``prange`` body.
    """
    literally(refractory)
    prefer_wide_vectors()
    x, i_decay, v_decay, v_th, bias = (
        unowned(x),
        unowned(i_decay),
        unowned(v_decay),
        unowned(v_th),
        unowned(bias),
    )
    u_st, v_st, rc_st, bad = unowned(u_st), unowned(v_st), unowned(rc_st), unowned(bad)
    s_out, vp_out, u_out, r_out = unowned(s_out), unowned(vp_out), unowned(u_out), unowned(r_out)
    pool, q_out, q_counts = unowned(pool), unowned(q_out), unowned(q_counts)
    rows, steps = s_out.shape
    pooled = pool.shape[0] > 0
    ni, nv, nt, nb = i_decay.shape[0], v_decay.shape[0], v_th.shape[0], bias.shape[0]
    rec_v = vp_out.shape[1] > 0
    rec_u = u_out.shape[1] > 0
    rec_r = r_out.shape[1] > 0
    # the buffers (owners, kept to the end) and the views the loops use
    xt_own = np.zeros((TILE, LANES), x.dtype)
    # pooled input: each lane's row (written before it is read), the last row scratch
    pseg_own = np.empty((LANES + 1, min(steps, POOL_SEGMENT) if pooled else 0), x.dtype)
    bases_own = np.zeros(LANES, np.int64)  # pooled input: each lane's first window row
    lane_rows_own = np.zeros(LANES, np.int64)  # each lane's neuron
    # spike, v_pre, u, refractory of OUT_SEGMENT steps (rows of OT_ROW values)
    ot_own = np.empty(4 * OT_ROW, s_out.dtype)
    ln_own = np.zeros(LN_ROWS * LANES, np.int64)  # the lanes' state and parameters (LN_*)
    xt, pseg, bases = unowned(xt_own), unowned(pseg_own), unowned(bases_own)
    lane_rows, ot, ln = unowned(lane_rows_own), unowned(ot_own), unowned(ln_own)
    # a pooled input that fits one segment is pooled as each neuron is queued: the lane's
    # row is formed once, and the quiet test reads it instead of every tap
    fused = pooled and steps <= POOL_SEGMENT
    blocks = (rows + LANES - 1) // LANES
    blk, blk_end = chunk_span(c, chunks, blocks)
    nxt = 0  # the next neuron to queue: row blk * LANES + nxt
    while True:
        # queue the next LANES neurons that can spike; a quiet neuron (zero state and
        # input, no bias, threshold >= 0) stays at rest and only its zero outputs are written
        m = 0
        while m < LANES and blk < blk_end:
            n = blk * LANES + nxt
            nxt += 1
            if nxt == LANES or n + 1 == rows:
                blk, nxt = blk + 1, 0
            base = _pool_base(pool, n) if pooled else 0
            if pooled and n + POOL_AHEAD < rows:
                _fetch_window(x, pool, _pool_base(pool, n + POOL_AHEAD))
            rests = _cuba_rests(u_st[n], v_st[n], rc_st[n], bias[_at(n, nb)], v_th[_at(n, nt)])
            if fused:  # the pooled row into lane m: a quiet neuron's sums are all 0
                _pool_row(x, pool, pool_w, base, 0, steps, pseg, m)
                quiet = rests and not any_nonzero(pseg, m, 0, steps)
            else:
                quiet = rests and _quiet_input(x, pool, n, base)
            if quiet:
                zero_row(s_out, n)
                if q_out.shape[0] > 0:
                    _operand_row(s_out, n, q_out, q_counts)
                if rec_v:
                    zero_row(vp_out, n)
                if rec_u:
                    zero_row(u_out, n)
                if rec_r:
                    zero_row(r_out, n)
                continue
            lane_rows[m] = n
            bases[m] = base
            m += 1
        if m == 0:
            break
        for j in range(LANES):
            n = lane_rows[min(j, m - 1)]
            # stored through lane_int, as the step reads them (int32 where they fit)
            ln[LN_FI + j] = lane_int(DECAY_MAX - i_decay[_at(n, ni)])
            ln[LN_FV + j] = lane_int(DECAY_MAX - v_decay[_at(n, nv)])
            ln[LN_TH + j] = v_th[_at(n, nt)]
            ln[LN_BIAS + j] = bias[_at(n, nb)]
            live = j < m
            ln[LN_U + j] = lane_int(u_st[n]) if live else 0
            ln[LN_V + j] = lane_int(v_st[n]) if live else 0
            ln[LN_RC + j] = lane_int(rc_st[n]) if (live and refractory) else 0
            ln[LN_BAD + j] = 0
            if shift and live:
                s_out[n, 0] = 0.0
        for t0 in range(0, steps, TILE):
            tl = min(TILE, steps - t0)
            so = t0 % OUT_SEGMENT
            if pooled:
                s0 = t0 % POOL_SEGMENT
                if s0 == 0 and not fused:
                    tn = min(POOL_SEGMENT, steps - t0)
                    _pool_segment(x, pool, pool_w, bases, m, t0, tn, pseg)
                first, count, back = _tile_span(s0, tl)
                _tile_in(pseg, LANE_IDS, m, first, count, xt)
            else:
                first, count, back = _tile_span(t0, tl)
                _tile_in(x, lane_rows, m, first, count, xt)
            # the step loop twice, its stores of voltage and current only where recorded (a
            # constant in each copy: spikes alone paired 0.89 on (16384, 200), 0.95 pooled)
            rf, sc = refractory, out_scale
            if rec_v or rec_u:
                _lane_tile(xt, back, tl, in_scale, sc, ref, graded, ln, lane_int, ot, so, rf, True)
            else:
                _lane_tile(xt, back, tl, in_scale, sc, ref, graded, ln, lane_int, ot, so, rf, False)
            if so + tl == OUT_SEGMENT or t0 + tl == steps:  # a segment is complete
                g0, gl = t0 - so, so + tl
                _segment_out_flat(s_out, ot, 0, lane_rows, m, g0, gl, shift)
                if rec_v:
                    _segment_out_flat(vp_out, ot, OT_ROW, lane_rows, m, g0, gl)
                if rec_u:
                    _segment_out_flat(u_out, ot, 2 * OT_ROW, lane_rows, m, g0, gl)
                if rec_r:
                    _segment_out_flat(r_out, ot, 3 * OT_ROW, lane_rows, m, g0, gl)
        for j in range(m):
            n = lane_rows[j]
            if q_out.shape[0] > 0:  # the row just written, from the cache
                _operand_row(s_out, n, q_out, q_counts)
            u_st[n] = ln[LN_U + j]
            v_st[n] = ln[LN_V + j]
            rc_st[n] = ln[LN_RC + j]
            if ln[LN_BAD + j] != 0:
                bad[n] = 1
    keep(xt_own)
    keep(pseg_own)
    keep(bases_own)
    keep(lane_rows_own)
    keep(ot_own)
    keep(ln_own)


@njit(inline="always", cache=True)
def _outside(a, lo, hi):
    """How many values of ``a`` lie outside ``[lo, hi]`` (one vectorised count)."""
    n = 0
    for k in range(a.shape[0]):
        n += (a[k] < lo) | (a[k] > hi)
    return n


@njit(cache=True)
def _narrow_lanes(u_st, v_st, rc_st, i_decay, v_decay, ref_delay, refractory):
    """Whether the lanes of :func:`_cuba_chunk` may hold the state ``u, v`` (and ``rc``
    with a refractory period), the decay factors ``4096 - decay`` and the refractory
    count ``ref_delay - 1`` in int32. The kernels' own states always fit (24 bits), as do
    hardware decays (``0..4096``); a state set by hand may not, and then the kernels step
    with int64 lanes (:func:`_cuba_forward_wide`), as exact and a little slower."""
    lo, hi = INT32_MIN, INT32_MAX
    out = _outside(u_st, lo, hi) + _outside(v_st, lo, hi)
    out += _outside(i_decay, DECAY_MAX - hi, DECAY_MAX - lo)
    out += _outside(v_decay, DECAY_MAX - hi, DECAY_MAX - lo)
    if refractory:
        out += _outside(rc_st, lo, hi) + (ref_delay - 1 < lo) + (ref_delay - 1 > hi)
    return out == 0


@njit(cache=True)
def _cuba_forward_wide(
    x,
    in_scale,
    out_scale,
    i_decay,
    v_decay,
    v_th,
    ref_delay,
    bias,
    u_st,
    v_st,
    rc_st,
    graded,
    s_out,
    vp_out,
    u_out,
    r_out,
    bad,
    pool,
    pool_w,
    shift,
    q_out,
    q_counts,
    refractory,
):
    """:func:`cuba_forward` (:func:`cuba_forward_refractory` when ``refractory``) on the
    calling thread with int64 lanes, for values outside :func:`_narrow_lanes`' range."""
    ref = ref_delay if refractory else 1
    _cuba_chunk(
        0,
        1,
        x,
        in_scale,
        out_scale,
        i_decay,
        v_decay,
        v_th,
        ref,
        bias,
        u_st,
        v_st,
        rc_st,
        graded,
        s_out,
        vp_out,
        u_out,
        r_out,
        bad,
        pool,
        pool_w,
        shift,
        q_out,
        q_counts,
        refractory,
        np.int64,
    )


@njit(inline="always", cache=True)
def _cuba_rows(
    chunks,
    x,
    in_scale,
    out_scale,
    i_decay,
    v_decay,
    v_th,
    ref_delay,
    bias,
    u_st,
    v_st,
    rc_st,
    graded,
    s_out,
    vp_out,
    u_out,
    r_out,
    bad,
    pool,
    pool_w,
    shift,
    q_out,
    q_counts,
    refractory,
):
    """The forward kernels' body: ``chunks`` chunks of rows (a ``prange``) with int32
    lanes, each by :func:`_cuba_chunk`; True.
    Where :func:`_narrow_lanes` fails, False with nothing written
    (:func:`run_cuba_forward` then steps the rows in int64 lanes). ``refractory`` is a
    constant at each call site."""
    if not _narrow_lanes(u_st, v_st, rc_st, i_decay, v_decay, ref_delay, refractory):
        return False
    ref = ref_delay if refractory else 1
    for c in prange(chunks):  # np.int64: one compile of the chunk (the index is unsigned)
        _cuba_chunk(
            np.int64(c),
            chunks,
            x,
            in_scale,
            out_scale,
            i_decay,
            v_decay,
            v_th,
            ref,
            bias,
            u_st,
            v_st,
            rc_st,
            graded,
            s_out,
            vp_out,
            u_out,
            r_out,
            bad,
            pool,
            pool_w,
            shift,
            q_out,
            q_counts,
            refractory,
            np.int32,
        )
    return True


@njit(parallel=True, cache=True)
def cuba_forward(
    x,
    in_scale,
    out_scale,
    i_decay,
    v_decay,
    v_th,
    ref_delay,
    bias,
    u_st,
    v_st,
    rc_st,
    graded,
    s_out,
    vp_out,
    u_out,
    r_out,
    bad,
    pool,
    pool_w,
    shift,
    q_out,
    q_counts,
):
    """Fused CUBA forward: ``A = rint(x * in_scale)``, integer step, float outputs.

    ``s_out`` gets spikes (0/1, or the graded payload ``v * out_scale``),
    ``vp_out`` the pre-reset voltage and ``u_out`` the current, both times
    ``out_scale``; ``r_out`` (uint8) marks refractory steps. ``u_st``/``v_st``/
    ``rc_st`` hold the integer state (updated in place). ``bad[row]`` is set
    when an input is NaN/inf or too large. ``ref_delay`` is the hardware refDelay
    (here 1: no refractory period; see :func:`cuba_forward_refractory`).
    With a non-empty ``pool = (kH, kW, H', W')`` the neuron input is the sum pool of ``x``
    (``(C·H·W, T)``, windows tiling it exactly) times the float32 ``pool_w``, summed
    on the way in (:func:`_pool_segment`); the rows are then ``s_out``'s. ``shift = 1``
    writes the spikes one step later (``s_out[:, 0] = 0``, the last step dropped): the
    block's one-step delay without a pass of its own. A non-empty int8 ``q_out``
    ``(I, B, T)`` (rows ``n = b·I + i``; spikes of 0/1 only) gets each row's spikes as
    the int8 operand of the next dense product, and ``q_counts`` ``(B, I)`` int32 their
    non-zero counts, as each row is finished (:func:`_operand_row`); else pass
    :data:`NO_OPERAND`, :data:`NO_COUNTS`. Quiet neurons (zero state, bias
    and input, see :func:`_cuba_chunk`) only get their zero outputs written.
    Parallel over blocks of :data:`LANES` neurons; :func:`cuba_forward_serial`
    is the same on the calling thread (for small work).

    Returns True; False, with nothing written, where a state or decay does not fit the
    int32 lanes (:func:`_narrow_lanes`): call it through :func:`run_cuba_forward`,
    which then steps the rows in int64 lanes.
    """
    return _cuba_rows(
        n_chunks(s_out.shape[0]),
        x,
        in_scale,
        out_scale,
        i_decay,
        v_decay,
        v_th,
        ref_delay,
        bias,
        u_st,
        v_st,
        rc_st,
        graded,
        s_out,
        vp_out,
        u_out,
        r_out,
        bad,
        pool,
        pool_w,
        shift,
        q_out,
        q_counts,
        False,
    )


@njit(parallel=True, cache=True)
def cuba_forward_refractory(
    x,
    in_scale,
    out_scale,
    i_decay,
    v_decay,
    v_th,
    ref_delay,
    bias,
    u_st,
    v_st,
    rc_st,
    graded,
    s_out,
    vp_out,
    u_out,
    r_out,
    bad,
    pool,
    pool_w,
    shift,
    q_out,
    q_counts,
):
    """:func:`cuba_forward` with a refractory period (``ref_delay > 1``)."""
    return _cuba_rows(
        n_chunks(s_out.shape[0]),
        x,
        in_scale,
        out_scale,
        i_decay,
        v_decay,
        v_th,
        ref_delay,
        bias,
        u_st,
        v_st,
        rc_st,
        graded,
        s_out,
        vp_out,
        u_out,
        r_out,
        bad,
        pool,
        pool_w,
        shift,
        q_out,
        q_counts,
        True,
    )


def cuba_forward_serial(*args: object) -> bool:
    """:func:`cuba_forward` on the calling thread alone: the same compiled kernel, run
    with one numba thread (:func:`~loihi_slayer._threads.on_one_thread`). A separate
    serial kernel had cost a compile of its own (27 s of a new process's first N-MNIST
    training step) and ran slower (N-MNIST's dense 128 -> 10 neuron: 54-71 against 50
    us): a plain ``njit`` function of the same code, it counted references at the
    helpers it inlined and tested every divisor for zero, as the chunk function did
    before its views without an owner (:func:`_cuba_chunk`)."""
    return on_one_thread(cuba_forward, *args)


def cuba_forward_refractory_serial(*args: object) -> bool:
    """:func:`cuba_forward_refractory` on the calling thread alone (see
    :func:`cuba_forward_serial`)."""
    return on_one_thread(cuba_forward_refractory, *args)


#: the refractory flag of each training CUBA forward kernel (for its int64 fallback)
_REFRACTORY = {
    cuba_forward: False,
    cuba_forward_serial: False,
    cuba_forward_refractory: True,
    cuba_forward_refractory_serial: True,
}


def run_cuba_forward(kernel: Callable[..., bool], *args: object) -> None:
    """Run the training CUBA forward ``kernel`` (:func:`cuba_forward`, its serial or
    refractory variants) on its arguments ``args``. Where the kernel declines (a state or
    decay beyond its int32 lanes, :func:`_narrow_lanes`; it has then written nothing) the
    rows step in int64 lanes (:func:`_cuba_forward_wide`). That kernel is called from
    here, not from inside the others, so it compiles only when some state needs it: as
    their callee it had added 21 s to the first N-MNIST training step of a new process
    (every kernel-made state fits int32)."""
    if not kernel(*args):
        _cuba_forward_wide(*args, _REFRACTORY[kernel])


@njit(inline="always", fastmath=True, cache=True)
def _surrogate_arg(v, th, it, graded):
    """The exponent of :func:`_surrogate_dv` for the voltage ``v``."""
    return min(v - th, np.float32(0.0)) * it if graded else -abs(v - th) * it


@njit(inline="always", fastmath=True, cache=True)
def _surrogate_dv(n, vp, theta, inv_tau, graded, arg, sur, ibuf):
    """``sur[t] = exp(-|vp[n, t] - theta| / tau)`` (graded: of ``min(vp - theta, 0)``), the
    surrogate's shape without its amplitude, for one row (vectorized)."""
    steps = vp.shape[1]
    th = np.float32(theta)
    it = np.float32(inv_tau)
    for t in range(steps):
        arg[t] = _surrogate_arg(vp[n, t], th, it, graded)
    _vexp_neg(arg, sur, ibuf)


@njit(inline="always", fastmath=True, cache=True)
def _surrogate_dv_run(vpf, at, theta, inv_tau, graded, arg, sur, ibuf):
    """:func:`_surrogate_dv` of a run of whole rows at once: ``sur[k]`` from the flat
    voltage ``vpf[at + k]``, ``k`` below the flat buffers' length (a block's
    :data:`BLOCK` rows sharing ``theta`` and ``tau``). One loop over the block's
    ``16·T`` values: a row of T = 60 alone ran partly value by value, past the vector
    loop's unrolled width (0.83 ns a value against 0.58 at T = 64 and 0.32 at T = 128,
    one thread, Zen 4)."""
    th = np.float32(theta)
    it = np.float32(inv_tau)
    u0 = np.uint64(at)
    for k in range(np.uint64(arg.shape[0])):
        arg[k] = _surrogate_arg(vpf[u0 + k], th, it, graded)
    _vexp_neg(arg, sur, ibuf)


@njit(inline="always", fastmath=True, cache=True)
def _times_gradient(sur, g, amp):
    """``sur[t] *= amp · g[t]`` where ``g`` has a value (a row of the spike gradient from
    step ``lag`` on), 0 for the last steps, where it has none."""
    a = np.float32(amp)
    for t in range(g.shape[0]):
        sur[t] = sur[t] * a * g[t]
    for t in range(g.shape[0], sur.shape[0]):
        sur[t] = np.float32(0.0)


@njit(inline="always", fastmath=True, cache=True)
def _times_gradient_at(sur, k, g_s, b, o, lag, amp, nl):
    """:func:`_times_gradient` of ``sur[k]`` with neuron ``o`` of batch item ``b``'s spike
    gradient: ``g_s[b, o, t + lag]``, or ``g_s[b, t + lag, o]`` when ``nl`` (neuron-last),
    indexed directly with unsigned indices: a row slice in a parallel region costs an
    atomic reference count the threads share (the fast backward paired 0.91-0.97). The
    products are :func:`._lane_scan.mul32`'s, as :func:`_lanes_times_gradient`'s."""
    a = np.float32(amp)
    ub, uo, ul = np.uint64(b), np.uint64(o), np.uint64(lag)
    last = np.uint64(max(sur.shape[1] - lag, 0))
    if nl:
        for t in range(last):
            sur[k, t] = mul32(mul32(sur[k, t], a), g_s[ub, t + ul, uo])
    else:
        for t in range(last):
            sur[k, t] = mul32(mul32(sur[k, t], a), g_s[ub, uo, t + ul])
    for t in range(last, np.uint64(sur.shape[1])):
        sur[k, t] = np.float32(0.0)


@njit(inline="always", fastmath=True, cache=True)
def _lanes_times_gradient(lanes, steps, g_s, b, o0, lag, amp):
    """:func:`_times_gradient_at` of :data:`BLOCK` neurons ``o0 ..`` in the step-major
    ``lanes`` (``lanes[16 t + j]``) with a neuron-last ``g_s`` (``(B, T, N)``), whose
    values for one step are then contiguous: one vector product per step
    (:func:`._lane_scan.scale16`) instead of a stride of ``N`` values per neuron."""
    a = np.float32(amp)
    n_t, n_n = g_s.shape[1], g_s.shape[2]
    last = max(steps - lag, 0)
    for t in range(last):
        scale16(lanes, t * BLOCK, a, g_s, (b * n_t + t + lag) * n_n + o0)
    for t in range(last * BLOCK, steps * BLOCK):
        lanes[t] = np.float32(0.0)


@njit(inline="always", fastmath=True, cache=True)
def _surrogate_row(n, g_s, vp, theta, inv_tau, amp, graded, arg, sur, ibuf, lag):
    """``sur[t] = g_s[n, t + lag] * ds/dv(vp[n, t])`` for one row, 0 for the last ``lag``
    steps (vectorized). ``lag = 1``: ``g_s`` is the gradient of the spikes written one
    step later (the block's shift fused into the forward)."""
    _surrogate_dv(n, vp, theta, inv_tau, graded, arg, sur, ibuf)
    # a slice indexed by the loop counter alone (see _quiet_row)
    _times_gradient(sur, g_s[n, lag:], amp)


@njit(inline="always", cache=True)
def _cuba_backward_chunk(
    c,
    chunks,
    g_s,
    g_v,
    g_u,
    vp,
    u_rec,
    refr,
    theta,
    v_th,
    s_scale,
    inv_tau,
    amp,
    graded,
    i_decay,
    v_decay,
    u0,
    v0,
    do_v,
    do_u,
    g_x,
    g_di,
    g_dv,
):
    """Chunk ``c`` of ``chunks`` of :func:`cuba_backward`'s rows (:func:`chunk_span`)."""
    rows, steps = g_x.shape
    has_s = g_s.shape[1] > 0
    has_v = g_v.shape[1] > 0
    has_u = g_u.shape[1] > 0
    want_dv = g_dv.shape[0] > 0
    want_di = g_di.shape[0] > 0
    has_r = refr.shape[1] > 0
    ni, nv, nt = i_decay.shape[0], v_decay.shape[0], v_th.shape[0]
    nth, ntau = theta.shape[0], inv_tau.shape[0]
    arg = np.empty(steps, np.float32)
    sur = np.empty(steps, np.float32)
    ibuf = np.empty(steps, np.int32)
    lo, hi = chunk_span(c, chunks, rows)
    for n in range(lo, hi):
        if has_s and do_v:
            _surrogate_row(
                n, g_s, vp, theta[n % nth], inv_tau[n % ntau], amp, graded, arg, sur, ibuf, 0
            )
        av = np.float32(1.0 - v_decay[n % nv] / 4096.0)
        ai = np.float32(1.0 - i_decay[n % ni] / 4096.0)
        gv = np.float32(0.0)
        gu = np.float32(0.0)
        acc_v = 0.0
        acc_i = 0.0
        th_int = v_th[n % nt]
        for t in range(steps - 1, -1, -1):
            if do_v:
                gt = np.float32(0.0)
                if has_s:
                    gt = sur[t]
                if has_v:
                    gt = gt + g_v[n, t]
                gv = gt + av * gv
                if has_r and refr[n, t] != 0:
                    gv = np.float32(0.0)
            gut = gv
            if has_u:
                gut = gut + g_u[n, t]
            if do_u:
                gu = gut + ai * gu
                g_x[n, t] = gu
            else:
                g_x[n, t] = gut
            if want_dv:
                if t > 0:
                    vprev = vp[n, t - 1]
                    # |v| < 2**23 (24-bit state): an int32 compare vectorises on AVX2
                    if np.int32(np.rint(vprev * s_scale)) > th_int:
                        vprev = np.float32(0.0)
                    acc_v += gv * vprev
                else:
                    acc_v += gv * v0[n]
            if want_di:
                if t > 0:
                    acc_i += gu * u_rec[n, t - 1]
                else:
                    acc_i += gu * u0[n]
        if want_dv:
            g_dv[n] = -acc_v / 4096.0
        if want_di:
            g_di[n] = -acc_i / 4096.0


@njit(parallel=True, fastmath=False, cache=True)
def cuba_backward(
    g_s,
    g_v,
    g_u,
    vp,
    u_rec,
    refr,
    theta,
    v_th,
    s_scale,
    inv_tau,
    amp,
    graded,
    i_decay,
    v_decay,
    u0,
    v0,
    do_v,
    do_u,
    g_x,
    g_di,
    g_dv,
):
    """Surrogate gradient and reverse-time leaky-integrator scans.

    .. code-block:: text

        gv[t] = g_s[t] * ds/dv(vp[t]) + g_v[t] + av * gv[t+1]      (av = 1 - vDecay/4096)
        gu[t] = gv[t] + g_u[t] + ai * gu[t+1]                        (ai = 1 - iDecay/4096)
        g_x[t] = gu[t]

    Resets are ignored (lava-dl). Refractory steps (``refr[t] != 0``, given when
    ``refr`` has ``T`` columns) hold ``v = 0`` whatever the input: ``gv[t] = 0``
    there. With ``do_v = False`` the voltage scan is
    skipped (``gv = 0``); with ``do_u = False`` the current scan is skipped
    (``g_x[t] = gv[t] + g_u[t]``). When ``g_di``/``g_dv`` have length
    ``rows``, the analytic decay gradients are accumulated per row:

    .. code-block:: text

        g_dv = -1/4096 * sum_t gv[t] * v_post[t-1]    (v_post: post-reset voltage, v_post[-1] = v0)
        g_di = -1/4096 * sum_t gu[t] * u[t-1]         (u[-1] = u0)
    """
    chunks = max(1, min(g_x.shape[0], MAX_CHUNKS))
    for c in prange(chunks):
        _cuba_backward_chunk(
            c,
            chunks,
            g_s,
            g_v,
            g_u,
            vp,
            u_rec,
            refr,
            theta,
            v_th,
            s_scale,
            inv_tau,
            amp,
            graded,
            i_decay,
            v_decay,
            u0,
            v0,
            do_v,
            do_u,
            g_x,
            g_di,
            g_dv,
        )


@njit(fastmath=False, cache=True)
def cuba_backward_serial(
    g_s,
    g_v,
    g_u,
    vp,
    u_rec,
    refr,
    theta,
    v_th,
    s_scale,
    inv_tau,
    amp,
    graded,
    i_decay,
    v_decay,
    u0,
    v0,
    do_v,
    do_u,
    g_x,
    g_di,
    g_dv,
):
    """:func:`cuba_backward` on the calling thread."""
    _cuba_backward_chunk(
        0,
        1,
        g_s,
        g_v,
        g_u,
        vp,
        u_rec,
        refr,
        theta,
        v_th,
        s_scale,
        inv_tau,
        amp,
        graded,
        i_decay,
        v_decay,
        u0,
        v0,
        do_v,
        do_u,
        g_x,
        g_di,
        g_dv,
    )


@njit(inline="always", cache=True)
def _scan_quad(b, o0, m, sur, steps, i_decay, v_decay, g_x, nl):
    """The two reverse scans of :func:`cuba_backward_fast` for the ``m <= 4`` neurons
    ``o0 ..`` of batch item ``b`` whose surrogate rows are ``sur[:m]``, four of them
    interleaved (a neuron's scan is one dependency chain), each multiply-add rounded
    once as in :func:`._lane_scan.reverse_scans`."""
    ni, nv = i_decay.shape[0], v_decay.shape[0]
    n0 = b * (g_x.shape[2] if nl else g_x.shape[1]) + o0
    if m == 4:
        av0 = np.float32(1.0 - v_decay[n0 % nv] / 4096.0)
        av1 = np.float32(1.0 - v_decay[(n0 + 1) % nv] / 4096.0)
        av2 = np.float32(1.0 - v_decay[(n0 + 2) % nv] / 4096.0)
        av3 = np.float32(1.0 - v_decay[(n0 + 3) % nv] / 4096.0)
        ai0 = np.float32(1.0 - i_decay[n0 % ni] / 4096.0)
        ai1 = np.float32(1.0 - i_decay[(n0 + 1) % ni] / 4096.0)
        ai2 = np.float32(1.0 - i_decay[(n0 + 2) % ni] / 4096.0)
        ai3 = np.float32(1.0 - i_decay[(n0 + 3) % ni] / 4096.0)
        gv0 = gv1 = gv2 = gv3 = np.float32(0.0)
        gu0 = gu1 = gu2 = gu3 = np.float32(0.0)
        for t in range(steps - 1, -1, -1):
            gv0 = fma32(av0, gv0, sur[0, t])
            gv1 = fma32(av1, gv1, sur[1, t])
            gv2 = fma32(av2, gv2, sur[2, t])
            gv3 = fma32(av3, gv3, sur[3, t])
            gu0 = fma32(ai0, gu0, gv0)
            gu1 = fma32(ai1, gu1, gv1)
            gu2 = fma32(ai2, gu2, gv2)
            gu3 = fma32(ai3, gu3, gv3)
            if nl:
                g_x[b, t, o0] = gu0
                g_x[b, t, o0 + 1] = gu1
                g_x[b, t, o0 + 2] = gu2
                g_x[b, t, o0 + 3] = gu3
            else:
                g_x[b, o0, t] = gu0
                g_x[b, o0 + 1, t] = gu1
                g_x[b, o0 + 2, t] = gu2
                g_x[b, o0 + 3, t] = gu3
        return
    for k in range(m):
        av = np.float32(1.0 - v_decay[(n0 + k) % nv] / 4096.0)
        ai = np.float32(1.0 - i_decay[(n0 + k) % ni] / 4096.0)
        gv = np.float32(0.0)
        gu = np.float32(0.0)
        for t in range(steps - 1, -1, -1):
            gv = fma32(av, gv, sur[k, t])
            gu = fma32(ai, gu, gv)
            if nl:
                g_x[b, t, o0 + k] = gu
            else:
                g_x[b, o0 + k, t] = gu


@njit(inline="always", cache=True)
def _scan_lanes(b, o0, sur, lanes, coef, steps, i_decay, v_decay, g_x, nl, g_s, lag, amp):
    """The two reverse scans of :func:`cuba_backward_fast` for the :data:`BLOCK` neurons
    ``o0 ..`` of batch item ``b``, one per vector lane
    (:func:`._lane_scan.reverse_scans`): their surrogate rows ``sur`` (``(BLOCK, T)``)
    move into the step-major ``lanes`` (:func:`._lane_scan.rows_to_lanes`), and the input
    gradient leaves them as rows again (time-last ``g_x``, :func:`._lane_scan.lanes_to_rows`)
    or as one contiguous run per step (neuron-last).
    A neuron-last spike gradient multiplies the surrogate here, in the lanes
    (:func:`_lanes_times_gradient`); a time-last one did in the rows. ``coef`` receives the
    lanes' decay factors (32 values)."""
    ni, nv = i_decay.shape[0], v_decay.shape[0]
    n0 = b * (g_x.shape[2] if nl else g_x.shape[1]) + o0
    rows_to_lanes(sur, 0, steps, lanes)
    for j in range(BLOCK):
        coef[j] = np.float32(1.0 - v_decay[(n0 + j) % nv] / 4096.0)
        coef[BLOCK + j] = np.float32(1.0 - i_decay[(n0 + j) % ni] / 4096.0)
    if nl:
        _lanes_times_gradient(lanes, steps, g_s, b, o0, lag, amp)
    reverse_scans(lanes, steps, coef)
    if nl:
        n_t, n_n = g_x.shape[1], g_x.shape[2]
        for t in range(steps):
            copy16(lanes, t * BLOCK, g_x, (b * n_t + t) * n_n + o0)
    else:
        lanes_to_rows(lanes, steps, g_x[b], o0)


@njit(cache=True, fastmath=NO_REASSOC, error_model="numpy")
def _cuba_backward_fast_chunk(
    c, chunks, g_s, vp, theta, inv_tau, amp, graded, i_decay, v_decay, g_x, lag, nl
):
    """Chunk ``c`` of ``chunks`` of :func:`cuba_backward_fast`'s units of work
    (:func:`chunk_span`): per batch item, blocks of :data:`BLOCK` neurons stepped in
    vector lanes (:func:`_scan_lanes`), then the item's last ``N % BLOCK`` neurons in
    quads (:func:`_scan_quad`). ``g_s`` and ``g_x`` are ``(B, N, T)``, or neuron-last
    ``(B, T, N)`` when ``nl`` (a literal: one compile for each layout); ``vp`` is
    ``(B·N, T)``. Every neuron's surrogate row is formed alone (:func:`_surrogate_dv`,
    :func:`_times_gradient_at`) and both scan paths round alike, so the layouts give the
    same bits. The kernels pass ``c`` and ``chunks`` as int64 values (literal 0 and 1
    from the serial kernels would make a compile of their own).

    A function of its own that the kernels call, as :func:`_cuba_chunk` and for the same
    reason: inlined into each kernel, its 134 blocks of IR were copied as
    :func:`_cuba_chunk`'s were (1.6 s a kernel). Its arrays are used through views
    without an owner, so that the helpers it inlines count no references; NumPy's error
    model (every divisor is a count of rows, parameters or units, at least 1 wherever a
    division runs)."""
    literally(nl)
    g_s, vp, theta, inv_tau = unowned(g_s), unowned(vp), unowned(theta), unowned(inv_tau)
    i_decay, v_decay, g_x = unowned(i_decay), unowned(v_decay), unowned(g_x)
    steps = vp.shape[1]
    n_n = g_x.shape[2] if nl else g_x.shape[1]
    nth, ntau = theta.shape[0], inv_tau.shape[0]
    blocks = n_n // BLOCK
    tail = n_n - blocks * BLOCK
    per_item = blocks + (1 if tail else 0)
    # the buffers (owners, kept to the end) and the views the loops use
    arg_own = np.empty(steps, np.float32)
    ibuf_own = np.empty(steps, np.int32)
    sur_own = np.empty(BLOCK * steps, np.float32)
    # a whole block of rows sharing theta and tau: its surrogate rows in one run
    shared = nth == 1 and ntau == 1
    run_arg_own = np.empty(BLOCK * steps if shared else 0, np.float32)
    run_ibuf_own = np.empty(BLOCK * steps if shared else 0, np.int32)
    lanes_own = np.empty(steps * BLOCK, np.float32)
    coef_own = np.empty(2 * BLOCK, np.float32)
    arg, ibuf, sur_flat = unowned(arg_own), unowned(ibuf_own), unowned(sur_own)
    run_arg, run_ibuf = unowned(run_arg_own), unowned(run_ibuf_own)
    lanes, coef = unowned(lanes_own), unowned(coef_own)
    sur = sur_flat.reshape((BLOCK, steps))
    vpf = vp.reshape(vp.size)
    u_lo, u_hi = chunk_span(c, chunks, g_x.shape[0] * per_item)
    for u in range(u_lo, u_hi):
        b = u // per_item
        i = u - b * per_item
        o0 = i * BLOCK
        m = BLOCK if i < blocks else tail
        n0 = b * n_n + o0  # the unit's first row of vp
        in_lanes = nl and m == BLOCK  # the gradient is applied in the lanes (see _scan_lanes)
        run = shared and m == BLOCK  # the block's surrogate rows in one run
        if run:
            _surrogate_dv_run(
                vpf, n0 * steps, theta[0], inv_tau[0], graded, run_arg, sur_flat, run_ibuf
            )
        for k in range(m):
            n = n0 + k
            if not run:
                _surrogate_dv(n, vp, theta[n % nth], inv_tau[n % ntau], graded, arg, sur[k], ibuf)
            if not in_lanes:
                _times_gradient_at(sur, k, g_s, b, o0 + k, lag, amp, nl)
        if m == BLOCK:
            _scan_lanes(b, o0, sur, lanes, coef, steps, i_decay, v_decay, g_x, nl, g_s, lag, amp)
            continue
        for q in range(0, m, 4):
            _scan_quad(b, o0 + q, min(4, m - q), sur[q:], steps, i_decay, v_decay, g_x, nl)
    keep(arg_own)
    keep(ibuf_own)
    keep(sur_own)
    keep(run_arg_own)
    keep(run_ibuf_own)
    keep(lanes_own)
    keep(coef_own)


@njit(parallel=True, fastmath=NO_REASSOC, cache=True)
def cuba_backward_fast(g_s, vp, theta, inv_tau, amp, graded, i_decay, v_decay, g_x, lag):
    """:func:`cuba_backward` specialised to the common case (spike gradient only,
    both scans, no decay gradients): 16 neurons at a time in vector lanes
    (:func:`_scan_lanes`), the rest four at a time (:func:`_scan_quad`). ``lag = 1``
    reads the gradient of spikes shifted one step later (``g_s[:, t + 1]``, 0 at the end:
    see :func:`_surrogate_row`)."""
    rows, steps = g_x.shape
    g_s3, g_x3 = g_s.reshape((1, rows, steps)), g_x.reshape((1, rows, steps))
    chunks = max(1, min((rows + BLOCK - 1) // BLOCK, MAX_CHUNKS))
    for c in prange(chunks):
        c64 = np.int64(c)  # as the serial kernel passes: one compile of the chunk
        _cuba_backward_fast_chunk(
            c64, chunks, g_s3, vp, theta, inv_tau, amp, graded, i_decay, v_decay, g_x3, lag, False
        )


@njit(fastmath=NO_REASSOC, cache=True)
def cuba_backward_fast_serial(g_s, vp, theta, inv_tau, amp, graded, i_decay, v_decay, g_x, lag):
    """:func:`cuba_backward_fast` on the calling thread."""
    rows, steps = g_x.shape
    g_s3, g_x3 = g_s.reshape((1, rows, steps)), g_x.reshape((1, rows, steps))
    first, count = np.int64(0), np.int64(1)  # as the parallel kernel's: one compile
    _cuba_backward_fast_chunk(
        first, count, g_s3, vp, theta, inv_tau, amp, graded, i_decay, v_decay, g_x3, lag, False
    )


@njit(parallel=True, fastmath=NO_REASSOC, cache=True)
def cuba_backward_fast_nl(g_s, vp, theta, inv_tau, amp, graded, i_decay, v_decay, g_x, lag):
    """:func:`cuba_backward_fast` on neuron-last gradients: ``g_s`` and ``g_x`` are
    ``(B, T, N)`` (the rows of one step's ``N`` values, as a dense layer's input gradient
    and weight gradient read them), ``vp`` is ``(B·N, T)``: no transposing copy on
    either side."""
    n_b, _, n_n = g_x.shape
    chunks = max(1, min(n_b * ((n_n + BLOCK - 1) // BLOCK), MAX_CHUNKS))
    for c in prange(chunks):
        c64 = np.int64(c)  # as the serial kernel passes: one compile of the chunk
        _cuba_backward_fast_chunk(
            c64, chunks, g_s, vp, theta, inv_tau, amp, graded, i_decay, v_decay, g_x, lag, True
        )


@njit(fastmath=NO_REASSOC, cache=True)
def cuba_backward_fast_nl_serial(g_s, vp, theta, inv_tau, amp, graded, i_decay, v_decay, g_x, lag):
    """:func:`cuba_backward_fast_nl` on the calling thread."""
    first, count = np.int64(0), np.int64(1)  # as the parallel kernel's: one compile
    _cuba_backward_fast_chunk(
        first, count, g_s, vp, theta, inv_tau, amp, graded, i_decay, v_decay, g_x, lag, True
    )


# --------------------------------------------------------------------- sigma-delta


@njit(inline="always", cache=True)
def _tile_below(xt, x0, tl, scale, limit):
    """Whether every value of the tile's ``tl`` steps from row ``x0`` has
    ``|x * scale| < limit``."""
    n = 0
    for tt in range(tl):
        for j in range(SD_LANES):
            n += abs(xt[x0 + tt, j] * scale) < limit
    return n == tl * SD_LANES


#: rows of :func:`_sdnn_chunk`'s flat lane array ``sl`` (``k * SD_LANES + j``: lane ``j``):
#: sigma, activation, residue, error, threshold, bias
SL_SIG, SL_ACT, SL_RES, SL_ERR, SL_TH, SL_BIAS = (k * SD_LANES for k in range(6))
#: rows of the flat lane array
SL_ROWS = 6
#: values of one tile row of the flat integer tile ``at`` (inputs, payload, delta:
#: ``k * SD_TILE + tt * SD_LANES + j``)
SD_TILE = TILE * SD_LANES
#: values of one output row of the flat output segments (payload, mask, delta:
#: ``k * SD_OT_ROW + t * SD_LANES + j``)
SD_OT_ROW = OUT_SEGMENT * SD_LANES


@njit(inline="always", cache=True)
def _sdnn_steps(mode, relu, cum_error, tl, so, sl, at, ot):
    """The sigma-delta steps of one tile of :data:`SD_LANES` lanes: integer inputs in row
    0 of the flat tile ``at``, state and parameters in the flat lane array ``sl`` (rows
    ``SL_*``); integer payload and delta into rows 1 and 2 of ``at``, float payload,
    ReLU mask and delta into the flat ``ot`` (rows of :data:`SD_OT_ROW`) from step ``so``
    on. Returns the count of values wider than 32 bits (their floats are redone
    exactly). Flat arrays at constant row offsets, as the CUBA lanes
    (:func:`_lane_tile`): LLVM proves the rows disjoint instead of comparing every pair
    of rows' address ranges before each step's lane loop."""
    wide = 0
    for tt in range(tl):
        row = tt * SD_LANES
        orow = (so + tt) * SD_LANES
        for j in range(SD_LANES):
            a = at[row + j]
            d_prev = sl[SL_ACT + j] - sl[SL_RES + j]
            sg, ac, rs, er, p = _sdnn_step(
                mode,
                a,
                sl[SL_SIG + j],
                sl[SL_ACT + j],
                sl[SL_RES + j],
                sl[SL_ERR + j],
                sl[SL_TH + j],
                sl[SL_BIAS + j],
                12,
                6,
                relu,
                cum_error,
            )
            # payload and delta through one int32 conversion each (AVX2 has no
            # vector int64 -> double); kept, and the tile redone exactly below
            # where one of them is wider than 32 bits
            dd = ac - d_prev
            at[SD_TILE + row + j] = p
            at[2 * SD_TILE + row + j] = dd
            wide += (p != np.int64(np.int32(p))) | (dd != np.int64(np.int32(dd)))
            ot[orow + j] = state_float(p) * (1.0 / 4096.0)
            ot[SD_OT_ROW + orow + j] = 1.0 if (ac > 0 or relu == 0) else 0.0
            # d = act - act_prev + residue_prev; residue = d - s
            ot[2 * SD_OT_ROW + orow + j] = state_float(dd) * (1.0 / 262144.0)
            sl[SL_SIG + j] = sg
            sl[SL_ACT + j] = ac
            sl[SL_RES + j] = rs
            sl[SL_ERR + j] = er
    return wide


@njit(cache=True, error_model="numpy")
def _sdnn_chunk(
    c,
    chunks,
    mode,
    x,
    in_scale,
    v_th,
    bias,
    relu,
    cum_error,
    sigma_st,
    act_st,
    res_st,
    err_st,
    y_out,
    mask_out,
    d_out,
    bad,
):
    """Chunk ``c`` of ``chunks`` of :func:`sdnn_forward`'s blocks of :data:`SD_LANES` rows
    (:func:`chunk_span`).

    A function of its own that the kernels call, as :func:`_cuba_chunk` and for the same
    reasons: inlined into each kernel, numba copied its 234 blocks of IR at every
    inlining (6.7 s of a first sigma-delta training step's compile); its arrays are used
    through views without an owner; NumPy's error model (the divisors are parameter
    counts, at least 1)."""
    prefer_wide_vectors()
    x, v_th, bias, bad = unowned(x), unowned(v_th), unowned(bias), unowned(bad)
    sigma_st, act_st, res_st, err_st = (
        unowned(sigma_st),
        unowned(act_st),
        unowned(res_st),
        unowned(err_st),
    )
    y_out, mask_out, d_out = unowned(y_out), unowned(mask_out), unowned(d_out)
    rows, steps = x.shape
    rec_mask = mask_out.shape[1] > 0
    rec_d = d_out.shape[1] > 0
    nt, nb = v_th.shape[0], bias.shape[0]
    # the buffers (owners, kept to the end) and the views the loops use
    xt_own = np.zeros((TILE, SD_LANES), x.dtype)
    # payload, mask, delta (rows of SD_OT_ROW; every value is written before it is read,
    # and zeroing the whole buffer cost 1.03-1.09x at (4096, 60))
    ot_own = np.empty(3 * SD_OT_ROW, y_out.dtype)
    at_own = np.zeros(3 * SD_TILE, np.int64)  # integer inputs, payload, delta (rows of SD_TILE)
    sl_own = np.zeros(SL_ROWS * SD_LANES, np.int64)  # the lanes' state and parameters (SL_*)
    nbad_own = np.zeros(SD_LANES, np.int64)
    lane_rows_own = np.zeros(SD_LANES, np.int64)
    xt, ot, at, sl = unowned(xt_own), unowned(ot_own), unowned(at_own), unowned(sl_own)
    nbad, lane_rows = unowned(nbad_own), unowned(lane_rows_own)
    limit = INPUT_LIMIT * 1024.0
    b_lo, b_hi = chunk_span(c, chunks, (rows + SD_LANES - 1) // SD_LANES)
    for blk in range(b_lo, b_hi):
        n0 = blk * SD_LANES
        m = min(SD_LANES, rows - n0)
        for j in range(SD_LANES):
            n = n0 + min(j, m - 1)
            lane_rows[j] = n
            sl[SL_TH + j] = v_th[n % nt]
            sl[SL_BIAS + j] = bias[n % nb]
            live = j < m
            sl[SL_SIG + j] = sigma_st[n] if live else 0
            sl[SL_ACT + j] = act_st[n] if live else 0
            sl[SL_RES + j] = res_st[n] if live else 0
            sl[SL_ERR + j] = err_st[n] if live else 0
            nbad[j] = 0
        for t0 in range(0, steps, TILE):
            tl = min(TILE, steps - t0)
            so = t0 % OUT_SEGMENT
            first, count, back = _tile_span(t0, tl)  # a short last tile as a whole one
            _tile_in_lanes(x, lane_rows, m, first, count, xt, SD_LANES)
            # the integer inputs: one int32 conversion each where the whole tile is below
            # 2**31 (AVX2 has no vector double -> int64), else the exact 64-bit split
            if _tile_below(xt, back, tl, in_scale, INPUT_LIMIT):
                for tt in range(tl):
                    for j in range(SD_LANES):
                        a, refused = chip_int(xt[back + tt, j], in_scale, INPUT_LIMIT)
                        at[tt * SD_LANES + j] = a
                        nbad[j] += refused
            else:
                for tt in range(tl):
                    for j in range(SD_LANES):
                        a, refused = chip_int(xt[back + tt, j], in_scale, limit)
                        at[tt * SD_LANES + j] = a
                        nbad[j] += refused
            wide = _sdnn_steps(mode, relu, cum_error, tl, so, sl, at, ot)
            if wide:
                for tt in range(tl):
                    for j in range(SD_LANES):
                        k, o = tt * SD_LANES + j, (so + tt) * SD_LANES + j
                        ot[o] = int_float(at[SD_TILE + k]) * (1.0 / 4096.0)
                        ot[2 * SD_OT_ROW + o] = int_float(at[2 * SD_TILE + k]) * (1.0 / 262144.0)
            if so + tl == OUT_SEGMENT or t0 + tl == steps:  # a segment is complete
                g0, gl = t0 - so, so + tl
                _segment_out_flat(y_out, ot, 0, lane_rows, m, g0, gl, 0, SD_LANES)
                if rec_mask:
                    _segment_out_flat(mask_out, ot, SD_OT_ROW, lane_rows, m, g0, gl, 0, SD_LANES)
                if rec_d:
                    _segment_out_flat(d_out, ot, 2 * SD_OT_ROW, lane_rows, m, g0, gl, 0, SD_LANES)
        for j in range(m):
            sigma_st[n0 + j] = sl[SL_SIG + j]
            act_st[n0 + j] = sl[SL_ACT + j]
            res_st[n0 + j] = sl[SL_RES + j]
            err_st[n0 + j] = sl[SL_ERR + j]
            if nbad[j] != 0:
                bad[n0 + j] = 1
    keep(xt_own)
    keep(ot_own)
    keep(at_own)
    keep(sl_own)
    keep(nbad_own)
    keep(lane_rows_own)


@njit(parallel=True, cache=True)
def sdnn_forward(
    mode,
    x,
    in_scale,
    v_th,
    bias,
    relu,
    cum_error,
    sigma_st,
    act_st,
    res_st,
    err_st,
    y_out,
    mask_out,
    d_out,
    bad,
):
    """Fused sigma-delta forward (``mode`` 0 = delta encoder, 1 = sigma-delta).

    ``x`` is converted to the integer input ``rint(x * in_scale)``: the 6-bit
    input mantissa for the delta encoder (shifted by ``E + S = 12`` inside the
    step) and the 18-fraction-bit sigma increment for sigma-delta. Outputs:
    ``y_out`` payload / 4096, ``mask_out`` the ReLU derivative (1 where
    ``sigma + bias > 0``), ``d_out`` the delta ``d / 2**18`` (for the threshold
    gradient). Parallel over blocks of :data:`SD_LANES` neurons;
    :func:`sdnn_forward_serial` is the same on the calling thread.
    """
    chunks = n_chunks(x.shape[0], SD_LANES)
    for c in prange(chunks):  # np.int64, as the serial kernel passes: one compile
        _sdnn_chunk(
            np.int64(c),
            chunks,
            mode,
            x,
            in_scale,
            v_th,
            bias,
            relu,
            cum_error,
            sigma_st,
            act_st,
            res_st,
            err_st,
            y_out,
            mask_out,
            d_out,
            bad,
        )


@njit(cache=True)
def sdnn_forward_serial(
    mode,
    x,
    in_scale,
    v_th,
    bias,
    relu,
    cum_error,
    sigma_st,
    act_st,
    res_st,
    err_st,
    y_out,
    mask_out,
    d_out,
    bad,
):
    """:func:`sdnn_forward` on the calling thread."""
    # int64 chunk numbers, as the parallel kernel passes: one compile of the chunk for
    # both kernels (literal 0 and 1 made a second)
    _sdnn_chunk(
        np.int64(0),
        np.int64(1),
        mode,
        x,
        in_scale,
        v_th,
        bias,
        relu,
        cum_error,
        sigma_st,
        act_st,
        res_st,
        err_st,
        y_out,
        mask_out,
        d_out,
        bad,
    )


@njit(inline="always", cache=True)
def _sdnn_backward_row(n, g, mask, d, theta, tau_grad, scale_grad, mode, g_x, g_b, g_th):
    """Row ``n`` of :func:`sdnn_backward`."""
    steps = g.shape[1]
    has_mask = mask.shape[1] > 0
    want_b = g_b.shape[0] > 0
    want_th = g_th.shape[0] > 0
    gnext = np.float32(0.0)
    acc = np.float32(0.0)
    gb = 0.0
    for t in range(steps - 1, -1, -1):
        gt = g[n, t]
        ga = gt - gnext
        gnext = gt
        if mode == 0:
            g_x[n, t] = ga
            continue
        if has_mask and mask[n, t] == 0:
            ga = np.float32(0.0)
        acc = acc + ga
        gb += ga
        g_x[n, t] = acc
    if want_b:
        g_b[n] = gb
    if want_th:
        _sdnn_threshold_row(n, g, d, theta, tau_grad, scale_grad, g_th)


@njit(inline="always", cache=True)
def _sdnn_threshold_row(n, g, d, theta, tau_grad, scale_grad, g_th):
    """Row ``n``'s threshold gradient of :func:`sdnn_backward`."""
    th = theta[n % theta.shape[0]]
    gth = 0.0
    for t in range(g.shape[1]):
        dv = np.float64(d[n, t])
        sub = abs(dv) - th
        if sub > 0:
            gth += -dv * scale_grad * np.exp(-sub / tau_grad) / th * g[n, t]
        elif dv > 0:
            gth -= g[n, t]
        elif dv < 0:
            gth += g[n, t]
    g_th[n] = gth


@njit(inline="always", cache=True)
def _sdnn_lanes_block(n0, g, mask, g_x, g_b, lanes, lanes_m, gb):
    """Rows ``n0 .. n0 + 15`` of :func:`sdnn_backward` in sigma mode without the
    threshold gradient, one per vector lane (:func:`._lane_scan.sigma_scans`): the
    gradient and the mask move into the step-major ``lanes``, ``lanes_m``
    (:func:`._lane_scan.rows_to_lanes`; the mask converted to float32), the input
    gradient leaves as rows (:func:`._lane_scan.lanes_to_rows`)."""
    steps = g.shape[1]
    rows_to_lanes(g, n0, steps, lanes)
    if mask.shape[1] > 0:
        rows_to_lanes(mask, n0, steps, lanes_m)
    else:
        for k in range(steps * BLOCK):
            lanes_m[k] = np.float32(1.0)
    sigma_scans(lanes, lanes_m, steps, gb)
    lanes_to_rows(lanes, steps, g_x, n0)
    if g_b.shape[0] > 0:
        for j in range(BLOCK):
            g_b[n0 + j] = gb[j]


@njit(inline="always", cache=True)
def _sdnn_backward_chunk(
    c, chunks, blocks, g, mask, d, theta, tau_grad, scale_grad, g_x, g_b, g_th
):
    """Chunk ``c`` of ``chunks`` of :func:`sdnn_backward`'s ``blocks`` blocks of 16 rows
    (sigma mode, float32 gradients): :func:`_sdnn_lanes_block`, then the threshold
    gradient row by row where it is wanted."""
    steps = g.shape[1]
    lanes = np.empty(steps * BLOCK, np.float32)
    lanes_m = np.empty(steps * BLOCK, np.float32)
    gb = np.empty(BLOCK, np.float64)
    lo, hi = chunk_span(c, chunks, blocks)
    for blk in range(lo, hi):
        n0 = blk * BLOCK
        _sdnn_lanes_block(n0, g, mask, g_x, g_b, lanes, lanes_m, gb)
        if g_th.shape[0] > 0:
            for n in range(n0, n0 + BLOCK):
                _sdnn_threshold_row(n, g, d, theta, tau_grad, scale_grad, g_th)


@njit(parallel=True, fastmath=True, cache=True)
def sdnn_backward(g, mask, d, theta, tau_grad, scale_grad, mode, g_x, g_b, g_th):
    """Straight-through sigma-delta backward.

    .. code-block:: text

        ga[t] = g[t] - g[t+1]                       (delta, straight through)
        gz[t] = ga[t] * mask[t]                     (ReLU derivative)
        g_x[t] = sum_{k >= t} gz[k]                 (sigma = cumsum; delta mode: g_x = ga)
        g_b   += sum_t gz[t]
        g_th  += sum_t g[t] * (|d| > th ? -d*scale_grad*exp(-(|d|-th)/tau_grad)/th : -sign(d))

    In sigma mode with float32 gradients, whole blocks of 16 rows run in vector lanes
    (:func:`_sdnn_backward_chunk`; one row's prefix sum is one dependency chain), the
    same operations in the same order as the row loop; the remaining rows run one at a
    time (:func:`_sdnn_backward_row`).
    """
    rows = g.shape[0]
    lanes_ok = mode != 0 and g.itemsize == 4 and g_x.itemsize == 4
    blocks = rows // BLOCK if lanes_ok else 0
    chunks = max(1, min(blocks, MAX_CHUNKS))
    # one parallel loop over the chunks of blocks, then the rows left: a loop of its own
    # for the rows was a second parallel region at every call (see fixed._serial)
    n_chunks = chunks if blocks else 0
    for job in prange(n_chunks + rows - blocks * BLOCK):
        if job < n_chunks:
            _sdnn_backward_chunk(
                job, chunks, blocks, g, mask, d, theta, tau_grad, scale_grad, g_x, g_b, g_th
            )
        else:
            n = blocks * BLOCK + job - n_chunks
            _sdnn_backward_row(n, g, mask, d, theta, tau_grad, scale_grad, mode, g_x, g_b, g_th)


@njit(fastmath=True, cache=True)
def sdnn_backward_serial(g, mask, d, theta, tau_grad, scale_grad, mode, g_x, g_b, g_th):
    """:func:`sdnn_backward` on the calling thread."""
    rows = g.shape[0]
    lanes_ok = mode != 0 and g.itemsize == 4 and g_x.itemsize == 4
    blocks = rows // BLOCK if lanes_ok else 0
    if blocks:
        _sdnn_backward_chunk(0, 1, blocks, g, mask, d, theta, tau_grad, scale_grad, g_x, g_b, g_th)
    for n in range(blocks * BLOCK, rows):
        _sdnn_backward_row(n, g, mask, d, theta, tau_grad, scale_grad, mode, g_x, g_b, g_th)
