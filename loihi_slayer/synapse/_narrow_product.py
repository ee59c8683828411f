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
threads too): the forward adds ``x[b, i, t]`` times the weight column ``w[:, i]`` into
row ``t`` of a job's ``(STEP_BLOCK, LANE)`` accumulator, the weight gradient
``x[b, i, t]`` times the output gradient's row ``g[b, :, t]`` into row ``i`` of an
``(I, LANE)`` one, each term one vector multiply and add
(:func:`~loihi_slayer.autograd._lane_scan.axpy16`; as loops of 16 they stayed scalar),
and both skip runs of an input row without a non-zero value (spikes). The input
gradient is written neuron-last ``(B, T, I)`` (loops over ``I``, whole vectors; a CUBA
neuron's backward reads that layout without a copy) and returned as a time-last view.
On N-MNIST's 128 -> 10 layer (32 x 128 x 60 spikes, 12 % ones) inside training steps:
forward 93 us, input gradient 75 us, weight gradient 70 us.

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
from ..autograd._lane_scan import axpy16
from ._int_product import FLOAT32_EXACT, INT8_MAX, INT8_MIN, UNIT_MIN, weight_grid

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
def _forward_job(x, wt, z, job, acc):
    """Job ``job`` (:func:`_job_span`: item ``b``, steps ``t0 .. t1``): ``z[b, :, t] =
    Σ_i x[b, i, t] · wt[i, :O]`` (``wt`` from :func:`_lane_columns`), ``i`` in order,
    each term one :data:`LANE`-wide multiply-add
    (:func:`~loihi_slayer.autograd._lane_scan.axpy16`) into the flat ``(t1 - t0, LANE)``
    accumulator ``acc``; runs of an input row without a non-zero value are skipped
    (their terms are zeros). Returns ``(refused, max |x|)``, ``refused`` 1 where a value
    is not an integer in ``[-128, 127]`` (NaN and inf included). Unsigned indices: no
    wrap-around checks, so the run tests vectorise."""
    n_i, steps = x.shape[1], x.shape[2]
    n_o = z.shape[1]
    b, t0, t1 = _job_span(job, steps)
    ub, u0, span = np.uint64(b), np.uint64(t0), np.uint64(t1 - t0)
    lane = np.uint64(LANE)
    for j in range(span * lane):
        acc[j] = 0.0
    bad = np.int32(0)
    top = np.int32(0)
    for i in range(np.uint64(n_i)):
        nz = np.int32(0)
        for t in range(span):  # integer reductions: vectorised (a float max is not)
            v = x[ub, i, u0 + t]
            q = np.int32(min(max(v, _LO), _HI))
            bad |= np.int32(np.float32(q) != v)
            a = abs(q)
            top = max(top, a)
            nz += np.int32(a > 0)
        if nz == 0:
            continue
        for t in range(span):
            axpy16(acc, t * lane, x[ub, i, u0 + t], wt, i * lane)
    for o in range(np.uint64(n_o)):
        for t in range(span):
            z[ub, o, u0 + t] = acc[t * lane + o]
    return bad, top


@njit(inline="always", cache=True)
def _lane_columns(w2):
    """The weight columns ``w2[:, i]`` as rows of :data:`LANE` values, zero-padded: the
    flat ``(I, LANE)`` operand of :func:`_forward_job`."""
    n_o, n_i = w2.shape
    wt = np.zeros(n_i * LANE, np.float32)
    for o in range(n_o):
        for i in range(n_i):
            wt[i * LANE + o] = w2[o, i]
    return wt


@njit(parallel=True, cache=True)
def _forward_parallel(x, w2, z):
    """:func:`_forward_job` for every job; returns ``(refused, max |x|)``."""
    wt = _lane_columns(w2)
    jobs = _n_jobs(x.shape[0], x.shape[2])
    bad = np.zeros(jobs, np.int32)
    top = np.zeros(jobs, np.int32)
    for job in prange(jobs):
        acc = np.empty(STEP_BLOCK * LANE, np.float32)
        bad[job], top[job] = _forward_job(x, wt, z, job, acc)
    return bad.max(), top.max()


@njit(cache=True)
def _forward_serial(x, w2, z):
    """:func:`_forward_parallel` on the calling thread."""
    wt = _lane_columns(w2)
    bad, top = np.int32(0), np.int32(0)
    acc = np.empty(STEP_BLOCK * LANE, np.float32)
    for job in range(_n_jobs(x.shape[0], x.shape[2])):
        e, m = _forward_job(x, wt, z, job, acc)
        bad |= e
        top = max(top, m)
    return bad, top


@njit(inline="always", cache=True)
def _grad_x_row(g, w, out, bt):
    """``out[b, t, :] = Σ_o g[b, o, t] · w[o, :]`` for row ``bt = b·T + t``, ``o`` in order
    (the row stays in the L1 cache; its loops run over ``I``, whole vectors)."""
    steps = g.shape[2]
    n_o, n_i = w.shape
    b, t = bt // steps, bt % steps
    ub, ut = np.uint64(b), np.uint64(t)
    g0 = g[ub, np.uint64(0), ut]
    for i in range(np.uint64(n_i)):
        out[ub, ut, i] = g0 * w[np.uint64(0), i]
    for o in range(np.uint64(1), np.uint64(n_o)):
        go = g[ub, o, ut]
        for i in range(np.uint64(n_i)):
            out[ub, ut, i] += go * w[o, i]


@njit(parallel=True, cache=True)
def _grad_x_parallel(g, w, out):
    """:func:`_grad_x_row` for every row ``(b, t)``."""
    for bt in prange(g.shape[0] * g.shape[2]):
        _grad_x_row(g, w, out, bt)


@njit(cache=True)
def _grad_x_serial(g, w, out):
    """:func:`_grad_x_parallel` on the calling thread."""
    for bt in range(g.shape[0] * g.shape[2]):
        _grad_x_row(g, w, out, bt)


@njit(inline="always", cache=True)
def _grad_w_part(x, g, parts, p, gt):
    """Part ``p`` of the weight gradient: ``parts[p, i, :O] = Σ x[b, i, t] · g[b, :, t]``
    over the jobs ``p·J/P .. (p+1)·J/P`` of :func:`_job_span` (``P`` parts of ``J``
    jobs), jobs and their steps in order, each term one :data:`LANE`-wide multiply-add
    of the step's output-gradient row ``gt[t] = g[b, :, t]`` (padded with zeros; flat
    ``(STEP_BLOCK, LANE)``); runs of an input row without a non-zero value are skipped."""
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
        for i in range(np.uint64(n_i)):
            nz = np.int32(0)
            for t in range(span):
                nz += np.int32(x[ub, i, u0 + t] != 0)
            if nz == 0:
                continue
            for t in range(span):
                axpy16(parts, base + i * lane, x[ub, i, u0 + t], gt, t * lane)


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
        _grad_w_part(x, g, parts, p, gt)
    _sum_parts(parts, n_parts, out)


@njit(cache=True)
def _grad_w_serial(x, g, parts, out):
    """:func:`_grad_w_parallel` on the calling thread."""
    n_parts = parts.shape[0] // (x.shape[1] * LANE)
    gt = np.empty(STEP_BLOCK * LANE, np.float32)
    for p in range(n_parts):
        _grad_w_part(x, g, parts, p, gt)
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
        kernel = _FORWARD[use_parallel(n_b * n_i, steps)]
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
            kernel = _GRAD_X[use_parallel(n_b * steps, n_i)]
            kernel(gn, w2.detach().contiguous().numpy(), out.numpy())
            g_x = out.transpose(1, 2)
        if ctx.needs_input_grad[1]:
            jobs = n_b * -(-steps // STEP_BLOCK)
            parts = np.empty(min(GRAD_PARTS, jobs) * n_i * LANE, np.float32)
            g_w = torch.empty(tuple(w2.shape), dtype=torch.float32)
            kernel = _GRAD_W[use_parallel(n_b * n_i, steps)]
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
