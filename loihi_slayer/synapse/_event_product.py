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

The forward is exact: integer sums in int32 (at most ``I · 128 · 128 < 2^{31}`` for the
sizes the caller admits), times :math:`u` (a power of two) into float32 below the
:math:`2^{24}` bound the caller checks, so the output is the float GEMM's bit for bit.
The weight gradient sums float32 rows in a fixed order (per input: batch, then time),
not the GEMM's: its values equal the float product's up to that order.

Layout: the input's int8 values ``q`` ``(I, B, T)`` (the int8 operand of
:mod:`~loihi_slayer.synapse._int_product`, one vectorised pass with its checks). Each
kernel lists the events of a row (its non-zero steps) as it goes (:func:`_events_in`).
The forward runs jobs of one batch item and a block of steps, whose ``(steps, O)``
int32 sums stay in the L1/L2 cache; the weight gradient runs one job per input, owning
its gradient row.
"""

from __future__ import annotations

import numpy as np
import torch
from numba import njit, prange

from .._threads import follow_torch_threads

#: largest fraction of non-zero inputs for which the event product replaces the GEMM
#: (``benchmarks/bench_event_product.py`` on a 2-core AVX2 machine: forward + weight
#: gradient at 0.55-0.80 of the GEMM path's time up to density 0.10, break-even at
#: 0.15-0.20 by shape; random input, spikes of real data cluster and do better)
MAX_DENSITY = 0.12
#: the event weight gradient's break-even density against the float32 GEMM, for
#: gradients of :data:`GRAD_CACHE_BYTES` or less (see :func:`grad_max_density`)
GRAD_MAX_DENSITY = 0.2
#: gradient size at which the event weight gradient's break-even density has halved: its
#: rows no longer stay in the L2 cache
GRAD_CACHE_BYTES = 4 << 20
#: bytes of one forward job's int32 sums (a block of steps times the outputs): L2-sized
SUMS_BYTES = 1 << 16
#: after a dense input, an owner's next products skip the event pass this many times
DENSE_RETRY = 16


@njit(inline="always", cache=True)
def _events_in(q, i, b, t0, t1, idx):
    """The steps ``t0 <= t < t1`` where ``q[i, b, t] != 0`` into ``idx`` (ascending);
    returns their count. Branch-free (every step is written at the next free place,
    which advances only past a non-zero value), indexed directly: a slice in a parallel
    region costs an atomic reference count that the threads share. The indices are
    unsigned, so numba adds no negative-index wrap-around to either access (the forward
    and weight-gradient kernels paired 0.89 and 0.95 against signed ones)."""
    n = np.uint64(0)
    for t in range(np.uint64(t0), np.uint64(t1)):
        idx[n] = t
        n += np.uint64(q[i, b, t] != 0)
    return np.int64(n)


@njit(parallel=True, cache=True)
def forward_events(q, counts, mt, unit, block, z, time_major):
    r"""``z = u · Σ_events q · m^T[i]`` (see the module): ``q`` the ``(I, B, T)`` int8
    input, ``counts`` ``(B, I)`` its rows' numbers of events, ``mt`` the ``(I, O)`` int32
    transposed mantissas, ``z`` float32 time-last ``(B, O, T)``, or time-major
    ``(T, B, O)`` when ``time_major``. One job per batch item and block of ``block``
    steps: its sums ``(block, O)`` in int32, each event adding its input's row. A row
    without events is not listed (half the N-MNIST pool layer's rows: the kernel paired
    0.81)."""
    n_i, n_b, steps = q.shape
    n_o = mt.shape[1]
    n_blocks = (steps + block - 1) // block
    for job in prange(n_b * n_blocks):
        b, t0 = job // n_blocks, (job % n_blocks) * block
        t1 = min(t0 + block, steps)
        acc = np.zeros((t1 - t0, n_o), np.int32)
        idx = np.empty(t1 - t0, np.int64)
        for i in range(n_i):
            if counts[b, i] == 0:
                continue
            for k in range(_events_in(q, i, b, t0, t1, idx)):
                t = idx[k]
                v = np.int32(q[i, b, t])
                r = t - t0
                for o in range(n_o):
                    acc[r, o] += v * mt[i, o]
        if time_major:
            for r in range(t1 - t0):
                for o in range(n_o):
                    z[t0 + r, b, o] = np.float32(acc[r, o]) * unit
        else:
            for o in range(n_o):
                for r in range(t1 - t0):
                    z[b, o, t0 + r] = np.float32(acc[r, o]) * unit


@njit(inline="always", cache=True)
def _add_rows4(gwt, i, g, b, t, v, time_major):
    """``gwt[i] += Σ_k v[k] · g[., t[k]]`` for four events ``(b, t[k])`` (tuples): four
    events per pass over the row that is summed into (its load and store shared)."""
    n_o = gwt.shape[1]
    if time_major:
        for o in range(n_o):
            gwt[i, o] += (v[0] * g[t[0], b, o] + v[1] * g[t[1], b, o]) + (
                v[2] * g[t[2], b, o] + v[3] * g[t[3], b, o]
            )
    else:
        for o in range(n_o):
            gwt[i, o] += (v[0] * g[b, t[0], o] + v[1] * g[b, t[1], o]) + (
                v[2] * g[b, t[2], o] + v[3] * g[b, t[3], o]
            )


@njit(inline="always", cache=True)
def _add_rows(gwt, i, g, b, t1, t2, v1, v2, time_major):
    """``gwt[i] += v1 · g[., t1] + v2 · g[., t2]`` (the rows of ``(b, t1)``, ``(b, t2)``):
    two events per pass over the row that is summed into."""
    n_o = gwt.shape[1]
    if time_major:
        for o in range(n_o):
            gwt[i, o] += v1 * g[t1, b, o] + v2 * g[t2, b, o]
    else:
        for o in range(n_o):
            gwt[i, o] += v1 * g[b, t1, o] + v2 * g[b, t2, o]


@njit(inline="always", cache=True)
def _add_row(gwt, i, g, b, t, v, time_major):
    """``gwt[i] += v · g[., t]`` (the row of ``(b, t)``)."""
    n_o = gwt.shape[1]
    if time_major:
        for o in range(n_o):
            gwt[i, o] += v * g[t, b, o]
    else:
        for o in range(n_o):
            gwt[i, o] += v * g[b, t, o]


@njit(parallel=True, cache=True)
def weight_grad_events(q, counts, g, time_major, gwt):
    r"""``gwt[i] = Σ_events q · g[b, :, t]`` (the transposed weight gradient, ``(I, O)``
    float32): ``q`` the ``(I, B, T)`` int8 input, ``counts`` ``(B, I)`` its rows' numbers
    of events (rows without are not listed), ``g`` ``(B, T, O)``, or ``(T, B, O)``
    when ``time_major``, each a C-contiguous array whose rows are the ``O`` gradients of
    one ``(b, t)``. One job per input, summing its events batch by batch, step by
    step, four at a time (:func:`_add_rows4`), then two (:func:`_add_rows`) and one:
    four per pass took 0.92 of two per pass's time on the N-MNIST dense layer's
    weight gradient (paired, 10 rounds)."""
    n_i, n_b, steps = q.shape
    n_o = gwt.shape[1]
    for i in prange(n_i):
        idx = np.empty(steps, np.int64)
        for o in range(n_o):
            gwt[i, o] = 0.0
        for b in range(n_b):
            if counts[b, i] == 0:
                continue
            n = _events_in(q, i, b, 0, steps, idx)
            k = 0
            while k + 4 <= n:
                t = (idx[k], idx[k + 1], idx[k + 2], idx[k + 3])
                v = (
                    np.float32(q[i, b, t[0]]),
                    np.float32(q[i, b, t[1]]),
                    np.float32(q[i, b, t[2]]),
                    np.float32(q[i, b, t[3]]),
                )
                _add_rows4(gwt, i, g, b, t, v, time_major)
                k += 4
            if k + 2 <= n:
                t1, t2 = idx[k], idx[k + 1]
                v1, v2 = np.float32(q[i, b, t1]), np.float32(q[i, b, t2])
                _add_rows(gwt, i, g, b, t1, t2, v1, v2, time_major)
                k += 2
            if k < n:
                t1 = idx[k]
                _add_row(gwt, i, g, b, t1, np.float32(q[i, b, t1]), time_major)


@njit(cache=True)
def transposed_int32(m, out):
    """``out[i, o] = m[o, i]``: the int8 ``(O, I)`` mantissas as the forward's int32
    ``(I, O)`` rows (a quarter of ``m.t().contiguous().to(torch.int32)``'s time on the
    N-MNIST dense layer's 128 x 578: 28 against 108 us)."""
    n_o, n_i = m.shape
    for i in range(n_i):
        for o in range(n_o):
            out[i, o] = m[o, i]


def step_block(n_o: int) -> int:
    """Steps per forward job: ``block · O`` int32 sums in :data:`SUMS_BYTES`."""
    return max(8, SUMS_BYTES // (4 * max(n_o, 1)))


def grad_max_density(grad_bytes: int) -> float:
    r"""The largest input density at which the event weight gradient replaces the float32
    GEMM, for a gradient of ``grad_bytes`` (``B·T·O`` float32):

    .. math::

        d_{max} = \frac{0.2}{1 + \text{grad\_bytes} / 4\,\text{MB}}

    Each event adds a gradient row of ``O`` values; once the rows outgrow the L2 cache an
    event costs about twice as much, while the GEMM's rate stays. Fitted below the
    break-evens measured on an AVX-512 CPU with int8 dot products (event / GEMM time, 1 at
    density: 0.2 for gradients of 0.5-1.9 MB, 0.1-0.15 at 3-4 MB, 0.07 at 6 MB, 0.05 at
    13 MB; ``python benchmarks/bench_event_product.py --grad``), so it picks the events
    only where they win."""
    return GRAD_MAX_DENSITY / (1.0 + grad_bytes / GRAD_CACHE_BYTES)


class EventDenseProduct(torch.autograd.Function):
    """``z = w @ x`` on time-last ``x (B, I, T)`` from its int8 values ``q`` ``(I, B, T)``
    and their numbers of events per row ``counts`` ``(B, I)`` (see the module); the
    output time-last, or a time-last view of time-major ``(T, B, O)`` memory from
    ``z_mem`` (a :class:`~loihi_slayer._recycle.Recycled`). Backward: the weight gradient
    event by event, the input gradient ``w^T g`` (only when the input needs one)."""

    @staticmethod
    def forward(ctx, x3, w2, q, counts, m, unit, z_mem):
        n_b, _, steps = x3.shape
        n_o = w2.shape[0]
        mt = torch.empty((m.shape[1], n_o), dtype=torch.int32)
        transposed_int32(m.contiguous().numpy(), mt.numpy())
        if z_mem is not None:
            zt = z_mem.empty((steps, n_b, n_o), torch.float32)
            z = zt.permute(1, 2, 0)
            out = zt
        else:
            z = out = torch.empty((n_b, n_o, steps), dtype=torch.float32)
        follow_torch_threads()
        forward_events(
            q.numpy(),
            counts.numpy(),
            mt.numpy(),
            np.float32(unit),
            step_block(n_o),
            out.numpy(),
            z_mem is not None,
        )
        ctx.save_for_backward(q, w2)
        ctx.counts = counts
        return z

    @staticmethod
    def backward(ctx, g):
        return (*product_backward(ctx, g, events_weight_grad), None, None, None, None, None)


def product_backward(ctx, g, weight_grad) -> tuple:
    r"""``(input gradient, weight gradient)`` of a dense product ``z = w @ x`` that saved
    ``(q, w2)``: the input gradient :math:`w^\top g` time-last (only when the input needs
    one), the weight gradient from ``weight_grad(ctx, q, g)`` (only when asked)."""
    q, w2 = ctx.saved_tensors
    g_x = g_w = None
    if ctx.needs_input_grad[0]:
        g_x = torch.matmul(w2.t(), g)  # (I, O) @ (B, O, T): time-last, no transpose
    if ctx.needs_input_grad[1]:
        g_w = weight_grad(ctx, q, g)
    return g_x, g_w


def events_weight_grad(ctx, q, g):
    """The weight gradient event by event (:func:`weight_grad_events`), ``(O, I)``, from
    the int8 input ``q`` (``(I, B, T)``, or its ``(I, B·T)`` reshape), ``ctx.counts`` its
    rows' numbers of events and the time-last gradient ``g`` ``(B, O, T)``."""
    q = q.view(q.shape[0], g.shape[0], g.shape[2])
    # rows of O gradients per (b, t): free where g is a view of time-major memory (the
    # fused recurrence's gradient), else one reordering copy
    gt = g.permute(2, 0, 1)
    time_major = gt.is_contiguous()
    if not time_major:
        gt = g.transpose(1, 2).contiguous()
    gwt = torch.empty((q.shape[0], g.shape[1]), dtype=torch.float32)
    follow_torch_threads()
    weight_grad_events(q.numpy(), ctx.counts.numpy(), gt.numpy(), time_major, gwt.numpy())
    return gwt.t()
