r"""Exact convolution sums computed pixel by pixel, time steps in vector lanes (no im2col).

For a convolution with a small fan-in (PilotNet's first layer: 3 channels, 3 x 3 taps),
im2col + GEMM spends most of its time moving data: the columns (fan-in times the
output's values) are written, read by the GEMM, its sums written and read back by the
store. Here each output pixel's sums are formed in registers straight from the input
stream (:mod:`._tap_sums`): for output channels :math:`o` in blocks of eight and time
steps in runs of 16 or 32,

.. math::

    a[o, o_y, o_x, t] = \sum_{(c, k_y, k_x)\ \mathrm{valid}}
        w[o, c, k_y, k_x]\; x[c, i_y(o_y, k_y), i_x(o_x, k_x), t - \ell],

over the taps that land inside the input (:func:`tap_index`: any stride,
padding, dilation, groups, transposed or not, as im2col's), then shifted by the weight
exponent, wrapped to signed 24 bit and written as the pixel's ``T`` contiguous int32
values of each channel (``(C_out, H_out, W_out, T)``, time last).

The input is first delayed by the latency :math:`\ell` and converted to float32 with
the time axis padded with zeros to a multiple of 16 (:func:`.synapse_fast._delayed`).
The float32 sums are exact under the same condition as the float32 GEMM's (every
product and partial sum an integer below :math:`2^{24}`): the caller takes this path
only where that GEMM's plan is float32.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .._numba_cache import guard_cache_writes
from . import cpu
from ._tap_sums import OUTPUTS, tap_sums_16, tap_sums_32

guard_cache_writes()  # numba's failed cache writes: warnings (see _numba_cache)

__all__ = ["OUTPUTS", "STEP_BLOCK", "pixel_rows", "pixel_weights", "padded_steps", "tap_index"]

#: the padded time axis is a multiple of this (the intrinsics' vector width)
STEP_BLOCK = 16

_WRAP_HALF = cpu.WRAP_HALF
_WRAP_MASK = cpu.WRAP_MASK


def padded_steps(steps: int) -> int:
    """The time axis of the converted input and of the sums: ``steps`` rounded up to a
    multiple of :data:`STEP_BLOCK`."""
    return -(-steps // STEP_BLOCK) * STEP_BLOCK


def pixel_weights(mats: np.ndarray) -> np.ndarray:
    """``(groups, fan_in, O_pad)`` float32 copy of the ``(groups, g_out, fan_in)`` weight
    matrices: one tap's output channels side by side, padded with zeros to a multiple
    of :data:`OUTPUTS`."""
    groups, g_out, fan_in = mats.shape
    padded = -(-g_out // OUTPUTS) * OUTPUTS
    wt = np.zeros((groups, fan_in, padded), np.float32)
    wt[:, :, :g_out] = np.swapaxes(mats, 1, 2)
    return wt


@njit(inline="always", cache=True)
def tap_index(o, k, stride, pad, dil, size, transpose):
    """Input index feeding output ``o`` through kernel tap ``k`` (-1 if none), along
    one axis of a convolution (``transpose``: of a transposed one); im2col's too."""
    if transpose:
        m = o + pad - k * dil
        if m < 0 or m % stride != 0:
            return -1
        i = m // stride
    else:
        i = o * stride - pad + k * dil
    if i < 0 or i >= size:
        return -1
    return i


@njit(nogil=True, cache=True)
def pixel_rows(
    xp,
    wt,
    kh,
    kw,
    sh,
    sw,
    ph,
    pw,
    dh,
    dw,
    transpose,
    weight_exp,
    rows,
    xoffs,
    woffs,
    sums,
    out,
):
    """Output rows ``rows`` of a convolution, pixel by pixel (see the module docstring).

    ``xp``: the input delayed by the latency, ``(C_in, H, W, T_pad)`` float32 (C order,
    ``T_pad`` :func:`padded_steps`, zeros past ``T``); ``wt``: :func:`pixel_weights`;
    the geometry as :func:`~.synapse_fast.conv2d`'s; ``xoffs``, ``woffs``: int64
    scratch of at least the fan-in; ``sums``: float32 scratch of ``O_pad * T_pad``;
    ``out``: ``(C_out, H_out, W_out, T)`` int32, rows ``rows`` written with the sums
    shifted by ``weight_exp`` and wrapped to signed 24 bit.
    """
    c_in, h, wd, tp = xp.shape
    groups, fan_in, o_pad = wt.shape
    c_out, h_out, w_out, steps = out.shape
    per_group = c_in // groups
    g_out = c_out // groups
    xf = xp.reshape(-1)
    wf = wt.reshape(-1)
    flat_out = out.reshape(-1)
    width = np.uint64(steps)
    # the shift by the weight exponent without a branch per value (the loop vectorises):
    # a multiply by 2**e for e >= 0, else an arithmetic (floor) shift right by -e
    scale = np.int64(1) << max(weight_exp, 0)
    right = max(-weight_exp, 0)
    iys = np.empty(kh, np.int64)
    ixs = np.empty(kw, np.int64)
    wide = tp % 32 == 0
    for oy in rows:
        for ky in range(kh):
            iys[ky] = tap_index(oy, ky, sh, ph, dh, h, transpose)
        for ox in range(w_out):
            for kx in range(kw):
                ixs[kx] = tap_index(ox, kx, sw, pw, dw, wd, transpose)
            for g in range(groups):
                n = 0
                for ci in range(per_group):
                    for ky in range(kh):
                        iy = iys[ky]
                        if iy < 0:
                            continue
                        for kx in range(kw):
                            ix = ixs[kx]
                            if ix < 0:
                                continue
                            xoffs[n] = (((g * per_group + ci) * h + iy) * wd + ix) * tp
                            woffs[n] = (g * fan_in + (ci * kh + ky) * kw + kx) * o_pad
                            n += 1
                for ob in range(0, o_pad, OUTPUTS):
                    if wide:
                        for t0 in range(0, tp, 32):
                            tap_sums_32(sums, ob * tp + t0, tp, xf, xoffs, t0, wf, woffs, ob, 0, n)
                    else:
                        for t0 in range(0, tp, 16):
                            tap_sums_16(sums, ob * tp + t0, tp, xf, xoffs, t0, wf, woffs, ob, 0, n)
                for o in range(g_out):
                    dst = np.uint64(((g * g_out + o) * h_out + oy) * w_out + ox) * width
                    src = np.uint64(o * tp)
                    for t in range(width):
                        s = (np.int64(sums[src + t]) * scale) >> right
                        flat_out[dst + t] = ((s + _WRAP_HALF) & _WRAP_MASK) - _WRAP_HALF
