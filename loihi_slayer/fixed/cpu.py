"""numba ``njit`` CPU integer synapse kernels: over output rows, time innermost.

The neuron kernels (CUBA and sigma-delta included) are generated from their
step functions (:mod:`.codegen`); this module holds the synapses. Arrays are
time-last; compilation is lazy and cached on disk (``cache=True``). Each kernel
computes the jobs (batch item and output neuron or channel) ``[job0, job1)`` with
the GIL released, and its ``*_parallel`` form runs ranges of them in a ``prange``:
:func:`.workers.run_shared` shares the jobs among the worker threads (an emulator run)
or runs that form.
"""

from __future__ import annotations

import functools

import numpy as np
from numba import njit, prange

from .._numba_cache import guard_cache_writes

guard_cache_writes()  # numba's failed cache writes: warnings (see _numba_cache)


#: the synaptic sums' signed 24-bit wrap (lava-nc's Conv): ``((s + WRAP_HALF) & WRAP_MASK) -
#: WRAP_HALF`` lies in ``[-2**23, 2**23)``; the one source for every convolution kernel
WRAP_HALF = 1 << 23
WRAP_MASK = (1 << 24) - 1


@njit(inline="always", cache=True)
def _shifted(acc, weight_exp):
    """The synaptic sum scaled by ``2**weight_exp`` (floor for a negative exponent)."""
    if weight_exp >= 0:
        return acc * (1 << weight_exp)
    return acc >> (-weight_exp)


@njit(inline="always", cache=True)
def _add_pixel(acc, w, x, b, ci, iy, ix, graded):
    """``acc[:] += w * x[b, ci, iy, ix, :]`` (0/1 spikes unless ``graded``)."""
    if w == 0:
        return
    if graded:
        for t in range(acc.shape[0]):
            acc[t] += w * x[b, ci, iy, ix, t]
    else:
        for t in range(acc.shape[0]):
            if x[b, ci, iy, ix, t] != 0:
                acc[t] += w


@njit(inline="always", cache=True)
def _store_wrapped(out, acc, b, co, oy, ox, weight_exp):
    """Shift by the exponent and wrap to signed 24 bit (lava-nc's Conv)."""
    for t in range(acc.shape[0]):
        out[b, co, oy, ox, t] = ((_shifted(acc[t], weight_exp) + WRAP_HALF) & WRAP_MASK) - WRAP_HALF


@njit(nogil=True, cache=True)
def dense_kernel(x, weight, weight_exp, graded, out, job0, job1):
    """``out[b, o, t] = shift(sum_i weight[o, i] * x[b, i, t], weight_exp)`` for the jobs
    ``b n_out + o`` in ``[job0, job1)``."""
    _, n_in, steps = x.shape
    n_out = weight.shape[0]
    for job in range(job0, job1):
        b = job // n_out
        o = job % n_out
        acc = np.zeros(steps, np.int64)
        for i in range(n_in):
            w = np.int64(weight[o, i])
            if w == 0:
                continue
            if graded:
                for t in range(steps):
                    acc[t] += w * x[b, i, t]
            else:
                for t in range(steps):
                    if x[b, i, t] != 0:
                        acc[t] += w
        for t in range(steps):
            out[b, o, t] = _shifted(acc[t], weight_exp)


@njit(nogil=True, cache=True)
def conv2d_kernel(x, weight, sh, sw, ph, pw, dh, dw, groups, weight_exp, graded, out, job0, job1):
    """Integer cross-correlation, time-last; sum shifted by the exponent, wrapped to 24 bit;
    the jobs ``b C_out + c_o`` in ``[job0, job1)``."""
    _, _, h, wd, steps = x.shape
    c_out, c_per_group, kh, kw = weight.shape
    h_out, w_out = out.shape[2], out.shape[3]
    out_per_group = c_out // groups
    for job in range(job0, job1):
        b = job // c_out
        co = job % c_out
        g = co // out_per_group
        acc = np.zeros(steps, np.int64)
        for oy in range(h_out):
            for ox in range(w_out):
                acc[:] = 0
                for cl in range(c_per_group):
                    ci = g * c_per_group + cl
                    for ky in range(kh):
                        iy = oy * sh - ph + ky * dh
                        if iy < 0 or iy >= h:
                            continue
                        for kx in range(kw):
                            ix = ox * sw - pw + kx * dw
                            if ix < 0 or ix >= wd:
                                continue
                            w = np.int64(weight[co, cl, ky, kx])
                            _add_pixel(acc, w, x, b, ci, iy, ix, graded)
                _store_wrapped(out, acc, b, co, oy, ox, weight_exp)


@njit(nogil=True, cache=True)
def conv_transpose2d_kernel(
    x, weight, sh, sw, ph, pw, dh, dw, groups, weight_exp, graded, out, job0, job1
):
    """Integer transposed convolution as a gather, time-last; wrapped to 24 bit; the jobs
    ``b C_out + c_o`` in ``[job0, job1)``."""
    _, c_in, h, wd, steps = x.shape
    _, out_per_group, kh, kw = weight.shape
    c_out, h_out, w_out = out.shape[1], out.shape[2], out.shape[3]
    in_per_group = c_in // groups
    for job in range(job0, job1):
        b = job // c_out
        co = job % c_out
        g = co // out_per_group
        col = co % out_per_group
        acc = np.zeros(steps, np.int64)
        for oy in range(h_out):
            for ox in range(w_out):
                acc[:] = 0
                for cl in range(in_per_group):
                    ci = g * in_per_group + cl
                    for ky in range(kh):
                        ny = oy + ph - ky * dh
                        if ny < 0 or ny % sh != 0 or ny // sh >= h:
                            continue
                        iy = ny // sh
                        for kx in range(kw):
                            nx = ox + pw - kx * dw
                            if nx < 0 or nx % sw != 0 or nx // sw >= wd:
                                continue
                            ix = nx // sw
                            w = np.int64(weight[ci, col, ky, kx])
                            _add_pixel(acc, w, x, b, ci, iy, ix, graded)
                _store_wrapped(out, acc, b, co, oy, ox, weight_exp)


@njit(parallel=True, cache=True)
def dense_kernel_parallel(x, weight, weight_exp, graded, out, parts):
    """:func:`dense_kernel` over the job ranges ``parts`` (``(k, 2)``) in a ``prange``."""
    for k in prange(parts.shape[0]):
        dense_kernel(x, weight, weight_exp, graded, out, parts[k, 0], parts[k, 1])


@njit(parallel=True, cache=True)
def _conv_parallel(
    transpose, x, weight, sh, sw, ph, pw, dh, dw, groups, weight_exp, graded, out, parts
):
    """:func:`conv2d_kernel` (or :func:`conv_transpose2d_kernel`) over the job ranges
    ``parts`` in a ``prange``."""
    geometry = (sh, sw, ph, pw, dh, dw, groups, weight_exp, graded)
    for k in prange(parts.shape[0]):
        if transpose:
            conv_transpose2d_kernel(x, weight, *geometry, out, parts[k, 0], parts[k, 1])
        else:
            conv2d_kernel(x, weight, *geometry, out, parts[k, 0], parts[k, 1])


#: each range kernel's ``prange`` form, for :func:`.workers.run_shared`
PARALLEL = {
    dense_kernel: dense_kernel_parallel,
    conv2d_kernel: functools.partial(_conv_parallel, False),
    conv_transpose2d_kernel: functools.partial(_conv_parallel, True),
}
