r"""A dense block's event product and CUBA neuron forward in one kernel pass (CPU).

:class:`~loihi_slayer.block._fused_dense.FusedDense` runs a ``cuba.Dense`` block's
product and neuron as one autograd node. Where the product goes event by event
(:class:`~loihi_slayer.synapse._event_product.EventDenseProduct`), its forward sums each
batch item's steps into integer rows ``acc[t, o]`` that stay in the core's cache, with
the outputs innermost, which is the layout the neuron steps in: :func:`event_cuba_forward`
steps the neurons on those sums at once, instead of writing the product's time-last
float output and reading it back through the neuron kernel's transposing tiles.

.. math::

    z[b, o, t] = u \cdot \mathrm{acc}_b[t, o], \qquad
    a = \operatorname{rint}(z \cdot \mathrm{scale}), \qquad
    (u, v, s, v_\mathrm{pre}) \leftarrow \operatorname{CUBA}(u, v, a)

with the same operations in the same types as the two kernels it replaces
(:func:`~loihi_slayer.synapse._event_product.forward_events`, then
:func:`~loihi_slayer.autograd._cpu.cuba_forward`: the product's float32 value, the
neuron's float64 conversion, :func:`~loihi_slayer.fixed.dynamics.cuba_step`), so every
output is theirs bit for bit. Taken for the fused node's neuron without a refractory
period or batch norm, its spikes shifted one step, and at least one batch item per
thread (the neurons of an item step in time order, so the items are the jobs);
elsewhere the two kernels run as before.

On the N-MNIST dense-1 block (578 -> 128, batch 32, T = 60, 11 % input spikes) the
pass saves a 1 MB float output written and read again, the neuron kernel's transposes
into its lanes and a kernel call's Python: the training step paired 0.948 and 0.953
with it against the two kernels (in-process toggle, 30 rounds of 10 steps each, 22 and
23 faster; 2-core Zen 3 VM). Its lanes are int32 only (one copy of the lane step: a cold
compile of 20 s, 33 s with an int64 copy beside it); a state beyond int32 takes the
neuron kernel.
"""

from __future__ import annotations

import numpy as np
import torch
from numba import njit, prange

from .._numba_cache import guard_cache_writes
from .._recycle import kept_empty
from .._threads import follow_torch_threads, numba_threads
from ..autograd._cpu import (
    LANES,
    LN_BAD,
    LN_BIAS,
    LN_FI,
    LN_FV,
    LN_RC,
    LN_ROWS,
    LN_TH,
    LN_U,
    LN_V,
    OT_ROW,
    OUT_SEGMENT,
    _at,
    _lane_tile,
    _narrow_lanes,
    _segment_out_flat,
)
from ..autograd._dispatch import copy_small, empty2d
from ..autograd.cuba import CubaSpec, _check_bad, hardware_bias, lane_decays
from ..fixed.params import DECAY_MAX
from ..synapse._event_product import (
    INT16_MAX,
    EventDenseProduct,
    _add_events,
    event_inputs,
    remember_operand,
)

guard_cache_writes()  # numba's failed cache writes: warnings (see _numba_cache)

#: take the one-pass kernel where it applies (``False``: the product's and the neuron's
#: kernels; for comparisons)
ENABLED = True


@njit(inline="always", cache=True)
def _step_lanes(
    z, span, b, t0, in_scale, out_scale, graded, state, xt, ln, ot, rows, s_out, vp_out
):
    """``span`` steps of an item's ``O`` neurons on their inputs ``z[r, o]`` (float32),
    :data:`~loihi_slayer.autograd._cpu.LANES` neurons at a time through the neuron
    kernel's own lane step (:func:`~loihi_slayer.autograd._cpu._lane_tile`, its state
    and parameters in the flat lane array), its outputs moved into the time-last rows
    ``b·O + o`` (the spikes one step later) by its segment writer. ``state`` holds the
    neurons' rows across blocks (current, voltage, ``iDecay``, ``vDecay``, threshold,
    bias, refused inputs); ``xt``, ``ln``, ``ot``, ``rows`` the lane buffers (input tile,
    lane array, output segments, the lanes' rows)."""
    n_o = z.shape[1]
    for o0 in range(0, n_o, LANES):
        m = min(LANES, n_o - o0)
        for j in range(LANES):
            o = o0 + min(j, m - 1)  # lanes past the last neuron step its copy, unwritten
            live = j < m
            ln[LN_FI + j] = np.int32(DECAY_MAX - state[2, o])
            ln[LN_FV + j] = np.int32(DECAY_MAX - state[3, o])
            ln[LN_TH + j] = state[4, o]
            ln[LN_BIAS + j] = state[5, o]
            ln[LN_U + j] = np.int32(state[0, o]) if live else 0
            ln[LN_V + j] = np.int32(state[1, o]) if live else 0
            ln[LN_RC + j] = 0
            ln[LN_BAD + j] = 0
            rows[j] = b * n_o + o
        for s0 in range(0, span, OUT_SEGMENT):
            sl = min(OUT_SEGMENT, span - s0)
            for r in range(sl):
                for j in range(LANES):
                    xt[r, j] = z[s0 + r, o0 + min(j, m - 1)]
            _lane_tile(xt, 0, sl, in_scale, out_scale, 1, graded, ln, np.int32, ot, 0, False, True)
            _segment_out_flat(s_out, ot, 0, rows, m, t0 + s0, sl, 1)
            _segment_out_flat(vp_out, ot, OT_ROW, rows, m, t0 + s0, sl)
        for j in range(m):
            state[0, o0 + j] = ln[LN_U + j]
            state[1, o0 + j] = ln[LN_V + j]
            state[6, o0 + j] += ln[LN_BAD + j]


@njit(inline="always", cache=True)
def _scaled(acc, span, unit, z):
    """``z[r, o] = float32(acc[r, o]) · unit``: the product's output values (as
    :func:`~loihi_slayer.synapse._event_product.forward_events` writes them)."""
    for r in range(span):
        for o in range(acc.shape[1]):
            z[r, o] = np.float32(acc[r, o]) * unit


@njit(parallel=True, cache=True)
def event_cuba_forward(
    q,
    counts,
    pos,
    mt,
    top,
    unit,
    block,
    in_scale,
    out_scale,
    i_decay,
    v_decay,
    v_th,
    bias,
    u_st,
    v_st,
    rc_st,
    graded,
    s_out,
    vp_out,
    bad,
):
    """The event product ``z = u · Σ_events q · m^T[i]`` of
    :func:`~loihi_slayer.synapse._event_product.forward_events` (``q`` ``(I, B, T)``
    int8, ``counts`` ``(B, I)``, ``pos`` the event lists, ``mt`` ``(I, O)`` int8, ``top``
    the largest ``|q| · |m|``, blocks of ``block`` steps) and the CUBA neuron on ``z``
    as :func:`~loihi_slayer.autograd._cpu.cuba_forward` steps it without a refractory
    period and with its spikes shifted one step: ``s_out``, ``vp_out`` ``(B·O, T)``
    float32, the state ``u_st``, ``v_st``, ``rc_st`` (rows ``b·O + o``) advanced in
    place, ``bad[row]`` set where an input was refused. One job per batch item; each
    block's sums are int16 where no step's events can leave that range, else int32. The
    lanes are int32: the caller checks that the state and decays fit
    (:func:`~loihi_slayer.autograd._cpu._narrow_lanes`, as the neuron kernel does)."""
    n_i, n_b, steps = q.shape
    n_o = mt.shape[1]
    most = INT16_MAX // max(1, top)
    ni, nv, nt, nb = i_decay.shape[0], v_decay.shape[0], v_th.shape[0], bias.shape[0]
    span_max = min(block, steps)
    for b in prange(n_b):
        lo = np.zeros(n_i, np.int64)
        hi = np.zeros(n_i, np.int64)
        state = np.zeros((7, n_o), np.int64)
        for o in range(n_o):
            n = b * n_o + o
            state[0, o] = u_st[n]
            state[1, o] = v_st[n]
            state[2, o] = i_decay[_at(n, ni)]
            state[3, o] = v_decay[_at(n, nv)]
            state[4, o] = v_th[_at(n, nt)]
            state[5, o] = bias[_at(n, nb)]
            s_out[n, 0] = 0.0
        acc16 = np.empty((span_max, n_o), np.int16)
        acc32 = np.empty((span_max, n_o), np.int32)
        z = np.empty((span_max, n_o), np.float32)
        per = np.empty(span_max, np.int64)
        # the lane buffers (separate arrays: a tuple of arrays made in a prange body
        # is not freed the same way)
        xt = np.zeros((OUT_SEGMENT, LANES), np.float32)
        ln = np.zeros(LN_ROWS * LANES, np.int64)
        ot = np.empty(4 * OT_ROW, np.float32)
        rows = np.zeros(LANES, np.int64)
        for t0 in range(0, steps, block):
            t1 = min(t0 + block, steps)
            span = t1 - t0
            for i in range(n_i):  # each list's events before t1 (all that are left last)
                lo[i] = k = hi[i]
                if t1 == steps:
                    k = counts[b, i]
                while k < counts[b, i] and pos[b, i, k] < t1:
                    k += 1
                hi[i] = k
            for r in range(span):  # events per step, for the int16 bound
                per[r] = 0
            for i in range(n_i):
                for k in range(lo[i], hi[i]):
                    per[np.int64(pos[b, i, k]) - t0] += 1
            busiest = 0
            for r in range(span):
                busiest = max(busiest, per[r])
            if busiest <= most:
                for r in range(span):
                    for o in range(n_o):
                        acc16[r, o] = 0
                _add_events(q, pos, mt, b, t0, lo, hi, acc16, np.int16)
                _scaled(acc16, span, unit, z)
            else:
                for r in range(span):
                    for o in range(n_o):
                        acc32[r, o] = 0
                _add_events(q, pos, mt, b, t0, lo, hi, acc32, np.int32)
                _scaled(acc32, span, unit, z)
            _step_lanes(
                z, span, b, t0, in_scale, out_scale, graded, state, xt, ln, ot, rows, s_out, vp_out
            )
        for o in range(n_o):
            n = b * n_o + o
            u_st[n] = state[0, o]
            v_st[n] = state[1, o]
            rc_st[n] = 0
            if state[6, o] != 0:
                bad[n] = 1


def applies(plan, spec: CubaSpec, n_b: int) -> bool:
    """Whether :func:`event_cuba` can run ``plan`` (the fused node's product) and the
    neuron of ``spec``: an event product with a time-last output, a neuron without a
    refractory period, at least one batch item per thread."""
    product, args = plan
    return (
        ENABLED
        and product is EventDenseProduct
        and not args[-1]  # time_major
        and spec.ref_delay <= 1
        and n_b >= numba_threads()
    )


def event_cuba(inner, args, spec: CubaSpec, current_decay, voltage_decay, bias, state):
    """The fused node's product and neuron in one pass (:func:`event_cuba_forward`): the
    neuron op's outputs ``(s, v_pre, u, refractory, state_end, mean)`` as
    ``_cuba_forward`` returns them for the spikes shifted, the voltage recorded, no
    current, no batch norm; the product's tensors saved on ``inner`` as its own forward
    saves them. ``args`` are the product's (:func:`applies`). None, with nothing done,
    where the state or the decays do not fit the int32 lanes."""
    i_dec, v_dec = lane_decays(spec, current_decay, voltage_decay)
    state_end = copy_small(state)
    st = state_end.numpy()
    if not _narrow_lanes(st[0], st[1], st[2], i_dec, v_dec, 1, False):
        return None  # a state set by hand beyond int32: the neuron kernel's int64 lanes
    x3, w2, q, counts, m, unit, top, _z_mem, pos_mem, _ = args
    n_b, _, steps = x3.shape
    n_o = w2.shape[0]
    lead = event_inputs(m, n_o, q, counts, top, unit, pos_mem)
    remember_operand(inner, q, w2, counts, lead[2])
    rows = n_b * n_o
    bias_vec = hardware_bias(bias, spec)
    s_out = kept_empty("cuba spikes", (rows, steps), x3.dtype, x3)
    vp_out = kept_empty("cuba voltage", (rows, steps), x3.dtype, x3)
    bad = np.zeros(rows, np.int8)
    follow_torch_threads()
    event_cuba_forward(
        *lead,
        float(spec.scale),
        1.0 / spec.s_scale,
        i_dec,
        v_dec,
        np.array([spec.v_th_mant << 6], np.int64),
        bias_vec,
        st[0],
        st[1],
        st[2],
        spec.graded,
        s_out.numpy(),
        vp_out.numpy(),
        bad,
    )
    if np.count_nonzero(bad):
        _check_bad(bad)
    nothing = empty2d(rows, x3)
    return (
        s_out.view(n_b, n_o, steps),
        vp_out,
        nothing,
        torch.from_numpy(np.empty((rows, 0), np.uint8)),
        state_end,
        torch.empty(0, dtype=torch.float64),
    )
