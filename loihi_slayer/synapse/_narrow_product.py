r"""The dense product with few outputs on spikes (a classifier layer), on the time-last layout.

A dense synapse of at most :data:`NARROW_MAX` outputs (N-MNIST's 128 -> 10) is too small
for the int8 GEMM (:mod:`~loihi_slayer.synapse._int_product`), and PyTorch's float path
is dominated by layout: the time-last input ``(B, I, T)`` is copied into ``(B·T, I)``
rows (0.14 ms at N-MNIST's batch 32), and the three GEMMs (forward, input gradient,
weight gradient), each with a size of 10, run far below the machine's rate: the copy
and the GEMMs took 0.56 ms a training step for 2.5 M multiply-adds each way. Here each
direction is one kernel on the layouts as they are:

.. math::

    z[b, o, t] = \sum_i x[b, i, t]\, w[o, i], \qquad
    \frac{\partial L}{\partial x[b, i, t]} = \sum_o w[o, i]\, g[b, o, t], \qquad
    \frac{\partial L}{\partial w[o, i]} = \sum_{b, t} x[b, i, t]\, g[b, o, t].

The outputs are padded to :data:`LANE` (one AVX-512 vector). The work goes in jobs of
one batch item and :data:`STEP_BLOCK` steps (so one long sequence spreads over the
threads too). Every sum is kept in vector registers for its whole loop and stored once
(:mod:`~loihi_slayer.autograd._f32x16`): the forward sums ``x[b, i, t]`` times the
weight column ``w[:, i]`` over ``i`` for eight steps at a time, the weight gradient
``x[b, i, t]`` times the output gradient's row ``g[b, :, t]`` over a job's steps for
four input rows at a time (skipping rows without a non-zero value, spikes), and the
input gradient, written neuron-last ``(B, T, I)`` (a CUBA neuron's backward reads that
layout without a copy, returned as a time-last view), ``g[b, o, t]`` times the weight
row ``w[o, :]`` over ``o`` for 64 inputs at a time. (Summed in memory, one vector
multiply-add a term, each term waited on the last one's store.) On N-MNIST's
128 -> 10 layer (32 x 128 x 60 spikes, 10 % ones) inside training steps, both forms
in one process (Zen 4, 2 threads): forward 49 us against 73, input gradient 28 against
57, weight gradient 45 against 48.

Exactness: the forward applies where the weights lie on a power-of-two grid and every
input is an integer in ``[-128, 127]`` with ``I · max|m| · max|x| < 2^{24}`` (the bound
of :mod:`~loihi_slayer.synapse._int_product`): every partial sum is then an integer
multiple of the grid step that float32 holds exactly, so the output is the float GEMM's
bit for bit, whatever the order. Elsewhere (a non-integer, NaN or inf input) the
forward says so and the caller keeps the float GEMM. The gradients are float sums in a
fixed order (the input gradient over ``o``; the weight gradient over the jobs and their
steps in order within each of :data:`GRAD_PARTS` ranges of jobs, then the ranges in
order), the same bits on any number of threads; they equal the GEMMs' up to that order.
"""

from __future__ import annotations

import numpy as np
import torch
from numba import njit, prange

from .._recycle import kept_empty
from ..autograd._dispatch import use_parallel
from ..autograd._f32x16 import vaxpy, vload, vscale, vstore, vzero
from ..fixed._serial import serial_max
from ._int8_rows import INT8_MAX, INT8_MIN
from ._int_product import FLOAT32_EXACT, UNIT_MIN, weight_grid

#: outputs of one accumulator vector: the most this product takes
LANE = 16
NARROW_MAX = LANE
#: steps of one job (a batch item's steps in blocks: a single long sequence spreads
#: over the threads too; a block's accumulator, 8 KB, stays in the L1 cache)
STEP_BLOCK = 128
#: job ranges of the weight gradient, summed in order (fixed: the same bits on any
#: number of threads)
GRAD_PARTS = 4
#: the int8 range of an exact input (as float32, the kernels' compares)
_LO, _HI = np.float32(INT8_MIN), np.float32(INT8_MAX)


@njit(inline="always", cache=True)
def _job_span(job, steps):
    """Job ``job``'s batch item and steps ``[t0, t1)``: each item's steps in blocks of
    :data:`STEP_BLOCK`, so that a single long sequence spreads over the threads too."""
    blocks = (steps + STEP_BLOCK - 1) // STEP_BLOCK
    b, k = job // blocks, job % blocks
    return b, k * STEP_BLOCK, min(steps, (k + 1) * STEP_BLOCK)


@njit(inline="always", cache=True)
def _n_jobs(n_b, steps):
    return n_b * ((steps + STEP_BLOCK - 1) // STEP_BLOCK)


@njit(inline="always", cache=True)
def _int8_check(xf, start, count, bad, top):
    """``(bad, top)`` updated by ``xf[start : start + count]``: ``bad`` 1 where a value
    is not an integer in ``[-128, 127]`` (NaN and inf included), ``top`` the largest
    ``|x|``. Unsigned indices and integer reductions: one vectorised loop (a float max
    is not)."""
    for j in range(np.uint64(count)):
        v = xf[np.uint64(start) + j]
        q = np.int32(min(max(v, _LO), _HI))
        bad |= np.int32(np.float32(q) != v)
        top = max(top, abs(q))
    return bad, top


@njit(inline="always", cache=True)
def _forward_steps8(xf, row0, steps, n_i, s, wt, acc, at):
    """``acc[at + 16 k + o] = Σ_i xf[row0 + i·steps + s + k] · wt[16 i + o]`` for the 8
    steps ``s .. s + 7`` (``k < 8``), ``i`` in order: eight sums in vector registers
    over the whole input (:mod:`~loihi_slayer.autograd._f32x16`), stored once."""
    a0, a1, a2, a3 = vzero(), vzero(), vzero(), vzero()
    a4, a5, a6, a7 = vzero(), vzero(), vzero(), vzero()
    first, stride, lane = np.uint64(row0 + s), np.uint64(steps), np.uint64(LANE)
    for i in range(np.uint64(n_i)):
        w = vload(wt, i * lane)
        r = first + i * stride
        a0 = vaxpy(a0, xf[r], w)
        a1 = vaxpy(a1, xf[r + np.uint64(1)], w)
        a2 = vaxpy(a2, xf[r + np.uint64(2)], w)
        a3 = vaxpy(a3, xf[r + np.uint64(3)], w)
        a4 = vaxpy(a4, xf[r + np.uint64(4)], w)
        a5 = vaxpy(a5, xf[r + np.uint64(5)], w)
        a6 = vaxpy(a6, xf[r + np.uint64(6)], w)
        a7 = vaxpy(a7, xf[r + np.uint64(7)], w)
    vstore(acc, at, a0)
    vstore(acc, at + LANE, a1)
    vstore(acc, at + 2 * LANE, a2)
    vstore(acc, at + 3 * LANE, a3)
    vstore(acc, at + 4 * LANE, a4)
    vstore(acc, at + 5 * LANE, a5)
    vstore(acc, at + 6 * LANE, a6)
    vstore(acc, at + 7 * LANE, a7)


@njit(inline="always", cache=True)
def _forward_job(xf, n_i, steps, wt, z, job, acc):
    """Job ``job`` (:func:`_job_span`: item ``b``, steps ``t0 .. t1``): ``z[b, :, t] =
    Σ_i x[b, i, t] · wt[i, :O]`` (``xf`` the input ``(B, I, T)`` flat, ``wt`` from
    :func:`_lane_columns`), eight steps at a time (:func:`_forward_steps8`; a last block
    of fewer than eight ends at the job's last step and computes some steps again, to
    the same values: the sums are exact) into the flat ``(t1 - t0, LANE)`` accumulator
    ``acc``. Returns ``(refused, max |x|)`` (:func:`_int8_check`)."""
    n_o = z.shape[1]
    b, t0, t1 = _job_span(job, steps)
    span = t1 - t0
    row0 = b * n_i * steps
    bad, top = np.int32(0), np.int32(0)
    if span == steps:  # the item's whole input: one run
        bad, top = _int8_check(xf, row0, n_i * steps, bad, top)
    else:
        for i in range(n_i):
            bad, top = _int8_check(xf, row0 + i * steps + t0, span, bad, top)
    if span >= 8:
        for k in range(0, span, 8):
            s = min(k, span - 8)
            _forward_steps8(xf, row0, steps, n_i, t0 + s, wt, acc, s * LANE)
    else:
        for k in range(span):
            a = vzero()
            for i in range(n_i):
                a = vaxpy(a, xf[row0 + i * steps + t0 + k], vload(wt, i * LANE))
            vstore(acc, k * LANE, a)
    ub, u0, lane = np.uint64(b), np.uint64(t0), np.uint64(LANE)
    for o in range(np.uint64(n_o)):
        for t in range(np.uint64(span)):
            z[ub, o, u0 + t] = acc[t * lane + o]
    return bad, top


@njit(inline="always", cache=True)
def _lane_columns(w2):
    """The weight columns ``w2[:, i]`` as rows of :data:`LANE` values, zero-padded: the
    flat ``(I, LANE)`` operand of :func:`_forward_job`."""
    n_o, n_i = w2.shape
    wt = np.empty(n_i * LANE, np.float32)
    for k in range(n_i * LANE):  # a loop: np.zeros is a parallel region in a parallel kernel
        wt[k] = 0.0
    for o in range(n_o):
        for i in range(n_i):
            wt[i * LANE + o] = w2[o, i]
    return wt


@njit(parallel=True, cache=True)
def _forward_parallel(x, w2, z):
    """:func:`_forward_job` for every job; returns ``(refused, max |x|)``."""
    wt = _lane_columns(w2)
    n_b, n_i, steps = x.shape
    xf = x.reshape(x.size)  # views made here, not in the parallel region
    jobs = _n_jobs(n_b, steps)
    # every job writes its slot; reduced by loops (see fixed._serial): one parallel region
    bad = np.empty(jobs, np.int32)
    top = np.empty(jobs, np.int32)
    for job in prange(jobs):
        acc = np.empty(STEP_BLOCK * LANE, np.float32)
        bad[job], top[job] = _forward_job(xf, n_i, steps, wt, z, job, acc)
    return serial_max(bad, np.int32(0)), serial_max(top, np.int32(0))


@njit(cache=True)
def _forward_serial(x, w2, z):
    """:func:`_forward_parallel` on the calling thread."""
    wt = _lane_columns(w2)
    n_b, n_i, steps = x.shape
    xf = x.reshape(x.size)
    bad, top = np.int32(0), np.int32(0)
    acc = np.empty(STEP_BLOCK * LANE, np.float32)
    for job in range(_n_jobs(n_b, steps)):
        e, m = _forward_job(xf, n_i, steps, wt, z, job, acc)
        bad |= e
        top = max(top, m)
    return bad, top


@njit(inline="always", cache=True)
def _grad_x_row(g, wf, n_i, of, bt):
    """``out[b, t, :] = Σ_o g[b, o, t] · w[o, :]`` for row ``bt = b·T + t`` (``wf`` the
    weight ``(O, I)`` flat, ``of`` the output ``(B, T, I)`` flat), ``o`` in order, each
    product and sum rounded: 64 inputs at a time as four vector sums kept in registers
    over ``o`` (:mod:`~loihi_slayer.autograd._f32x16`), then 16 at a time, then the
    last ``I % 16`` value by value, all with the same operations in the same order.
    Unsigned indices: no wrap-around checks."""
    n_o, steps = g.shape[1], g.shape[2]
    b, t = np.uint64(bt // steps), np.uint64(bt % steps)
    u_i, lane, one = np.uint64(n_i), np.uint64(LANE), np.uint64(1)
    lane2, lane3, lane4 = np.uint64(2 * LANE), np.uint64(3 * LANE), np.uint64(4 * LANE)
    base = np.uint64(bt) * u_i
    c = np.uint64(0)
    while c + lane4 <= u_i:
        g0 = g[b, 0, t]
        a0 = vscale(g0, vload(wf, c))
        a1 = vscale(g0, vload(wf, c + lane))
        a2 = vscale(g0, vload(wf, c + lane2))
        a3 = vscale(g0, vload(wf, c + lane3))
        for o in range(one, np.uint64(n_o)):
            go = g[b, o, t]
            r = o * u_i + c
            a0 = vaxpy(a0, go, vload(wf, r))
            a1 = vaxpy(a1, go, vload(wf, r + lane))
            a2 = vaxpy(a2, go, vload(wf, r + lane2))
            a3 = vaxpy(a3, go, vload(wf, r + lane3))
        vstore(of, base + c, a0)
        vstore(of, base + c + lane, a1)
        vstore(of, base + c + lane2, a2)
        vstore(of, base + c + lane3, a3)
        c += lane4
    while c + lane <= u_i:
        a = vscale(g[b, 0, t], vload(wf, c))
        for o in range(one, np.uint64(n_o)):
            a = vaxpy(a, g[b, o, t], vload(wf, o * u_i + c))
        vstore(of, base + c, a)
        c += lane
    for i in range(c, u_i):
        v = g[b, 0, t] * wf[i]
        for o in range(one, np.uint64(n_o)):
            v += g[b, o, t] * wf[o * u_i + i]
        of[base + i] = v


@njit(parallel=True, cache=True)
def _grad_x_parallel(g, w, out):
    """:func:`_grad_x_row` for every row ``(b, t)``."""
    n_i = w.shape[1]
    wf, of = w.reshape(w.size), out.reshape(out.size)
    for bt in prange(g.shape[0] * g.shape[2]):
        _grad_x_row(g, wf, n_i, of, bt)


@njit(cache=True)
def _grad_x_serial(g, w, out):
    """:func:`_grad_x_parallel` on the calling thread."""
    n_i = w.shape[1]
    wf, of = w.reshape(w.size), out.reshape(out.size)
    for bt in range(g.shape[0] * g.shape[2]):
        _grad_x_row(g, wf, n_i, of, bt)


@njit(inline="always", cache=True)
def _grad_w_rows4(x, ub, u0, span, rows, k, parts, base, gt):
    """Rows ``rows[k .. k + 3]`` of :func:`_grad_w_part`'s sums over one job's steps:
    four vector sums in registers (:mod:`~loihi_slayer.autograd._f32x16`; four
    independent chains, where one row alone waits on each sum), each row's terms in
    step order."""
    lane = np.uint64(LANE)
    i0, i1, i2, i3 = rows[k], rows[k + 1], rows[k + 2], rows[k + 3]
    r0, r1 = base + np.uint64(i0) * lane, base + np.uint64(i1) * lane
    r2, r3 = base + np.uint64(i2) * lane, base + np.uint64(i3) * lane
    a0, a1, a2, a3 = vload(parts, r0), vload(parts, r1), vload(parts, r2), vload(parts, r3)
    for t in range(span):
        gv = vload(gt, t * lane)
        a0 = vaxpy(a0, x[ub, i0, u0 + t], gv)
        a1 = vaxpy(a1, x[ub, i1, u0 + t], gv)
        a2 = vaxpy(a2, x[ub, i2, u0 + t], gv)
        a3 = vaxpy(a3, x[ub, i3, u0 + t], gv)
    vstore(parts, r0, a0)
    vstore(parts, r1, a1)
    vstore(parts, r2, a2)
    vstore(parts, r3, a3)


@njit(inline="always", cache=True)
def _grad_w_part(x, g, parts, p, gt, rows):
    """Part ``p`` of the weight gradient: ``parts[p, i, :O] = Σ x[b, i, t] · g[b, :, t]``
    over the jobs ``p·J/P .. (p+1)·J/P`` of :func:`_job_span` (``P`` parts of ``J``
    jobs), jobs and their steps in order, each term one :data:`LANE`-wide multiply, then
    add, of the step's output-gradient row ``gt[t] = g[b, :, t]`` (padded with zeros;
    flat ``(STEP_BLOCK, LANE)``); a job's input rows without a non-zero value are
    skipped, the others summed four at a time (:func:`_grad_w_rows4`; ``rows``: scratch
    for their indices)."""
    n_b, n_i, steps = x.shape
    n_o = g.shape[1]
    n_parts = parts.shape[0] // (n_i * LANE)
    jobs = _n_jobs(n_b, steps)
    lane = np.uint64(LANE)
    base = np.uint64(p) * np.uint64(n_i) * lane
    for j in range(np.uint64(n_i) * lane):
        parts[base + j] = 0.0
    for j in range(np.uint64(STEP_BLOCK) * lane):
        gt[j] = 0.0
    for job in range(p * jobs // n_parts, (p + 1) * jobs // n_parts):
        b, t0, t1 = _job_span(job, steps)
        ub, u0, span = np.uint64(b), np.uint64(t0), np.uint64(t1 - t0)
        for o in range(np.uint64(n_o)):
            for t in range(span):
                gt[t * lane + o] = g[ub, o, u0 + t]
        n = 0
        for i in range(np.uint64(n_i)):
            nz = np.int32(0)
            for t in range(span):
                nz += np.int32(x[ub, i, u0 + t] != 0)
            if nz != 0:
                rows[n] = i
                n += 1
        k = 0
        while k + 4 <= n:
            _grad_w_rows4(x, ub, u0, span, rows, k, parts, base, gt)
            k += 4
        for last in range(k, n):
            r = base + np.uint64(rows[last]) * lane
            a = vload(parts, r)
            for t in range(span):
                a = vaxpy(a, x[ub, rows[last], u0 + t], vload(gt, t * lane))
            vstore(parts, r, a)


@njit(inline="always", cache=True)
def _sum_parts(parts, n_parts, out):
    """``out[o, i] = Σ_p parts[p, i, o]`` (flat ``(I, LANE)`` blocks), the parts in
    order: the weight gradient ``(O, I)``."""
    n_o, n_i = out.shape
    size = n_i * LANE
    for o in range(n_o):
        for i in range(n_i):
            a = parts[i * LANE + o]
            for p in range(1, n_parts):
                a += parts[p * size + i * LANE + o]
            out[o, i] = a


@njit(parallel=True, cache=True)
def _grad_w_parallel(x, g, parts, out):
    """:func:`_grad_w_part` for every part, one job each, then their sum into the weight
    gradient ``out`` ``(O, I)``."""
    n_parts = parts.shape[0] // (x.shape[1] * LANE)
    for p in prange(n_parts):
        gt = np.empty(STEP_BLOCK * LANE, np.float32)
        rows = np.empty(x.shape[1], np.int64)
        _grad_w_part(x, g, parts, p, gt, rows)
    _sum_parts(parts, n_parts, out)


@njit(cache=True)
def _grad_w_serial(x, g, parts, out):
    """:func:`_grad_w_parallel` on the calling thread."""
    n_parts = parts.shape[0] // (x.shape[1] * LANE)
    gt = np.empty(STEP_BLOCK * LANE, np.float32)
    rows = np.empty(x.shape[1], np.int64)
    for p in range(n_parts):
        _grad_w_part(x, g, parts, p, gt, rows)
    _sum_parts(parts, n_parts, out)


#: kernels by whether the work pays for a parallel region
_FORWARD = {True: _forward_parallel, False: _forward_serial}
_GRAD_X = {True: _grad_x_parallel, False: _grad_x_serial}
_GRAD_W = {True: _grad_w_parallel, False: _grad_w_serial}


class Refused(Exception):
    """An input the exact product cannot take (see the module): the caller's float GEMM."""


class NarrowDenseProduct(torch.autograd.Function):
    """``z = w2 @ x3`` (``(O, I)`` by time-last ``(B, I, T)``, ``O <=`` :data:`LANE`),
    raising :class:`Refused` where an input is not exact (see the module; ``top_m``
    bounds the weights' grid mantissas); backward: the input gradient neuron-last (a
    time-last view) and the weight gradient by the kernels, or, with ``create_graph``
    (a gradient of the gradient), by differentiable PyTorch products."""

    @staticmethod
    def forward(ctx, x3, w2, top_m):
        n_b, n_i, steps = x3.shape
        z = torch.empty((n_b, w2.shape[0], steps), dtype=torch.float32)
        kernel = _FORWARD[use_parallel(n_b * n_i, steps, light=True)]
        bad, top = kernel(x3.detach().numpy(), w2.detach().contiguous().numpy(), z.numpy())
        if bad or n_i * top_m * int(top) >= FLOAT32_EXACT:
            raise Refused
        ctx.save_for_backward(x3, w2)
        return z

    @staticmethod
    def backward(ctx, g):
        x3, w2 = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph: gradients that are differentiable again
            g_x = torch.matmul(w2.t(), g) if ctx.needs_input_grad[0] else None
            g_w = torch.einsum("bot,bit->oi", g, x3) if ctx.needs_input_grad[1] else None
            return g_x, g_w, None
        g = g.contiguous()
        n_b, n_i, steps = x3.shape
        g_x = g_w = None
        gn = g.detach().numpy()
        if ctx.needs_input_grad[0]:
            out = kept_empty("narrow product input gradient", (n_b, steps, n_i), g.dtype)
            kernel = _GRAD_X[use_parallel(n_b * steps, n_i, light=True)]
            kernel(gn, w2.detach().contiguous().numpy(), out.numpy())
            g_x = out.transpose(1, 2)
        if ctx.needs_input_grad[1]:
            jobs = n_b * -(-steps // STEP_BLOCK)
            parts = np.empty(min(GRAD_PARTS, jobs) * n_i * LANE, np.float32)
            g_w = torch.empty(tuple(w2.shape), dtype=torch.float32)
            kernel = _GRAD_W[use_parallel(n_b * n_i, steps, light=True)]
            kernel(x3.detach().numpy(), gn, parts, g_w.numpy())
        return g_x, g_w, None


def narrow_product(
    x3: torch.Tensor, w2: torch.Tensor, grid: tuple[torch.Tensor, float, int] | None = None
) -> torch.Tensor | None:
    """``w2 @ x3`` by :class:`NarrowDenseProduct` where it applies and is exact (see the
    module: eager CPU float32, at most :data:`NARROW_MAX` outputs, weights on a
    power-of-two grid, every input an integer in ``[-128, 127]``, the float32 bound),
    else None: the caller keeps the float GEMM. ``grid``: ``w2``'s ``(m, unit, max |m|)``
    where the caller knows it (a quantizer's, :func:`~loihi_slayer.quantize.int8_grid`),
    else found here (:func:`~loihi_slayer.synapse._int_product.weight_grid`)."""
    plan = narrow_plan(x3, w2, grid)
    if plan is None:
        return None
    try:
        return plan[0].apply(*plan[1])
    except Refused:
        return None


def narrow_plan(
    x3: torch.Tensor, w2: torch.Tensor, grid: tuple[torch.Tensor, float, int] | None = None
) -> tuple[type[torch.autograd.Function], tuple] | None:
    """``(NarrowDenseProduct, its arguments)`` where :func:`narrow_product` would run it,
    else None; its forward still raises :class:`Refused` on an input it cannot take."""
    if (
        w2.shape[0] > NARROW_MAX
        or x3.device.type != "cpu"
        or w2.device.type != "cpu"
        or x3.dtype != torch.float32
        or w2.dtype != torch.float32
        or not x3.is_contiguous()
        or x3.numel() == 0
        or torch.compiler.is_compiling()
    ):
        return None
    if grid is None:
        grid = weight_grid(w2)
    if grid is None or grid[1] < UNIT_MIN:
        return None
    return NarrowDenseProduct, (x3, w2, grid[2])


__all__ = ["NARROW_MAX", "NarrowDenseProduct", "Refused", "narrow_plan", "narrow_product"]
