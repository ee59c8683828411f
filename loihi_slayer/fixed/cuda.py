"""numba.cuda kernels with the same signatures as the njit kernels in :mod:`.cpu`.

One thread per neuron (neuron kernels) or per output element (synapse
kernels). The per-step arithmetic comes from :mod:`.dynamics`, compiled here as
device functions, so CPU and GPU cannot drift apart. Importing this module
needs ``numba-cuda`` (``pip install loihi_slayer[cuda]``); nothing is compiled
until a kernel is first launched. Under ``NUMBA_ENABLE_CUDASIM=1`` the kernels
run in numba's CUDA simulator (used in CI).
"""

from __future__ import annotations

from numba import config, cuda

from . import dynamics

THREADS = 128

_sdnn_step = cuda.jit(device=True)(dynamics.sdnn_step)


@cuda.jit(device=True)
def _shift_wrap24(acc, weight_exp):
    """Scale by ``2**weight_exp`` (floor if negative) and wrap to signed 24 bit."""
    if weight_exp >= 0:
        acc = acc * (1 << weight_exp)
    else:
        acc = acc >> (-weight_exp)
    return ((acc + 8388608) & 16777215) - 8388608


@cuda.jit(device=True)
def _unravel5(idx, d1, d2, d3, d4):
    """Split a flat index over ``(·, d1, d2, d3, d4)`` (C order)."""
    i4 = idx % d4
    rest = idx // d4
    i3 = rest % d3
    rest = rest // d3
    i2 = rest % d2
    rest = rest // d2
    return rest // d1, rest % d1, i2, i3, i4


def launch(n: int) -> tuple[int, int]:
    """(blocks, threads per block) covering ``n`` work items.

    The simulator runs every thread of a block as a Python thread, so there a
    block is no larger than the work (CI runs the CUDA tests simulated).
    """
    threads = THREADS
    if config.ENABLE_CUDASIM:
        threads = max(1, min(n, 32))
    return max(1, (n + threads - 1) // threads), threads


@cuda.jit
def dense_kernel(x, weight, weight_exp, graded, out):
    """One thread per output element ``(b, o, t)``."""
    idx = cuda.grid(1)
    batch, n_in, steps = x.shape
    n_out = weight.shape[0]
    if idx >= batch * n_out * steps:
        return
    t = idx % steps
    o = (idx // steps) % n_out
    b = idx // (steps * n_out)
    acc = out[b, o, t] - out[b, o, t]  # typed int64 zero
    for i in range(n_in):
        xv = x[b, i, t]
        if xv != 0:
            if graded:
                acc += weight[o, i] * xv
            else:
                acc += weight[o, i]
    if weight_exp >= 0:
        out[b, o, t] = acc * (1 << weight_exp)
    else:
        out[b, o, t] = acc >> (-weight_exp)


@cuda.jit
def conv2d_kernel(x, weight, sh, sw, ph, pw, dh, dw, groups, weight_exp, graded, out):
    """One thread per output element ``(b, co, oy, ox, t)``; 24-bit wrapped sum."""
    idx = cuda.grid(1)
    batch, c_in, h, wd, steps = x.shape
    c_out, c_per_group, kh, kw = weight.shape
    h_out = out.shape[2]
    w_out = out.shape[3]
    if idx >= batch * c_out * h_out * w_out * steps:
        return
    b, co, oy, ox, t = _unravel5(idx, c_out, h_out, w_out, steps)
    g = co // (c_out // groups)
    acc = out[b, co, oy, ox, t] - out[b, co, oy, ox, t]
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
                xv = x[b, ci, iy, ix, t]
                if xv != 0:
                    if graded:
                        acc += weight[co, cl, ky, kx] * xv
                    else:
                        acc += weight[co, cl, ky, kx]
    out[b, co, oy, ox, t] = _shift_wrap24(acc, weight_exp)


@cuda.jit
def conv_transpose2d_kernel(x, weight, sh, sw, ph, pw, dh, dw, groups, weight_exp, graded, out):
    """One thread per output element; gather form of the transposed convolution."""
    idx = cuda.grid(1)
    batch, c_in, h, wd, steps = x.shape
    out_per_group = weight.shape[1]
    kh = weight.shape[2]
    kw = weight.shape[3]
    c_out = out.shape[1]
    h_out = out.shape[2]
    w_out = out.shape[3]
    if idx >= batch * c_out * h_out * w_out * steps:
        return
    b, co, oy, ox, t = _unravel5(idx, c_out, h_out, w_out, steps)
    g = co // out_per_group
    col = co % out_per_group
    in_per_group = c_in // groups
    acc = out[b, co, oy, ox, t] - out[b, co, oy, ox, t]
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
                xv = x[b, ci, iy, ix, t]
                if xv != 0:
                    if graded:
                        acc += weight[ci, col, ky, kx] * xv
                    else:
                        acc += weight[ci, col, ky, kx]
    out[b, co, oy, ox, t] = _shift_wrap24(acc, weight_exp)
