r"""Exact convolution sums driven by the input's non-zero values (sparse graded streams).

A sigma-delta network's messages are mostly zero (a PilotNet SDNN's convolutions read
streams with 7-19 % non-zero values), and a GEMM multiplies every zero. Here each
non-zero input value :math:`x[c, y, x, t]` adds :math:`x \cdot w[:, c, k_y, k_x]` to
the output pixels its taps reach, all output channels at once:

.. math::

    a[t, o_y, o_x, :] \mathrel{+}= x[c, i_y, i_x, t]\; w^{\top}[c, k_y, k_x, :],
    \qquad i_y = o_y s_y - p_y + k_y d_y,\; i_x = o_x s_x - p_x + k_x d_x .

The work is the non-zero values times their taps times the output channels, instead
of every input value's. One output row at a time: its sums ``(T, W_out, C_out)`` stay in
the core's cache (the channels padded to whole vectors; the taps one input column sends
to consecutive output columns lie side by side in the sums and in the weights, one run
for all of them; the non-zero channels of one input pixel at one step, listed together
by :func:`compact`, summed in registers before the run of sums is touched), and the row is
then shifted, wrapped to 24 bit, delayed by the synaptic latency and written out
channel-major (``(C_out, H_out, W_out, T)``, time last, as
:func:`~loihi_slayer.fixed.synapse_fast.conv2d` returns it).

The float32 sums are exact integers when the sum bound :math:`B`
(:func:`~loihi_slayer.fixed.synapse_fast.sum_bound`, the weights' common power of two
taken out) is at most :math:`2^{24}`: every product and partial sum, in any order, is
bounded by :math:`B`, as for the float32 GEMM (the caller takes this path only where
that GEMM's plan is float32).
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numba.cpython.unsafe.numbers import trailing_zeros

from .._numba_cache import guard_cache_writes
from . import cpu
from ._gather_add import gather_add_16, gather_add_32, gather_add_48, gather_add_64
from ._transpose import BLOCK, block_out

guard_cache_writes()  # numba's failed cache writes: warnings (see _numba_cache)

__all__ = [
    "EVENT_MAX_DENSITY",
    "EVENT_ROW_ELEMENTS",
    "LANES",
    "MARK_BITS",
    "compact",
    "event_rows",
    "event_weights",
    "events_pay",
    "mark_words",
]

#: the transposed weights and the row sums pad the output channels to a multiple of this,
#: 16-lane multiply-adds (:mod:`._gather_add`) over the padded channels. (A loop that
#: LLVM vectorises runs 64 channels per iteration and the rest in a scalar remainder, so
#: the channels were padded to 64; padded to 48 with 16-lane operations instead,
#: PilotNet SDNN's 36-channel convolution took 0.73-0.80x of the time, the 64-channel
#: ones the same.)
LANES = BLOCK
#: the largest effective density (below) that takes the event path
EVENT_MAX_DENSITY = 0.25
#: the most float32 sums of one output row ``(T, W_out, C_pad)`` a worker keeps (16 MiB):
#: longer rows (long runs, wide layers) take the GEMM, whose tiles are bounded
EVENT_ROW_ELEMENTS = 1 << 22


def events_pay(nonzero: int, size: int, c_out: int, row_steps: int = 1) -> bool:
    """Whether the events cost less than im2col + float32 GEMM: the input's density
    times the channel padding's waste (the events' work per non-zero value is the
    padded channels) at most :data:`EVENT_MAX_DENSITY`.

    Measured on PilotNet SDNN's 3x3 convolutions (AVX-512 EPYC, both paths alternating
    in one process, 9 rounds, paired medians), the channels then padded to 64: input
    density 0.07-0.10 into 64 channels, the events take 0.36-0.51x the GEMM's time;
    0.19 into 36 channels (0.33 effective) 1.00x; 0.42 into 24 (1.1 effective) 1.81x.
    Padded to 16 (:data:`LANES`; Zen 4, 19-21 rounds, four processes): 0.42 into 24
    channels (0.56 effective) 0.77-1.05x, so the crossover now lies near 0.5; the limit
    keeps a margin.
    """
    padded = -(-c_out // LANES) * LANES
    if row_steps * padded > EVENT_ROW_ELEMENTS:  # (``row_steps``: W_out * T)
        return False
    return nonzero * padded <= EVENT_MAX_DENSITY * size * c_out


_WRAP_HALF = cpu.WRAP_HALF
_WRAP_MASK = cpu.WRAP_MASK


def event_weights(weight: np.ndarray, sw: int = 1) -> np.ndarray:
    """``(C_in, kH, sw, J, C_pad)`` float32 copy of a ``(C_out, C_in, kH, kW)`` weight for
    column stride ``sw``: tap ``kx = kW - 1 - (r + j sw)`` at ``[c, ky, r, j]``, so the taps
    that one input column sends to consecutive output columns lie side by side; the
    output channels last, padded with zeros to a multiple of :data:`LANES`
    (``J = ceil(kW / sw)``; slots past the kernel hold zeros)."""
    c_out, c_in, kh, kw = weight.shape
    padded = -(-c_out // LANES) * LANES
    n_j = -(-kw // sw)
    wt = np.zeros((c_in, kh, sw, n_j, padded), np.float32)
    for kx in range(kw):
        r, j = divmod(kw - 1 - kx, sw)[::-1]
        wt[:, :, r, j, :c_out] = np.moveaxis(weight[:, :, :, kx], 0, -1)
    return wt


#: channels per word of :func:`compact`'s marks (a uint64's bits)
MARK_BITS = 64


@njit(cache=True)
def mark_words(channels: int) -> int:
    """The uint64 words of one pixel and step's mark in :func:`compact`: one bit per
    channel."""
    return (channels + MARK_BITS - 1) // MARK_BITS


@njit(nogil=True, cache=True)
def compact(x, y0, y1, first, last, chans, values, hi, lo, marks):
    """The non-zero values of image rows ``y0 .. y1`` of ``x`` (``(C, H, W, T)``,
    C-contiguous) by pixel and step: the channels whose value at pixel ``(y, x)`` and step
    ``t`` is not zero are ``chans[first[g] : last[g]]`` (ascending), their values
    ``values[...]`` (float32), ``g = (y W + x) T + t``; the image rows one after another
    from element ``y0 W C T`` of ``chans`` and ``values`` (so calls on disjoint image rows
    write disjoint parts). ``hi[c H + y]``, ``lo[c H + y]``: ``max(0, max x[c, y])``,
    ``min(0, min x[c, y])`` of each channel's image row (int64), the magnitudes the
    exactness bound needs, in the same pass
    (:func:`~loihi_slayer.fixed.synapse_fast.input_stats` would read the stream again).
    ``marks``: ``(W T mark_words(C),)`` uint64 scratch.

    By pixel and step, not by input row: :func:`event_rows` then adds all of a pixel's
    channels at a step to the same run of sums, in registers (:mod:`._gather_add`).
    Each image row is read twice: first every value, channel by channel along the
    stream's memory (one channel's image row is ``W T`` contiguous values in the marks'
    order: one loop, its extremes reduced once; a unit-stride copy of it for inputs of at
    most 64 channels took the same time), setting bit ``c`` of the mark of ``(x, t)``
    where it is not zero; then, pixel by pixel and step by step,
    the set bits lowest first, their values read back from the image row (in cache),
    the events written in order. (A first version that counted per step and scattered
    the events into place took 1.3-1.7x the time of the row-by-row packing before it;
    this one 0.82-0.87x on PilotNet SDNN's streams, single thread, 19 rounds, and with
    the extremes per image row rather than per pixel another 0.85x.)
    """
    c_in, h, wd, steps = x.shape
    pixels = h * wd
    xf = x.reshape(-1)
    words = mark_words(c_in)
    pos = np.int64(y0) * wd * c_in * steps
    stride = np.uint64(words)
    run = np.uint64(wd * steps)  # one channel's image row: contiguous, in mark order
    for y in range(y0, y1):
        for i in range(wd * steps * words):
            marks[i] = 0
        for c in range(c_in):
            word = np.uint64(c // MARK_BITS)
            bit = np.uint64(c % MARK_BITS)
            src = np.uint64(c * pixels + y * wd) * np.uint64(steps)
            top = np.int64(0)
            bottom = np.int64(0)
            for i in range(run):
                v = np.int64(xf[src + i])
                marks[i * stride + word] |= np.uint64(v != 0) << bit
                top = max(top, v)
                bottom = min(bottom, v)
            hi[c * h + y] = top
            lo[c * h + y] = bottom
        g0 = y * wd * steps
        for ix in range(wd):
            p = y * wd + ix
            for t in range(steps):
                g = ix * steps + t
                first[g0 + g] = pos
                for j in range(words):
                    mask = marks[g * words + j]
                    while mask:
                        c = j * MARK_BITS + trailing_zeros(mask)
                        chans[pos] = c
                        values[pos] = np.float32(xf[(c * pixels + p) * steps + t])
                        pos += 1
                        mask &= mask - np.uint64(1)
                last[g0 + g] = pos


@njit(nogil=True, cache=True)
def _column_taps(wd, kw, sw, pw, n_j, w_out, c_pad):
    """Where each input column's taps land in one output row's sums, for
    :func:`event_rows` (the same for every input row, channel and tap row, so worked
    out once per call, not with three integer divisions per visited row: PilotNet
    SDNN's convolutions 2-4 paired 0.84-0.96 per process, medians of four).

    The taps ``kx = kW - 1 - (res + j sw)`` of input column ``ix`` reach the output
    columns ``ox = (ix + pw - kx) / sw``: consecutive, side by side in the sums and in
    :func:`event_weights`. Returns, per ``ix``, the first sum of its first whole output
    column, its first weight (``(res J + j_0) C_pad``, within one ``(c, ky)``'s weights)
    and the span of sums and weights (0 where no tap reaches an output column).
    """
    first_sum = np.zeros(wd, np.uint64)
    first_weight = np.zeros(wd, np.uint64)
    span = np.zeros(wd, np.uint64)
    for ix in range(wd):
        m = ix + pw - (kw - 1)  # ox * sw for the last tap (kx = kw - 1)
        res = (-m) % sw  # the first tap slot with a whole output column
        ox0 = (m + res) // sw  # its column; then ox0 + 1, ... for j = 1, ...
        j0 = 0
        if ox0 < 0:
            j0 = -ox0
        j1 = min(n_j, w_out - ox0)
        if res + (j1 - 1) * sw > kw - 1:  # the last slot past the kernel
            j1 = (kw - 1 - res) // sw + 1
        if j1 > j0:
            first_sum[ix] = np.uint64(ox0 + j0) * np.uint64(c_pad)
            first_weight[ix] = np.uint64((res * n_j + j0) * c_pad)
            span[ix] = np.uint64(j1 - j0) * np.uint64(c_pad)
    return first_sum, first_weight, span


@njit(nogil=True, cache=True, inline="always")
def _store_row(acc, sums, weight_exp, oy, lag, pad, c_out, out, flat_out, targets):
    """Output row ``oy`` of :func:`event_rows` from its sums ``acc`` (``(T, W_out,
    C_pad)`` float32): each sum shifted and wrapped to 24 bit into ``sums`` (int32) at
    its output step ``t + lag`` in one contiguous pass (``sums``' first ``lag`` steps
    hold zeros); then each output column's ``(T, C_out)`` block into the channels' rows
    ``out[o, oy, ox, :]`` (``flat_out``: ``out`` as ``(C_out H_out W_out, T)``), 16 x 16
    values at a time transposed in vector registers (:func:`._transpose.block_out`),
    every store a whole aligned run of 16 steps but the last (value by value where
    there are fewer than 16 channels or steps).

    Read at a stride of ``W_out C_pad`` values per step, one value at a time, the
    sums had taken 13-39 % of :func:`event_rows`' time on PilotNet SDNN's convolutions.
    """
    _, h_out, w_out, steps = out.shape
    line = np.uint64(w_out) * pad
    head = np.uint64(lag) * line
    for i in range(np.uint64(steps - lag) * line):
        s = cpu._shifted(np.int64(acc[i]), weight_exp)
        sums[head + i] = ((s + _WRAP_HALF) & _WRAP_MASK) - _WRAP_HALF
    # blocks at steps 0, 16, ... and, for a last partial one, one ending at the last
    # channel or step (overlapping the one before: the same values written twice)
    o_blocks = -(-c_out // BLOCK) if c_out >= BLOCK else 0
    t_blocks = -(-steps // BLOCK) if steps >= BLOCK else 0
    for ox in range(w_out):
        for o in range(c_out):
            targets[o] = (o * h_out + oy) * w_out + ox
        at = np.uint64(ox) * pad
        for bo in range(o_blocks):
            o0 = min(bo * BLOCK, c_out - BLOCK)
            for bt in range(t_blocks):
                t0 = min(bt * BLOCK, steps - BLOCK)
                src = at + np.uint64(o0) + np.uint64(t0) * line
                block_out(sums, src, line, flat_out, targets, o0, t0)
        if o_blocks == 0 or t_blocks == 0:  # fewer than 16 channels or steps
            for o in range(c_out):
                row = flat_out[targets[o]]
                src = at + np.uint64(o)
                for t in range(steps):
                    row[t] = sums[src + np.uint64(t) * line]


@njit(nogil=True, cache=True, inline="always")
def _add_events(acc, a0, wf, w0, stride, chans, values, e0, e1, span):
    """``acc[a0 + i] += sum_k values[k] wf[w0 + chans[k] stride + i]`` for ``i < span``
    (a multiple of 16): runs of 64, then one of 16, 32 or 48 (:mod:`._gather_add`)."""
    k = np.uint64(0)
    while k + np.uint64(64) <= span:
        gather_add_64(acc, a0 + k, wf, w0 + k, stride, chans, values, e0, e1)
        k += np.uint64(64)
    rest = span - k
    if rest == np.uint64(16):
        gather_add_16(acc, a0 + k, wf, w0 + k, stride, chans, values, e0, e1)
    elif rest == np.uint64(32):
        gather_add_32(acc, a0 + k, wf, w0 + k, stride, chans, values, e0, e1)
    elif rest == np.uint64(48):
        gather_add_48(acc, a0 + k, wf, w0 + k, stride, chans, values, e0, e1)


@njit(nogil=True, cache=True)
def event_rows(
    shape,
    first,
    last,
    chans,
    values,
    wt,
    kernel_w,
    sh,
    sw,
    ph,
    pw,
    dh,
    lat,
    weight_exp,
    c_out,
    rows,
    acc,
    sums,
    out,
):
    """Output rows ``rows`` of the convolution of an input by ``wt``, from its non-zeros.

    ``shape``: the input's ``(C_in, H, W, T)``; ``first``, ``last``, ``chans``,
    ``values``: its non-zero values by pixel and step (:func:`compact`); ``wt``:
    :func:`event_weights` for column stride ``sw`` of a kernel ``kernel_w`` wide; the
    geometry is a convolution's without column dilation; ``acc``, ``sums``: float32 and
    int32 scratch of at least ``W_out * T * C_pad`` values each; ``out``:
    ``(C_out, H_out, W_out, T)`` int32, rows ``rows`` written:
    ``out[o, y, x, t] = wrap24(shift(sum, weight_exp))`` of the sum at ``t - lat``
    (0 for ``t < lat``).

    For each tap row, input pixel and step, the taps of all its non-zero channels are
    summed in registers and added to the output row's sums once (:func:`_add_events`):
    before, each event loaded and stored the sums itself. PilotNet SDNN's convolutions
    2 / 3 / 4 / 5 with their compaction, as the emulator runs them (two workers, kept
    memory; eight process pairs alternating, paired medians): 1.03 / 0.84 / 0.75 / 1.05
    of the time, their sum 0.91 (the second convolution's input has 24 channels, about
    three events per pixel and step: little to sum in registers).
    """
    c_in, h, wd, steps = shape
    _, kh, _, n_j, c_pad = wt.shape
    _, _, w_out, _ = out.shape
    lag = min(lat, steps)
    row_len = np.uint64(w_out * steps * c_pad)
    wf = wt.reshape(-1)
    pad = np.uint64(c_pad)
    line = np.uint64(w_out * c_pad)  # one step's sums of the row: (W_out, C_pad)
    col_sum, col_weight, col_span = _column_taps(wd, kernel_w, sw, pw, n_j, w_out, c_pad)
    per_tap_row = np.uint64(sw * n_j * c_pad)  # the weights of one (c, ky)
    per_channel = np.uint64(kh) * per_tap_row
    flat_out = out.reshape(-1, steps)
    targets = np.empty(c_out, np.int64)
    width = np.uint64(steps)
    for i in range(np.uint64(lag) * line):  # the output columns before the latency
        sums[i] = 0
    for oy in rows:
        for i in range(row_len):
            acc[i] = 0
        for ky in range(kh):
            iy = oy * sh - ph + ky * dh
            if iy < 0 or iy >= h:
                continue
            w_row = np.uint64(ky) * per_tap_row
            for ix in range(wd):
                span = col_span[ix]
                if span == 0:
                    continue
                a_base = col_sum[ix]
                w0 = w_row + col_weight[ix]
                g0 = np.uint64(iy * wd + ix) * width
                for t in range(width):
                    e0 = first[g0 + t]
                    e1 = last[g0 + t]
                    if e0 != e1:
                        a0 = a_base + t * line
                        _add_events(acc, a0, wf, w0, per_channel, chans, values, e0, e1, span)
        _store_row(acc, sums, weight_exp, oy, lag, pad, c_out, out, flat_out, targets)
