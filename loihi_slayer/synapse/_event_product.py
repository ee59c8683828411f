r"""The dense synapse product on sparse integer input (spikes), event by event.

With weights on a power-of-two grid, :math:`w = u\,m` (see
:mod:`~loihi_slayer.synapse._int_product`), and integer inputs ``q``,

.. math::

    z[b, o, t] = u \sum_{i:\ q[b, i, t] \ne 0} q[b, i, t]\, m[o, i],
    \qquad
    \frac{\partial L}{\partial w[o, i]}
        = \sum_{(b, t):\ q[b, i, t] \ne 0} q[b, i, t]\, g[b, o, t]

need only the non-zero inputs (the events). On spike input (the N-MNIST pool layer's
output is 11 % ones) the sums take a fraction of the GEMM's multiply-adds: one
integer row of :math:`m^\top` added per event into the output rows of its step, and one
gradient row added per event into the weight gradient's row of its input.

The forward is exact: integer sums in int16 where the events of each step bound them
there, else int32 (at most ``I · 128 · 128 < 2^{31}`` for the sizes the caller
admits), times :math:`u` (a power of two) into float32 below the
:math:`2^{24}` bound the caller checks, so the output is the float GEMM's bit for bit.
The weight gradient sums float32 rows in a fixed order (per input: batch, then time),
not the GEMM's: its values equal the float product's up to that order.

Layout: the input's int8 values ``q`` ``(I, B, T)`` (the int8 operand of
:mod:`~loihi_slayer.synapse._int_product`, one vectorised pass with its checks) and the
steps of each row's events, listed once (:func:`event_lists`) for both directions.
The forward runs jobs of one batch item and a block of steps, whose ``(steps, O)``
integer sums stay in the L1/L2 cache; the weight gradient runs one job per input, owning
its gradient row.
"""

from __future__ import annotations

import numpy as np
import torch
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic, overload

from .._recycle import Recycled, kept_empty
from .._threads import follow_torch_threads, numba_threads
from ..autograd._dispatch import use_parallel
from ..autograd._f32x16 import vaxpy, vload, vstore, vzero
from ..autograd._first_order import first_order
from ..fixed._serial import serial_sum
from ..fixed._stack import stack_empty_f32
from ..fixed._transpose import BLOCK, block_out

#: largest fraction of non-zero inputs for which the event product replaces the GEMM
#: (``benchmarks/bench_event_product.py``, forward + weight gradient against the sgemm
#: path, random input; spikes of real data cluster and do better). With the event lists
#: and int16 sums, on the 2-core Zen 3 VM: 0.32-0.55 at density 0.10, 0.64-0.89 at 0.20,
#: 0.82-1.29 at 0.30 (N-MNIST dense, Recurrent input 512 -> 512, Oxford 200 -> 256);
#: the break-even lies at 0.23-0.25 for Oxford's shape (batch 1) and at 0.30 or beyond
#: for the others, so 0.22 is below every shape's. (It was 0.12 before the lists, when
#: the break-even was 0.15-0.20; at 0.22 a Recurrent block on 20 % input spikes takes
#: the events: whole training step paired 0.81-0.85, CUBA and RF.)
MAX_DENSITY = 0.22
#: bytes of the gradient rows one block of the event weight gradient reads (L2-sized:
#: 64 rows of 512 took 0.85-0.95 of 128-1024 rows' time, Zen 5, ``weight_grad_events``)
GRAD_BLOCK_BYTES = 1 << 17
#: bytes of the gradient rows one job of the event weight gradient sums at a time before
#: writing them into the output's columns (its transient memory; N-MNIST's 289 inputs
#: a job take 148 KB)
JOB_ROWS_BYTES = 1 << 20
#: gradient columns one pass of the event weight gradient sums in registers (eight
#: AVX-512 vectors); passes of 64 and 16 take the rest (:func:`_add_gradient_rows`)
ACC_WIDTH = 128
#: bytes of one forward job's int32 sums (a block of steps times the outputs): L2-sized
SUMS_BYTES = 1 << 16
#: after a dense input, an owner's next products skip the event pass this many times
DENSE_RETRY = 16
#: fewest steps for which the input gradient runs one GEMM per batch item
#: (:func:`input_grad`). Against one folded GEMM and its transposed copy, per-item GEMMs
#: took 2.8-6.8x the time at T = 8 (batch 4 and 32; weights 512 x 512, 578 x 128,
#: 128 x 578, 256 x 256; 2-core Zen 4) and 0.63-1.42x at T = 16-100 for the three
#: weights that fit L2; the 1 MB one favoured the fold up to T = 32 (1.4-2.3x), as
#: each item's GEMM reads it again
FOLD_STEPS = 16


@njit(parallel=True, cache=True)
def event_lists(q, counts, pos):
    """``pos[b, i, :counts[b, i]]`` = the steps ``t`` where ``q[i, b, t] != 0``, ascending
    (rows without events are not written): each event's step listed once, for the
    forward and the weight gradient, which then read no zero value. ``pos`` is
    ``(B, I, T)``: a forward job (one batch item) reads its inputs' lists from one
    contiguous block. One job per input, branch-free (every step is written at the
    next free place, which advances only past a non-zero value). On the N-MNIST
    dense-1 operand (32 x 578 rows of 60, 11 % events) 0.24-0.30 ms (Zen 3)."""
    n_i, n_b, steps = q.shape
    for i in prange(n_i):
        ui = np.uint64(i)
        for b in range(np.uint64(n_b)):
            if counts[b, i] == 0:
                continue
            n = np.uint64(0)
            for t in range(np.uint64(steps)):
                pos[b, ui, n] = t
                n += np.uint64(q[ui, b, t] != 0)


def position_dtype(steps: int) -> np.dtype:
    """The narrowest unsigned type that holds every step index of ``steps``."""
    for dt in (np.uint8, np.uint16, np.uint32):
        if steps <= np.iinfo(dt).max + 1:
            return np.dtype(dt)
    return np.dtype(np.uint64)


@njit(inline="always", cache=True)
def _first_at(pos, i, b, n, t):
    """The first of the ``n`` ascending steps ``pos[b, i, :n]`` that is ``>= t`` (``n`` if
    none): a binary search."""
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi) // 2
        if pos[b, i, mid] < t:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(inline="always", cache=True)
def _listed_span(pos, i, b, n, t0, t1, steps):
    """``(k0, k1)``: the events ``pos[b, i, k0:k1]`` of the ``n`` listed that lie in
    ``t0 <= t < t1``. No search at an end of the time axis: a job that spans it whole
    reads its rows without one (a binary search per row, twice, took a tenth of the
    N-MNIST forward)."""
    k0 = 0 if t0 == 0 else _first_at(pos, i, b, n, t0)
    k1 = n if t1 >= steps else _first_at(pos, i, b, n, t1)
    return k0, k1


#: largest magnitude an int16 sum holds
INT16_MAX = 32767


@njit(inline="always", cache=True)
def _add_events(q, pos, mt, b, t0, lo, hi, acc, kind):
    """``acc[t - t0] += q[i, b, t] · mt[i]`` for the events ``pos[b, i, lo[i]:hi[i]]`` of
    every input ``i``, in ``acc``'s integer type ``kind`` (the caller bounds every sum)."""
    n_i, n_o = mt.shape
    ub = np.uint64(b)
    u0 = np.uint64(t0)
    for i in range(np.uint64(n_i)):
        for k in range(np.uint64(lo[i]), np.uint64(hi[i])):
            t = np.uint64(pos[ub, i, k])
            v = kind(q[i, ub, t])
            r = t - u0
            for o in range(np.uint64(n_o)):
                acc[r, o] += v * kind(mt[i, o])


@njit(inline="always", cache=True)
def _block_of_events(q, counts, pos, mt, most, b, t0, t1, lo, hi, unit, z, time_major):
    """The steps ``t0 <= t < t1`` of batch item ``b`` (:func:`forward_events`), each
    input's events ``pos[b, i, lo[i]:hi[i]]``: int16 sums where every step's events
    keep them there, else int32."""
    per = np.zeros(t1 - t0, np.int64)  # events per step, for the int16 bound
    ub = np.uint64(b)
    for i in range(q.shape[0]):
        for k in range(lo[i], hi[i]):
            per[np.int64(pos[ub, i, k]) - t0] += 1
    if per.max() <= most:
        acc16 = np.zeros((t1 - t0, mt.shape[1]), np.int16)
        _add_events(q, pos, mt, b, t0, lo, hi, acc16, np.int16)
        _events_out(acc16, unit, b, t0, z, time_major)
    else:
        acc32 = np.zeros((t1 - t0, mt.shape[1]), np.int32)
        _add_events(q, pos, mt, b, t0, lo, hi, acc32, np.int32)
        _events_out(acc32, unit, b, t0, z, time_major)


@njit(parallel=True, cache=True)
def forward_events(q, counts, pos, mt, top, unit, block, z, time_major, by_item):
    r"""``z = u · Σ_events q · m^T[i]`` (see the module): ``q`` the ``(I, B, T)`` int8
    input, ``counts`` ``(B, I)`` its rows' numbers of events, ``pos`` their steps
    (:func:`event_lists`), ``mt`` the ``(I, O)`` int8 transposed mantissas, ``top`` the
    largest ``|q| · |m|``, ``z`` float32 time-last ``(B, O, T)``, or time-major
    ``(T, B, O)`` when ``time_major``. The steps go by blocks of ``block``, whose sums
    ``(block, O)`` stay in the cache, each event adding its input's row. With
    ``by_item`` one job per batch item takes its blocks in turn, each input's events
    found by a cursor that moves along its list; else one job per batch item and block,
    each finding its inputs' events by a binary search (more jobs than batch items).
    A search per row and block had made the forward 1.07-1.39x slower than scanning
    rows at 2 % density (512 outputs, T=200); by item with cursors: 0.84 (0.76 at
    10 %, Zen 3, paired against the scanning kernel).

    The sums are int16 where no step of a block has so many events that a sum could
    leave int16 (events · ``top`` <= 32767: every partial sum is bounded by that,
    whatever the order), else int32: an int16 vector holds twice the outputs, and the
    int8 rows widen in one instruction. On the N-MNIST dense-1 input (578 -> 128, 11 %
    spikes, at most ~100 events per step): 0.93 ms against 1.28 ms for int32 sums over
    scanned rows (Zen 3, 2 threads, same run); lists, forward and weight gradient
    together paired 0.87-0.92 against both scanning."""
    n_i, n_b, steps = q.shape
    n_blocks = (steps + block - 1) // block
    most = INT16_MAX // max(1, top)  # events per step an int16 sum takes
    jobs = n_b if by_item else n_b * n_blocks
    for job in prange(jobs):
        lo = np.zeros(n_i, np.int64)
        hi = np.zeros(n_i, np.int64)
        if by_item:
            b = job
            for t0 in range(0, steps, block):
                t1 = min(t0 + block, steps)
                if t1 == steps:  # the last block takes every event left: no cursor walk
                    for i in range(n_i):
                        lo[i] = hi[i]
                        hi[i] = counts[b, i]
                else:
                    for i in range(n_i):  # the cursor: each list's events before t1
                        lo[i] = k = hi[i]
                        while k < counts[b, i] and pos[b, i, k] < t1:
                            k += 1
                        hi[i] = k
                _block_of_events(q, counts, pos, mt, most, b, t0, t1, lo, hi, unit, z, time_major)
        else:
            b, t0 = job // n_blocks, (job % n_blocks) * block
            t1 = min(t0 + block, steps)
            for i in range(n_i):
                n = counts[b, i]
                if n > 0:
                    lo[i], hi[i] = _listed_span(pos, i, b, n, t0, t1, steps)
            _block_of_events(q, counts, pos, mt, most, b, t0, t1, lo, hi, unit, z, time_major)


@njit(inline="always", cache=True)
def _events_out(acc, unit, b, t0, z, time_major):
    """One job's integer sums ``acc`` ``(steps, O)`` times ``unit`` into ``z``."""
    span, n_o = acc.shape
    if time_major:
        for r in range(span):
            for o in range(n_o):
                z[t0 + r, b, o] = np.float32(acc[r, o]) * unit
    else:
        for o in range(n_o):
            for r in range(span):
                z[b, o, t0 + r] = np.float32(acc[r, o]) * unit


@intrinsic
def trailing_zeros(typingctx, x):
    """The index of the lowest set bit of the uint64 ``x`` (``llvm.cttz``, one ``tzcnt``);
    undefined for 0 (callers test first)."""
    if x != types.uint64:
        return None

    def codegen(context, builder, sig, args):
        return builder.cttz(args[0], ir.Constant(ir.IntType(1), 1))

    return types.uint64(x), codegen


#: values of a row :func:`_block_events` tests at a time (one bit each in a uint64 mask)
MASK_BITS = 64


@njit(inline="always", cache=True)
def _event_mask_loop(q, i, a, c0, width):
    """:func:`_event_mask` as one vectorised pass: compares, variable shifts, an
    or-reduction."""
    m = np.uint64(0)
    for k in range(np.uint64(width)):
        m |= np.uint64(q[i, a, c0 + k] != 0) << k
    return m


@intrinsic
def _nonzero_bits64(typingctx, q, end):
    """Bit ``k`` set where ``q.flat[end - 64 + k] != 0`` (a C-contiguous int8 array): one
    64-byte load, one compare into a mask register."""
    ok = isinstance(q, types.Array) and q.dtype == types.int8 and q.layout == "C"
    if not (ok and isinstance(end, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        i64 = ir.IntType(64)
        vec = ir.VectorType(ir.IntType(8), MASK_BITS)
        data = context.make_array(sig.args[0])(context, builder, args[0]).data
        end = args[1]
        if sig.args[1].bitwidth < 64:
            end = (builder.sext if sig.args[1].signed else builder.zext)(end, i64)
        first = builder.sub(end, ir.Constant(i64, MASK_BITS))
        ptr = builder.bitcast(builder.gep(data, [first]), vec.as_pointer())
        ne = builder.icmp_unsigned("!=", builder.load(ptr, align=1), ir.Constant(vec, None))
        return builder.bitcast(ne, i64)

    return types.uint64(q, end), codegen


def _event_mask(q, i, a, c0, width):
    """Bit ``k`` set where ``q[i, a, c0 + k] != 0``, for ``k < width <= 64``."""
    return sum(1 << k for k in range(width) if q[i, a, c0 + k] != 0)


@overload(_event_mask, inline="always")
def _event_mask_impl(q, i, a, c0, width):
    fast = isinstance(q, types.Array) and q.dtype == types.int8 and q.layout == "C" and q.ndim == 3
    if not fast:
        return lambda q, i, a, c0, width: _event_mask_loop(q, i, a, c0, width)

    def bits(q, i, a, c0, width):
        # the 64 bytes ending at the run's last value, shifted down to the run: a row of
        # T = 60 as a loop ran partly value by value (the N-MNIST dense-1 weight gradient:
        # 3.4 ns an event against 2.4 at T = 64); the array's first 64 bytes by the loop
        n_a, n_c = np.uint64(q.shape[1]), np.uint64(q.shape[2])
        end = (np.uint64(i) * n_a + np.uint64(a)) * n_c + np.uint64(c0) + np.uint64(width)
        if end < np.uint64(MASK_BITS):
            return _event_mask_loop(q, i, a, c0, width)
        return _nonzero_bits64(q, end) >> (np.uint64(MASK_BITS) - np.uint64(width))

    return bits


@njit(inline="always", cache=True)
def _block_events(q, i, a0, a1, c0, c1, cross, counts, rows, vals):
    """The events of input ``i`` in the block ``a0 <= a < a1``, ``c0 <= c < c1`` of its
    ``(A, C)`` values: their gradient rows (``a·C + c``, or ``c·A + a`` when ``cross``)
    into ``rows`` and their values into ``vals``, in ``(a, c)`` order; returns their
    count. Each run of :data:`MASK_BITS` values becomes a bit mask of its non-zero ones,
    whose set bits are then visited lowest first: the work follows the events, not the
    values (a branch-free pass writing at every value took 1.6x the time on the N-MNIST
    dense-1 gradient, 11 % events). Rows that ``counts`` (where not empty) says have no
    events are skipped. Indexed directly with unsigned indices: a slice in a parallel
    region costs an atomic reference count that the threads share, and a signed index
    keeps numba's negative-index wrap-around."""
    n_a, n_c = q.shape[1], q.shape[2]
    skip = counts.shape[0] > 0
    n = np.uint64(0)
    for a in range(np.uint64(a0), np.uint64(a1)):
        if skip and counts[a, i] == 0:
            continue
        for s in range(np.uint64(c0), np.uint64(c1), np.uint64(MASK_BITS)):
            m = _event_mask(q, i, a, s, min(np.uint64(MASK_BITS), np.uint64(c1) - s))
            while m != 0:
                c = s + trailing_zeros(m)
                m &= m - np.uint64(1)
                rows[n] = c * np.uint64(n_a) + a if cross else a * np.uint64(n_c) + c
                vals[n] = np.float32(q[i, a, c])
                n += np.uint64(1)
    return np.int64(n)


@njit(inline="always", cache=True)
def _block_list_events(q, i, a0, a1, c0, c1, cross, counts, pos, rows, vals):
    """:func:`_block_events` from the event lists ``pos`` (:func:`event_lists`): only the
    events are read, in the same ``(a, c)`` order."""
    n_a, n_c = q.shape[1], q.shape[2]
    n = np.uint64(0)
    for a in range(np.uint64(a0), np.uint64(a1)):
        n_ev = counts[a, i]
        if n_ev == 0:
            continue
        k0, k1 = _listed_span(pos, i, a, n_ev, c0, c1, n_c)
        for k in range(np.uint64(k0), np.uint64(k1)):
            c = np.uint64(pos[a, i, k])
            rows[n] = c * np.uint64(n_a) + a if cross else a * np.uint64(n_c) + c
            vals[n] = np.float32(q[i, a, c])
            n += np.uint64(1)
    return np.int64(n)


@njit(parallel=True, cache=True)
def weight_grad_events(q, g, cross, block, chunk, counts, pos, gw, part):
    r"""``gw[:, i] = Σ_events q · g[row]`` (the weight gradient, ``(O, I)`` float32):
    ``q`` the int8 input as ``(I, A, C)`` (``A, C`` = batch, time or time,
    batch: the operand's column order), ``g`` ``(A·C, O)`` C-contiguous, the ``O``
    gradients of each column ``(a, c)`` in row ``a·C + c``, or ``c·A + a`` when ``cross``
    (a time-major gradient beside a ``(b, t)`` operand). ``counts`` ``(A, I)``: the
    number of events of each row ``q[i, a]``, whose rows without any are not read (half
    the N-MNIST pool layer's output rows), or an empty ``(0, 0)`` array (read them all).
    ``pos`` ``(A, I, C)``: the events' positions ``c`` (:func:`event_lists`, with
    ``counts``), or an empty ``(0, 0, 0)`` array (each row's values are scanned): from
    the lists the N-MNIST dense-1 weight gradient took 0.92 ms against 1.15 ms scanned
    (Zen 3, same run).

    Blocked for the cache: the columns go by blocks of about ``block`` (whole rows of
    ``a`` where ``C`` is shorter), whose gradient rows stay in the core's L1/L2 while
    every input of a job adds its events from them: per block and input, the events'
    rows are summed in order into accumulators on the stack
    (:func:`_add_gradient_rows`, kept in vector registers), then added to the input's
    gradient row once (four events per pass summed into the row in memory took 1.25-1.35x
    the time on the N-MNIST dense-1 gradient). One job per ``chunk`` inputs, each owning
    its gradient rows: every sum's order (blocks, then ``(a, c)`` within one) is fixed by
    the block size alone, whatever the thread count. A job sums its inputs' rows
    ``(I, O)`` in memory of its own, ``part`` inputs at a time (a pass over the gradient
    rows for each part; :data:`JOB_ROWS_BYTES` of rows), and writes them into ``gw``'s
    columns: returned transposed, the N-MNIST dense-1 gradient took a 32 us copy into
    the contiguous ``(O, I)`` layout that the weight norm's backward reads (it misreads a
    strided one). On the 512 -> 512 feed-forward weight gradient at batch 32, T = 200,
    density 0.2 (Zen 5): 0.49 of the float32 GEMM's time against 0.60 unblocked (one job
    per input sweeping all rows)."""
    n_i, n_a, n_c = q.shape
    n_o = gw.shape[0]
    listed = pos.shape[0] > 0
    span_c = min(n_c, block)
    span_a = max(1, block // n_c)
    for job in prange((n_i + chunk - 1) // chunk):
        i0 = job * chunk
        i1 = min(i0 + chunk, n_i)
        rows = np.empty(span_a * span_c, np.uint64)
        vals = np.empty(span_a * span_c, np.float32)
        acc = stack_empty_f32(ACC_WIDTH)
        # the rows of up to `part` of the job's inputs at a time (row i - s0)
        gwt = np.empty((max(min(part, i1 - i0), 0), n_o), np.float32)
        for s0 in range(i0, i1, part):
            s1 = min(s0 + part, i1)
            gwt[:] = 0.0
            for a0 in range(0, n_a, span_a):
                a1 = min(a0 + span_a, n_a)
                for c0 in range(0, n_c, span_c):
                    c1 = min(c0 + span_c, n_c)
                    for i in range(s0, s1):
                        if listed:
                            n = _block_list_events(
                                q, i, a0, a1, c0, c1, cross, counts, pos, rows, vals
                            )
                        else:
                            n = _block_events(q, i, a0, a1, c0, c1, cross, counts, rows, vals)
                        if n > 0:
                            _add_gradient_rows(g, rows, vals, n, gwt, i - s0, acc)
            _columns_out(gwt, s1 - s0, gw, s0)


@njit(inline="always", cache=True)
def _columns_out(gwt, n_k, gw, i0):
    """``gw[o, i0 + k] = gwt[k, o]`` for ``k < n_k``: a job's gradient rows into the
    columns of the weight gradient, 16 x 16 blocks transposed in registers (value by value
    the N-MNIST dense-1 gradient took 30 us more), the edges value by value."""
    n_o = gwt.shape[1]
    full_k, full_o = n_k // BLOCK * BLOCK, n_o // BLOCK * BLOCK
    for o0 in range(0, full_o, BLOCK):
        for k0 in range(0, full_k, BLOCK):
            block_out(gwt, k0 * n_o + o0, n_o, gw, o0, 0, i0 + k0)
    for o in range(n_o):
        for k in range(full_k if o < full_o else 0, n_k):
            gw[o, i0 + k] = gwt[k, o]


@njit(inline="always", cache=True)
def _add_column(g, rows, vals, n, gwt, i, o):
    """``gwt[i, o] += Σ_e vals[e] · g[rows[e], o]``: the events summed in order from 0,
    then added once (the passes of a gradient under 16 columns wide)."""
    u = np.uint64(o)
    acc = np.float32(0.0)
    for e in range(np.uint64(n)):
        acc += vals[e] * g[rows[e], u]
    gwt[i, u] += acc


@njit(inline="always", cache=True)
def _add_sums(acc, gwt, i, o0, width, skip):
    """``gwt[i, o0 + k] += acc[k]`` for ``skip <= k < width`` (``width`` a constant at
    each call site: every index into ``acc`` constant once unrolled). The first ``skip``
    sums belong to an earlier pass."""
    u0 = np.uint64(o0)
    for k in range(np.uint64(width)):
        if k >= skip:
            gwt[i, u0 + k] += acc[k]


@njit(inline="always", cache=True)
def _add_columns16(g, rows, vals, n, gwt, i, acc, o0, skip):
    """``gwt[i, o0 + k] += Σ_e vals[e] · g[rows[e], o0 + k]`` for ``skip <= k < 16``: the
    events summed in order from 0 into one vector (:mod:`~loihi_slayer.autograd._f32x16`;
    ``g`` C-contiguous float32), then added once (:func:`_add_sums`, through the stack
    array ``acc``). The columns below ``skip`` are summed too (a pass as wide as its
    vectors) but not added: they belong to an earlier pass. Written as a scalar loop
    over 16 columns, LLVM unrolled it before vectorising and left 16 scalar
    multiply-adds an event (as long as half a 128-column pass)."""
    n_o = np.uint64(g.shape[1])
    u0 = np.uint64(o0)
    v0 = vzero()
    for e in range(np.uint64(n)):
        v0 = vaxpy(v0, vals[e], vload(g, rows[e] * n_o + u0))
    vstore(acc, 0, v0)
    _add_sums(acc, gwt, i, o0, 16, skip)


@njit(inline="always", cache=True)
def _axpy4(v, a, g, at):
    """The four vectors ``v`` plus ``a`` times the 64 values of ``g`` from flat offset
    ``at`` (:func:`~loihi_slayer.autograd._f32x16.vaxpy`, lane by lane)."""
    return (
        vaxpy(v[0], a, vload(g, at)),
        vaxpy(v[1], a, vload(g, at + np.uint64(16))),
        vaxpy(v[2], a, vload(g, at + np.uint64(32))),
        vaxpy(v[3], a, vload(g, at + np.uint64(48))),
    )


@njit(inline="always", cache=True)
def _store4(acc, at, v):
    """The four vectors ``v`` into ``acc[at : at + 64]``."""
    for k in range(4):
        vstore(acc, at + 16 * k, v[k])


@njit(inline="always", cache=True)
def _add_columns64(g, rows, vals, n, gwt, i, acc, o0, skip):
    """:func:`_add_columns16` of 64 columns in four vectors."""
    n_o = np.uint64(g.shape[1])
    u0 = np.uint64(o0)
    v = (vzero(), vzero(), vzero(), vzero())
    for e in range(np.uint64(n)):
        v = _axpy4(v, vals[e], g, rows[e] * n_o + u0)
    _store4(acc, 0, v)
    _add_sums(acc, gwt, i, o0, 64, skip)


@njit(inline="always", cache=True)
def _add_columns128(g, rows, vals, n, gwt, i, acc, o0, skip):
    """:func:`_add_columns16` of 128 columns in eight vectors. As a scalar loop over 128
    columns LLVM vectorised it in 16 vectors of 8 (its preferred width on AVX-512
    CPUs); in eight of 16 the event weight gradient took 0.68-0.94 of that time
    (paired calls in one process, Ice Lake VM, 64-512 outputs, 5-20 % density; 0.71 on
    N-MNIST's dense-1 shape at 10 %)."""
    n_o = np.uint64(g.shape[1])
    u0 = np.uint64(o0)
    lo = (vzero(), vzero(), vzero(), vzero())
    hi = (vzero(), vzero(), vzero(), vzero())
    for e in range(np.uint64(n)):
        at, a = rows[e] * n_o + u0, vals[e]
        lo = _axpy4(lo, a, g, at)
        hi = _axpy4(hi, a, g, at + np.uint64(64))
    _store4(acc, 0, lo)
    _store4(acc, 64, hi)
    _add_sums(acc, gwt, i, o0, 128, skip)


@njit(inline="always", cache=True)
def _add_gradient_rows(g, rows, vals, n, gwt, i, acc):
    """One block's ``n`` events of input ``i`` into its gradient row ``gwt[i]``, in
    passes over the events of :data:`ACC_WIDTH` columns, then of 64 or 16 columns
    (the narrower where it covers what is left), reaching back over columns already
    summed where the row is that wide (their sums are not added twice); rows under 16
    columns one column a pass. A pass costs per event its row index, value and loop
    besides its columns, so the fewest passes win (Ice Lake VM, 512 inputs x 3200
    columns at 10 %, old and new code in alternating processes): 96 columns took 4.0
    ms in a 64-column pass and two of 16 (then scalar, see :func:`_add_columns16`),
    1.3-1.5 ms in two of 64; 200 columns 4.2-4.5 ms in one of 128, four of 16 and eight
    of one, 2.1-2.9 ms in two of 128. Every column's sum is the same whatever pass
    makes it: its events in order from 0, then added to the row."""
    n_o = gwt.shape[1]
    o = 0
    while o < n_o:
        # one function per width: its sums are that many vector registers
        rest = n_o - o
        if rest >= 128 or (rest > 64 and n_o >= 128):
            start = min(o, n_o - 128)
            _add_columns128(g, rows, vals, n, gwt, i, acc, start, o - start)
            o = start + 128
        elif rest >= 64 or (rest > 16 and n_o >= 64):
            start = min(o, n_o - 64)
            _add_columns64(g, rows, vals, n, gwt, i, acc, start, o - start)
            o = start + 64
        elif n_o >= 16:
            start = min(o, n_o - 16)
            _add_columns16(g, rows, vals, n, gwt, i, acc, start, o - start)
            o = start + 16
        else:
            _add_column(g, rows, vals, n, gwt, i, o)
            o += 1


#: values per job of :func:`nonzero_count` (256 KB of float32)
COUNT_BLOCK = 1 << 16


@njit(parallel=True, cache=True)
def _nonzero_count(a, block):
    jobs = (a.shape[0] + block - 1) // block
    part = np.empty(jobs, np.int64)  # every job writes its slot (see fixed._serial)
    for job in prange(jobs):
        lo = job * block
        seg = a[lo : min(lo + block, a.shape[0])]
        n = 0
        for k in range(seg.shape[0]):
            n += seg[k] != 0
        part[job] = n
    return serial_sum(part)


def nonzero_count(a: torch.Tensor) -> int:
    """The number of non-zero values of a contiguous CPU tensor, in one vectorised
    parallel pass (``Tensor.count_nonzero`` took 5-15 ms on the ``(199, 32, 512)`` spikes
    of a ``cuba.Recurrent`` step, this 0.3-1 ms); other tensors: ``count_nonzero``."""
    if a.is_cuda or not a.is_contiguous() or a.dtype not in (torch.float32, torch.float64):
        return int(a.count_nonzero())
    follow_torch_threads()
    return int(_nonzero_count(a.reshape(-1).numpy(), COUNT_BLOCK))


@njit(cache=True)
def transposed(m, out):
    """``out[i, o] = m[o, i]``: the int8 ``(O, I)`` mantissas as the forward's ``(I, O)``
    rows, one per input (a quarter of ``m.t().contiguous().to(torch.int32)``'s time on
    the N-MNIST dense layer's 128 x 578: 28 against 108 us)."""
    n_o, n_i = m.shape
    for i in range(n_i):
        for o in range(n_o):
            out[i, o] = m[o, i]


@njit(inline="always", cache=True)
def _gradient_rows_job(g, job, out):
    """Job ``job`` of :func:`gradient_rows`: batch item ``job // J`` and its outputs'
    block ``job % J`` of 16 (``J`` blocks per item), every step: 16 x 16 blocks
    transposed in registers, a partial last block as the whole block ending at the last
    output or step (its first values written twice, the same); below 16 outputs or
    steps the item element by element (one job per item then)."""
    n_o, steps = g.shape[1], g.shape[2]
    if n_o < BLOCK or steps < BLOCK:
        for o in range(n_o):
            for t in range(steps):
                out[job * steps + t, o] = g[job, o, t]
        return
    per = (n_o + BLOCK - 1) // BLOCK
    b = job // per
    o0 = min((job % per) * BLOCK, n_o - BLOCK)
    flat = g.reshape(-1)
    for t in range(0, steps, BLOCK):
        t0 = min(t, steps - BLOCK)
        block_out(flat, (b * n_o + o0) * steps + t0, steps, out, b * steps + t0, 0, o0)


@njit(inline="always", cache=True)
def _gradient_rows_jobs(g):
    n_b, n_o, steps = g.shape
    if n_o < BLOCK or steps < BLOCK:
        return n_b
    return n_b * ((n_o + BLOCK - 1) // BLOCK)


@njit(parallel=True, cache=True)
def gradient_rows(g, out):
    """``out[b·T + t, o] = g[b, o, t]``: the time-last ``(B, O, T)`` gradient (C-contiguous)
    as the ``(B·T, O)`` rows the event weight gradient reads: 32-48 us on Oxford's
    ``(1, 200 | 256, 2000)`` float32 alone against 121-154 for ``Tensor.copy_`` of the
    transposed view, 20 against 74 on ``(32, 128, 60)`` (Zen 4, 2 threads)."""
    for job in prange(_gradient_rows_jobs(g)):
        _gradient_rows_job(g, job, out)


@njit(cache=True)
def gradient_rows_serial(g, out):
    """:func:`gradient_rows` on the calling thread."""
    for job in range(_gradient_rows_jobs(g)):
        _gradient_rows_job(g, job, out)


def step_block(n_o: int) -> int:
    """Steps per forward job: ``block · O`` int32 sums in :data:`SUMS_BYTES`."""
    return max(8, SUMS_BYTES // (4 * max(n_o, 1)))


def listed_events(q3: torch.Tensor, counts: torch.Tensor, mem: Recycled) -> np.ndarray:
    """The event lists (:func:`event_lists`) of the ``(I, B, T)`` int8 operand ``q3``
    with its ``(B, I)`` counts, in ``mem``'s memory: a ``(B, I, T)`` array of the
    narrowest type that holds a step (:func:`position_dtype`)."""
    n_i, n_b, steps = q3.shape
    dt = position_dtype(steps)
    raw = mem.empty((n_i * n_b * steps * dt.itemsize,), torch.uint8)
    pos = raw.numpy().view(dt).reshape(n_b, n_i, steps)
    follow_torch_threads()
    event_lists(q3.numpy(), counts.numpy(), pos)
    return pos


def event_inputs(
    m: torch.Tensor,
    n_o: int,
    q3: torch.Tensor,
    counts: torch.Tensor,
    top: int,
    unit: float,
    pos_mem: Recycled,
) -> tuple:
    """The leading arguments of the event forward kernels (:func:`forward_events`, the
    fused dense block's one pass): the operand ``q3``, its ``counts``, its event lists
    (:func:`listed_events`), the ``(I, O)`` int8 transposed mantissas of ``m`` ``(O, I)``,
    the bound ``top``, the grid step ``unit`` and the steps per block
    (:func:`step_block`)."""
    mt = np.empty((m.shape[1], n_o), np.int8)
    transposed(m.contiguous().numpy(), mt)
    pos = listed_events(q3, counts, pos_mem)
    return q3.numpy(), counts.numpy(), pos, mt, int(top), np.float32(unit), step_block(n_o)


def remember_operand(ctx, q3: torch.Tensor, w2: torch.Tensor, counts, pos) -> None:
    """Save what the event product's backward reads (:func:`product_backward` with
    :func:`events_weight_grad`) on ``ctx``: the operand ``q3`` with its counts and event
    lists (their memory stays in use while the graph holds them), the weight ``w2``."""
    ctx.save_for_backward(q3, w2)
    ctx.counts = counts
    ctx.positions = pos
    ctx.operand_time_major = False  # q's columns (b, t), whatever the output's layout


class EventDenseProduct(torch.autograd.Function):
    """``z = w @ x`` on time-last ``x (B, I, T)`` from its int8 values ``q`` ``(I, B, T)``
    and their numbers of events per row ``counts`` ``(B, I)`` (see the module); the
    output in ``z_mem``'s memory (a :class:`~loihi_slayer._recycle.Recycled`: kept across
    steps, or fresh where None), time-last, or with ``time_major`` a time-last view of
    time-major ``(T, B, O)`` memory. Backward: the weight gradient event by event, the
    input gradient ``w^T g`` (only when the input needs one). ``top`` bounds
    ``|q| · |m|``; the event lists go into ``pos_mem``'s memory (a
    :class:`~loihi_slayer._recycle.Recycled`), kept for the weight gradient."""

    @staticmethod
    def forward(ctx, x3, w2, q, counts, m, unit, top, z_mem, pos_mem, time_major=False):
        n_b, _, steps = x3.shape
        n_o = w2.shape[0]
        lead = event_inputs(m, n_o, q, counts, top, unit, pos_mem)
        shape = (steps, n_b, n_o) if time_major else (n_b, n_o, steps)
        out = (
            torch.empty(shape, dtype=torch.float32)
            if z_mem is None
            else z_mem.empty(shape, torch.float32)
        )
        z = out.permute(1, 2, 0) if time_major else out
        follow_torch_threads()
        forward_events(*lead, out.numpy(), time_major, n_b >= numba_threads())
        remember_operand(ctx, q, w2, counts, lead[2])
        return z

    @staticmethod
    @first_order("EventDenseProduct (an exact dense product's kernels)")
    def backward(ctx, g):
        grads = product_backward(ctx, g, events_weight_grad)
        return (*grads, None, None, None, None, None, None, None, None)


def product_backward(ctx, g, weight_grad) -> tuple:
    r"""``(input gradient, weight gradient)`` of a dense product ``z = w @ x`` that saved
    ``(q, w2)``: the input gradient :math:`w^\top g` time-last (only when the input needs
    one), the weight gradient from ``weight_grad(ctx, q, g)`` (only when asked)."""
    q, w2 = ctx.saved_tensors
    g_x = g_w = None
    if ctx.needs_input_grad[0]:
        g_x = input_grad(w2, g)
    if ctx.needs_input_grad[1]:
        g_w = weight_grad(ctx, q, g)
    return g_x, g_w


def input_grad(w2: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    r"""The input gradient :math:`w^\top g` of a dense product, ``(B, I, T)`` time-last
    from ``w2`` ``(O, I)`` and ``g`` ``(B, O, T)``, into memory kept across steps (fresh
    memory, a transposed copy of ``torch.matmul``'s output, took 0.6-0.8 ms of the Oxford
    step for its ``(1, 256, 2000)`` gradient).

    From :data:`FOLD_STEPS` steps on, one GEMM per batch item (``(I, O) @ (O, T)``, the
    output in place). Below, one GEMM over all ``B·T`` columns (``(B·T, O) @ (O, I)``)
    and a transposed copy: per-item GEMMs that narrow re-read the weight for a few
    columns (``torch.bmm`` at T = 1, batch 32, 512 x 512: 8.9 ms against 0.16 ms),
    which made a Recurrent block stepped one step at a time 3.4x slower."""
    n_b, n_o, steps = g.shape
    n_i = w2.shape[1]
    out = kept_empty(_G_INPUT, (n_b, n_i, steps), g.dtype, g)
    if steps >= FOLD_STEPS:
        return torch.bmm(w2.t().unsqueeze(0).expand(n_b, n_i, n_o), g, out=out)
    rows = g.transpose(1, 2).reshape(n_b * steps, n_o)  # a view where steps == 1
    if steps == 1:
        torch.mm(rows, w2, out=out.view(n_b, n_i))
        return out
    return out.copy_(torch.mm(rows, w2).view(n_b, steps, n_i).transpose(1, 2))


#: the role of the weight gradient's reordered copy of the output gradient in memory kept
#: across steps (megabytes per product and step: fresh memory would fault page by page)
_G_ROWS = "event weight gradient rows"
#: the role of the input gradient's memory, kept across steps for the same reason
_G_INPUT = "product input gradient"


def events_weight_grad(ctx, q, g):
    """The weight gradient event by event (:func:`weight_grad_events`), ``(O, I)``, from
    the int8 operand ``q`` (``(I, B·T)``, or an ``(I, B, T)`` view; its columns ordered
    ``(t, b)`` where ``ctx.operand_time_major``) and the time-last gradient ``g``
    ``(B, O, T)``."""
    n_b, n_o, steps = g.shape
    # rows of O gradients per column: free where g is a view of time-major memory (the
    # fused recurrence's gradient), else one reordering copy
    gt = g.permute(2, 0, 1)  # (T, B, O)
    g_time_major = gt.is_contiguous()
    cross, counts, pos = False, None, None
    if ctx.operand_time_major:
        q3 = q.view(q.shape[0], steps, n_b)
        if not g_time_major:
            gt = kept_empty(_G_ROWS, tuple(gt.shape), g.dtype).copy_(gt)
    else:  # rows (b, i): their counts known, and their events' steps where listed
        q3, counts = q.view(q.shape[0], n_b, steps), ctx.counts.numpy()
        pos = getattr(ctx, "positions", None)
        cross = g_time_major  # (t, b) rows beside (b, t) columns
        if not g_time_major:
            # (B, T, O) rows: free where g is a view of neuron-last memory (a CUBA
            # neuron's backward returns its input gradient so), else one copy into memory
            # kept across steps
            gt = g.transpose(1, 2)
            if not gt.is_contiguous():
                rows = kept_empty(_G_ROWS, (n_b, steps, n_o), g.dtype)
                if g.is_contiguous() and g.dtype == torch.float32:
                    parallel = use_parallel(n_b * n_o, steps, light=True)
                    kernel = gradient_rows if parallel else gradient_rows_serial
                    kernel(g.numpy(), rows.numpy().reshape(-1, n_o))
                    gt = rows
                else:
                    gt = rows.copy_(gt)
    return event_weight_grad(q3.numpy(), gt.reshape(-1, n_o).numpy(), cross, counts, pos)


def event_weight_grad(
    q3: np.ndarray,
    g2: np.ndarray,
    cross: bool = False,
    counts: np.ndarray | None = None,
    pos: np.ndarray | None = None,
) -> torch.Tensor:
    """:func:`weight_grad_events` on torch's thread count, one job per thread, blocks of
    :data:`GRAD_BLOCK_BYTES` of gradient rows: the weight gradient ``(O, I)`` float32
    (contiguous) of the input ``q3`` ``(I, A, C)`` (any dtype and strides: its non-zero values
    are the events), the float32 gradient rows ``g2`` ``(A·C, O)`` and, where known, the
    events per row ``counts`` ``(A, I)`` and their positions ``pos`` (with ``counts``)."""
    n_i, n_o = q3.shape[0], g2.shape[1]
    gw = torch.empty((n_o, n_i), dtype=torch.float32)
    follow_torch_threads()
    chunk = -(-n_i // numba_threads())
    block = max(16, GRAD_BLOCK_BYTES // (4 * max(n_o, 1)))
    if counts is None:
        counts, pos = _NO_COUNTS, None
    lists = _NO_LISTS if pos is None else pos
    part = max(BLOCK, JOB_ROWS_BYTES // (4 * max(n_o, 1)))
    weight_grad_events(q3, g2, cross, block, chunk, counts, lists, gw.numpy(), part)
    return gw


_NO_COUNTS = np.zeros((0, 0), np.int32)
_NO_LISTS = np.zeros((0, 0, 0), np.uint8)
