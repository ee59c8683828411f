r"""The dense synapse product on int8 operands, where that is exact (CPU training).

A dense synapse multiplies quantized weights by spikes. With the weights on a
power-of-two grid (``pre_hook_fx = neuron.quantize_8bit``: every weight is an
integer multiple of ``2 / w_scale``) and integer-valued inputs (binary spikes),

.. math::

    z[b, o, t] = \sum_i w[o, i]\, x[b, i, t]
               = u \sum_i m[o, i]\, q[b, i, t],
    \qquad m = w / u \in [-128, 127],\ q = x \in [-128, 127]

is an integer sum times the grid step :math:`u`, which PyTorch's int8 GEMM
(``torch._int_mm``, int32 accumulation) computes exactly and 4-8x faster than
the float32 GEMM on CPUs with int8 dot products (VNNI/AMX); elsewhere it is far
slower, and the path is off (:func:`~loihi_slayer.fixed.synapse_fast.int8_gemm_pays`).
The result is the float32 GEMM's result bit for bit while :math:`I \max|m| \max|q| < 2^{24}`: every
partial sum is then an integer multiple of :math:`u` that float32 holds exactly,
so the float GEMM rounds nothing either. That bound is checked; where it or
either grid condition fails the caller keeps the float GEMM.

The backward is the float product's: the weight gradient is a float32 GEMM with
the saved spikes, the input gradient :math:`w^\top g` (only when the input needs
one). Only the forward product changes, so gradients are those of the float path
up to the summation order of a float GEMM.

Layout: the input is time-last ``(B, I, T)``. The conversion writes the int8
operand as ``(I, B·T)`` (each run of ``T`` values stays contiguous, so reads and
writes both stream), one GEMM ``m (O, I) @ q (I, B·T)`` gives ``(O, B·T)``, and
the scaling writes the time-last ``(B, O, T)`` float output the neuron reads
without another copy.

Sparse input (spikes) takes the events of :mod:`~loihi_slayer.synapse._event_product`
where they beat the GEMMs. With the int8 GEMM (int8 dot products) the forward is always
the GEMM (on the N-MNIST dense layer 0.19 ms against 0.73 for the event forward, at 2 %
density too), and the weight gradient is summed event by event where the input is
sparse enough (:func:`~loihi_slayer.synapse._grad_calibration.grad_max_density`, measured
per machine; the float32 GEMM it replaces is the larger part of the product's time
there). With sgemm
both directions go by events at most
:data:`~loihi_slayer.synapse._event_product.MAX_DENSITY` of the values non-zero
(:func:`_event_product`).
"""

from __future__ import annotations

import math
import weakref

import numpy as np
import torch
from numba import njit, prange

from .. import _operand_handoff as handoff
from .._recycle import Recycled, recycled_for
from ..autograd._dispatch import use_parallel
from ..autograd._first_order import first_order
from ..fixed._serial import serial_max, serial_sum
from ..fixed.synapse_fast import (
    full_precision_torch,
    int8_gemm_pays,
    int8_gemm_works,
    int8_mm,
)
from ._event_product import (
    DENSE_RETRY,
    MAX_DENSITY,
    EventDenseProduct,
    events_weight_grad,
    product_backward,
)
from ._grad_calibration import grad_max_density
from ._int8_rows import INT8_MAX, int8_row

#: float32 holds every integer below this exactly
FLOAT32_EXACT = 1 << 24
#: smallest product (B·T·I·O multiply-adds) worth the conversions
MIN_WORK = 1 << 22
#: sgemm flavour: from this many steps on, one GEMM per batch item writes the time-last
#: output in place (no scale-out pass); shorter rows make GEMMs too narrow to pay (the
#: N-MNIST step, T = 60: paired 1.035 per batch item against 0.94-0.95 for one GEMM and
#: the scale-out; a Recurrent 512 -> 512 block, T = 200: 0.98 against 1.08, both against
#: the plain float product)
BATCH_GEMM_STEPS = 128
#: the smallest normal float32: a finer grid step would make subnormal outputs, which a
#: flush-to-zero setting treats differently in the two paths
UNIT_MIN = 2.0**-126


#: the operand pass splits each batch item's inputs into blocks until there are this many
#: jobs (a job per row instead: 1.5x the time on the N-MNIST operand, 32 x 578 rows of 60)
OPERAND_JOBS = 8


@njit(inline="always", cache=True)
def _to_int8_rows(x, b, i0, i1, out, counts):
    """:func:`~._int8_rows.int8_row` for rows ``(b, i0 .. i1)``, their counts into
    ``counts[b]``; returns ``(flag, max |q|)``. Unsigned row indices: no negative-index
    wrap-around on the row's accesses (signed: 1.2x the time)."""
    bad = np.int32(0)
    top = np.int32(0)
    for i in range(np.uint64(i0), np.uint64(i1)):
        e, m, nz = int8_row(x, b, i, out)
        bad |= e
        top = max(top, m)
        counts[b, i] = nz
    return bad, top


@njit(parallel=True, cache=True)
def _to_int8_parallel(x, out, counts):
    """``out[i, b, :] = x[b, i, :]`` (int8) and ``counts[b, i]`` the row's non-zero values;
    returns ``(refused, max |q|, non-zero values)``. One job per batch item and block of
    inputs (:data:`OPERAND_JOBS`)."""
    n_b, n_i = x.shape[0], x.shape[1]
    per_b = min(n_i, max(1, -(-OPERAND_JOBS // n_b)))
    size = -(-n_i // per_b)
    # per job, reduced after the loop (int32: with int64 flags the pass took 1.5x the time)
    flags = np.empty((n_b * per_b, 2), np.int32)
    for job in prange(n_b * per_b):
        b, i0 = job // per_b, (job % per_b) * size
        flags[job, 0], flags[job, 1] = _to_int8_rows(x, b, i0, min(i0 + size, n_i), out, counts)
    # reduced by loops (see fixed._serial): one parallel region a call
    return serial_sum(flags[:, 0]), serial_max(flags[:, 1], np.int32(0)), serial_sum(counts)


@njit(cache=True)
def _to_int8_serial(x, out, counts):
    """:func:`_to_int8_parallel` on the calling thread."""
    bad = 0
    top = 0
    for b in range(x.shape[0]):
        e, m = _to_int8_rows(x, b, 0, x.shape[1], out, counts)
        bad += e
        top = max(top, m)
    return bad, top, counts.sum()


@njit(parallel=True, cache=True)
def _to_int8_tm_parallel(x, out, counts):
    """:func:`_to_int8_parallel` into an ``(I, B, T)`` view of time-major ``(I, T, B)``
    memory, one input per job: its ``(T, B)`` block stays in the L1 cache while its
    ``B`` strided rows fill it (jobs by batch item would scatter every write)."""
    n_b, n_i = x.shape[0], x.shape[1]
    flags = np.empty((n_i, 2), np.int64)
    for i in prange(n_i):
        e, m = 0, 0
        for b in range(n_b):
            eb, mb, nz = int8_row(x, b, i, out)
            e |= eb
            m = max(m, mb)
            counts[b, i] = nz
        flags[i, 0] = e
        flags[i, 1] = m
    return serial_sum(flags[:, 0]), serial_max(flags[:, 1], np.int64(0)), serial_sum(counts)


#: operand builders by (time-major columns, parallel); each writes an ``(I, B, T)`` view
_TO_OPERAND = {
    (False, True): _to_int8_parallel,
    (False, False): _to_int8_serial,
    (True, True): _to_int8_tm_parallel,
    (True, False): _to_int8_serial,  # small work: the plain order on the strided view
}


@njit(inline="always", cache=True)
def _scale_row(src, unit, dst):
    """``dst[t] = src[t] · unit`` (int32 -> float32). Both are slices indexed by the loop
    counter alone: an offset index (``r[o, base + t]``) keeps numba's wrap-around check
    for negative indices, and the loop then stays scalar."""
    for t in range(dst.shape[0]):
        dst[t] = np.float32(src[t]) * unit


@njit(parallel=True, cache=True)
def _scale_out_parallel(r, unit, z):
    """``z[b, o, t] = r[o, b·T + t] · unit`` (int32 -> float32, time-last)."""
    n_b, n_o, steps = z.shape
    for job in prange(n_b * n_o):
        b, o = job // n_o, job % n_o
        _scale_row(r[o, b * steps : (b + 1) * steps], unit, z[b, o])


@njit(cache=True)
def _scale_out_serial(r, unit, z):
    """:func:`_scale_out_parallel` on the calling thread."""
    n_b, n_o, steps = z.shape
    for b in range(n_b):
        for o in range(n_o):
            _scale_row(r[o, b * steps : (b + 1) * steps], unit, z[b, o])


def weight_grid(w: torch.Tensor) -> tuple[torch.Tensor, float, int] | None:
    """``(m, u, max |m|)`` with ``w == u * m`` exactly, ``m`` int8 and ``u`` a power of
    two, or None when ``w`` is not on such a grid. ``u`` is the finest power of two that keeps
    ``|m| <= 127``: a weight that is not a multiple of it is a multiple of no coarser one.
    Three passes over ``w`` (largest, smallest; the mantissas and their check)."""
    src = w.detach().contiguous().reshape(-1).numpy()
    # NumPy's SIMD reductions (NaN propagates; numba's float max does not vectorise)
    amax = max(float(src.max()), -float(src.min())) if src.size else 0.0
    if not math.isfinite(amax):
        return None
    if amax == 0.0:
        return torch.zeros(w.shape, dtype=torch.int8), 1.0, 0
    k = math.ceil(math.log2(amax / INT8_MAX))
    while amax > INT8_MAX * 2.0**k:  # log2's rounding, either way
        k += 1
    while amax <= INT8_MAX * 2.0 ** (k - 1):
        k -= 1
    unit = 2.0**k
    m = torch.empty(w.shape, dtype=torch.int8)
    # w / u: exact (a power of two, and |w / u| <= 127 is normal)
    if _mantissas(src, src.dtype.type(unit), m.reshape(-1).numpy()):
        return None
    return m, unit, round(amax / unit)


@njit(cache=True)
def _mantissas(w, unit, out):
    """``out = w / unit`` as int8 (``|w / unit| <= 127``); 1 when a quotient is not an
    integer, else 0."""
    bad = 0
    for i in range(w.shape[0]):
        m = w[i] / unit
        q = np.int32(m)
        out[i] = q
        bad |= m != q
    return bad


def int8_operand(
    x3: torch.Tensor, out: torch.Tensor | None = None, time_major: bool = False
) -> tuple[torch.Tensor, int, int, torch.Tensor] | None:
    """The int8 ``(I, B·T)`` operand of a time-last float32 ``(B, I, T)`` input, its
    largest magnitude, its number of non-zero values and their count per input row
    (``(B, I)`` int32, which lets the event product pass over rows without events), or
    None when a value is not an integer in ``[-128, 127]``. With
    ``out`` (an ``(I, B·T)`` tensor, e.g. float32 for sgemm) the same values go there.
    ``time_major`` orders each row's columns ``(t, b)`` instead of ``(b, t)``."""
    n_b, n_i, steps = x3.shape
    if out is None:
        out = torch.empty((n_i, n_b * steps), dtype=torch.int8)
    if time_major:  # (I, B, T) view of (I, T, B) memory
        dst = out.numpy().reshape(n_i, steps, n_b).transpose(0, 2, 1)
    else:
        dst = out.numpy().reshape(n_i, n_b, steps)
    src = x3.detach().contiguous().numpy()
    parallel = use_parallel(n_b * n_i, steps, light=True)
    counts = torch.empty((n_b, n_i), dtype=torch.int32)
    bad, top, nonzero = _TO_OPERAND[time_major, parallel](src, dst, counts.numpy())
    if bad:
        return None
    return out, int(top), int(nonzero), counts


#: the weight gradient's float copy of the int8 operand, the time-major output and the
#: event product's int8 operand (megabytes, every step), for products without an owner
#: (see :func:`int_product`)
_Q_FLOAT, _Z_TIME_MAJOR, _Z_TIME_LAST = Recycled(), Recycled(), Recycled()
_EVENT_MEM = Recycled()
#: the event lists of the event product (see :mod:`._event_product`), for the same
_EVENT_LISTS = Recycled()


class _NoOwner:
    """The key of products without an owner in :data:`_DENSE_SKIPS`."""


_NO_OWNER = _NoOwner()
#: owner -> products left that skip the event pass (its last input was too dense)
_DENSE_SKIPS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _event_product(x3, w2, m, unit, top_m, owner, time_major):
    """The event-driven product (:mod:`._event_product`) where the input is sparse
    enough, as ``(EventDenseProduct, its arguments)``, else None; ``False`` when an
    input value is not an integer in range (no exact product at all). An owner whose
    input was too dense skips the event pass for its next :data:`DENSE_RETRY` products
    (the pass reads the whole input)."""
    key = _NO_OWNER if owner is None else owner
    skips = _DENSE_SKIPS.get(key, 0)
    if skips:
        _DENSE_SKIPS[key] = skips - 1
        return None
    n_b, n_i, steps = x3.shape
    operand = handoff.take(x3)  # made by the kernel that made x3, where it did
    if operand is None:
        mem = _EVENT_MEM if owner is None else recycled_for(owner, "event operand")
        operand = int8_operand(x3, mem.empty((n_i, n_b * steps), torch.int8))
    if operand is None or n_i * top_m * operand[1] >= FLOAT32_EXACT:
        return False
    q, _, nonzero, counts = operand
    if nonzero > MAX_DENSITY * q.numel():
        _DENSE_SKIPS[key] = DENSE_RETRY
        return None
    # the output in memory kept across steps (time-major or time-last, by the consumer)
    role = "time-major output" if time_major else "output"
    z_mem = _output_memory(time_major) if owner is None else recycled_for(owner, role)
    pos_mem = _EVENT_LISTS if owner is None else recycled_for(owner, "event lists")
    top = top_m * operand[1]
    q3 = q.view(n_i, n_b, steps)
    return EventDenseProduct, (x3, w2, q3, counts, m, unit, top, z_mem, pos_mem, time_major)


def _output_memory(time_major: bool) -> Recycled:
    """The kept output memory of products without an owner."""
    return _Z_TIME_MAJOR if time_major else _Z_TIME_LAST


class IntDenseProduct(torch.autograd.Function):
    """``z = w @ x`` on time-last ``x (B, I, T)`` from the operand ``q`` (see the module):
    int8 with the int8 GEMM (``int8``), else float32 with sgemm, which the weight gradient
    then reads as it is; backward as the float product's. With ``z_mem`` (a
    :class:`~loihi_slayer._recycle.Recycled`) ``q``'s columns are ordered ``(t, b)`` and
    ``z`` is a time-last view of time-major ``(T, B, O)`` memory from ``z_mem``, one GEMM
    with nothing to reorder. With ``counts`` (the int8 operand's events per ``(b, i)``
    row) the weight gradient is summed event by event
    (:func:`~loihi_slayer.synapse._event_product.events_weight_grad`), else by a GEMM."""

    @staticmethod
    def forward(ctx, x3, w2, q, m, unit, q_float, int8, z_mem, counts):
        n_b, _, steps = x3.shape
        n_o = w2.shape[0]
        time_major = z_mem is not None
        if time_major:
            # (T·B, I) @ (I, O): both operands transposed views, the output time-major,
            # in memory kept across steps
            zt = z_mem.empty((steps * n_b, n_o), torch.float32)
            if int8:
                zt.copy_(int8_mm(q.t(), m.t())).mul_(unit)
            else:
                torch.mm(q.t(), w2.t(), out=zt)
            z = zt.view(steps, n_b, n_o).permute(1, 2, 0)
        else:
            z = torch.empty((n_b, n_o, steps), dtype=torch.float32)
            if not int8 and steps >= BATCH_GEMM_STEPS:
                # q is the operand's float copy: the same exact sums (the bound of the
                # module); each batch's GEMM written time-last in place, no scale-out
                q3 = q.view(q.shape[0], n_b, steps)
                for b in range(n_b):
                    torch.mm(w2, q3[:, b], out=z[b])
            else:
                r = int8_mm(m, q) if int8 else torch.mm(w2, q)  # (O, B*T), exact
                big = use_parallel(n_b * n_o, steps, light=True)
                kernel = _scale_out_parallel if big else _scale_out_serial
                kernel(r.numpy(), np.float32(unit if int8 else 1.0), z.numpy())
        # the operand is the input in the weight gradient's layout (int8: a quarter its size)
        ctx.save_for_backward(q, w2)
        ctx.q_float = q_float
        ctx.time_major = ctx.operand_time_major = time_major
        ctx.counts = counts
        return z

    @staticmethod
    @first_order("IntDenseProduct (an exact dense product's kernels)")
    def backward(ctx, g):
        weight_grad = _gemm_weight_grad if ctx.counts is None else events_weight_grad
        grads = product_backward(ctx, g, weight_grad)
        return (*grads, None, None, None, None, None, None, None)


def _gemm_weight_grad(ctx, q, g):
    """The weight gradient of :class:`IntDenseProduct`: one GEMM with the operand."""
    q_float = q
    if q.dtype != g.dtype:  # memory kept across steps
        q_float = ctx.q_float.empty(tuple(q.shape), g.dtype).copy_(q)
    if ctx.time_major:
        # g's columns in q's (t, b) order: free where g is a view of time-major memory
        # (the fused recurrence's gradient), else one reordering copy
        g2 = g.permute(2, 0, 1).reshape(q.shape[1], g.shape[1])  # (T*B, O)
        return torch.mm(g2.t(), q_float.t())
    g2 = g.permute(1, 0, 2).reshape(g.shape[1], q.shape[1])  # (O, B*T)
    return g2 @ q_float.t()


def int_product(
    x3: torch.Tensor,
    w2: torch.Tensor,
    owner: object | None = None,
    time_major: bool = False,
    grid: tuple[torch.Tensor, float, int] | None = None,
) -> torch.Tensor | None:
    """``w2 @ x3`` by the product :func:`int_product_plan` chooses, or None where it
    chooses none (the caller keeps the float GEMM)."""
    plan = int_product_plan(x3, w2, owner, time_major, grid)
    return None if plan is None else plan[0].apply(*plan[1])


def int_product_plan(
    x3: torch.Tensor,
    w2: torch.Tensor,
    owner: object | None = None,
    time_major: bool = False,
    grid: tuple[torch.Tensor, float, int] | None = None,
) -> tuple[type[torch.autograd.Function], tuple] | None:
    """The exact product of ``w2 @ x3`` as ``(Function, its arguments)`` (its input
    operand already built), or None. ``w2 @ x3`` (``(O, I)`` by time-last ``(B, I, T)``)
    from the int8 operand when that is exact and worth it (CPU float32, both on integer
    grids, the bound of the module docstring), else None (the caller keeps the float
    GEMM). The GEMM is int8 where the
    CPU has int8 dot products (:func:`~loihi_slayer.fixed.synapse_fast.int8_gemm_pays`),
    else sgemm on the operand's float copy: either way the operand is built in one pass
    in the weight gradient's layout, and the output written time-last (the float GEMM of
    the caller would copy the transposed input, and leave a strided output). The float
    copy of the operand goes into memory kept per ``owner`` (the synapse module; see
    :mod:`loihi_slayer._recycle`), or into one buffer shared by products without one.
    ``time_major``: the output is a time-last view of time-major ``(T, B, O)`` memory, for
    a consumer that steps through time (the recurrent blocks): one GEMM makes it, and a
    gradient arriving in that layout reaches the weight gradient without a copy.
    ``grid``: ``w2``'s int8 grid where the caller knows it (``(m, unit, max |m|)`` of
    :func:`weight_grid`, ``m`` shaped as ``w2``; a quantizer's output carries it, see
    :func:`~loihi_slayer.quantize.int8_grid`), else it is found here."""
    n_b, n_i, steps = x3.shape
    n_o = w2.shape[0]
    if (
        x3.device.type != "cpu"
        or w2.device.type != "cpu"
        or x3.dtype != torch.float32
        or w2.dtype != torch.float32
        or n_b * steps * n_i * n_o < MIN_WORK
        or torch.compiler.is_compiling()
    ):
        return None
    if grid is None:
        grid = weight_grid(w2)
    if grid is None:
        return None
    m, unit, top_m = grid
    if unit < UNIT_MIN:
        return None
    int8 = int8_gemm_pays() and int8_gemm_works()
    if not int8:
        plan = _event_product(x3, w2, m, unit, top_m, owner, time_major)
        if plan is not None:
            return None if plan is False else plan
        if not full_precision_torch():  # sgemm would round (TF32/bf16): not exact
            return None
    q_float = _Q_FLOAT if owner is None else recycled_for(owner, "weight-gradient operand")
    # int8: made by the kernel that made x3, where it did
    operand = handoff.take(x3) if int8 and not time_major else None
    if operand is None:
        if int8:  # int8 memory kept across steps (the event gradient may read it)
            mem = _EVENT_MEM if owner is None else recycled_for(owner, "event operand")
            dst = mem.empty((n_i, n_b * steps), torch.int8)
        else:  # sgemm: the operand written as float32 at once, in memory kept across steps
            dst = q_float.empty((n_i, n_b * steps), torch.float32)
        operand = int8_operand(x3, dst, time_major)
    if operand is None:
        return None
    q, top, nonzero, counts = operand
    if n_i * top_m * top >= FLOAT32_EXACT:
        return None
    z_mem = None
    if time_major:  # the output, read by a time loop, is also kept across steps
        z_mem = _Z_TIME_MAJOR if owner is None else recycled_for(owner, "time-major output")
    # the weight gradient event by event where the input is sparse enough
    sparse = nonzero <= grad_max_density(n_o) * q.numel()
    events = counts if int8 and sparse else None
    return IntDenseProduct, (x3, w2, q, m, unit, q_float, int8, z_mem, events)
