r"""numba kernels of the fused recurrence (CPU): the whole time loop of a CUBA or ALIF
Recurrent/KWTA block, recurrent matmul included, in one compiled call.

Layout: batch-major, neuron-last ``(B, T, n)`` arrays (the op transposes the
block's time-last tensors once), so the per-step loops over neurons run over
contiguous memory. The integer state ``u_st, v_st, rc_st`` has ``B * n`` rows
(row ``b * n + j``). Arrays with a zero-length time axis mean "not recorded".

**Forward** (per batch item, exactly what the step-by-step block computes):

.. math::

    F[t] &= b_{fb} + \sum_{i:\,s_i[t-1] = 1} M_{:, i}
        \qquad (\text{int32, } M = 2^k W_{fb} \text{ integer}) \\
    a[t] &= z[t] \oplus 2^{-k} F[t] \qquad (\oplus: \text{addition in } z\text{'s dtype}) \\
    u, v, s[t] &= \mathrm{step}(\operatorname{rint}(\mathrm{scale}\cdot a[t]), \dots)

The caller guarantees :math:`2^{-k}F` is exactly the float feedback PyTorch
computes (every partial sum is exact in the dtype), so the result is bit-exact
whatever order either side sums in.

**Backward** (the step-by-step block's gradient: the neuron state is carried
between steps without gradient, the time dependence is the spike feedback):

.. math::

    g_s[t] &= \frac{\partial L}{\partial s[t]} + W_{fb}^\top g_a[t+1] \\
    g_a[t] &= g_s[t]\,\frac{\rho}{2\tau}e^{-|v[t]-\vartheta|/\tau}
        \quad (\text{CUBA: 0 on refractory steps}) \\
    \frac{\partial L}{\partial W_{fb}} &= \sum_t g_a[t]\, s[t-1]^\top, \qquad
    \frac{\partial L}{\partial z[t]} = g_a[t]

and, per neuron, :math:`\sum_t g_a[t]\,u[t-1]` and :math:`\sum_t g_a[t]\,v[t-1]`
(the state before each step) for the decay gradients. ``step`` is
:func:`loihi_slayer.fixed.dynamics.cuba_step` or :func:`loihi_slayer.models.alif.step`;
for ALIF the kernel stores :math:`v - \vartheta[t] - r[t]` and the backward runs with
:math:`\vartheta = 0` (the adaptive threshold and refractory state are constants of
the gradient, as in the ALIF training neuron).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..fixed import dynamics
from ..models import alif as _alif_model

_cuba_step = njit(inline="always", cache=True)(dynamics.cuba_step)
_alif_step = njit(inline="always", cache=True)(_alif_model.step)

#: rows of the ALIF parameter table (the arguments of ``models.alif.step`` after ``a``)
ALIF_PARAMS = ("i_decay", "v_decay", "th_decay", "ref_decay", "v_th_mant", "v_th_step",
               "ref_delay")  # fmt: skip

#: inputs whose integer conversion reaches this magnitude are rejected (as the neuron op)
INPUT_LIMIT = float(1 << 31)

#: batch items stepped together in the backward: each row of the feedback weight
#: is read once per step for the whole group
GROUP = 4


@njit(cache=True)
def _feedback_sum(acc, m_t, idx, nspk, fb_bias):
    """``acc = fb_bias + sum_q m_t[idx[q]]`` (int32, vectorized over neurons).

    A ``(1, 2)`` ``m_t`` for ``n > 1`` neurons is the compact form ``[[d, o]]`` of
    ``m = o + (d - o) I`` (KWTA): the same integers in O(n) per step.
    """
    n = acc.shape[0]
    if m_t.shape[0] != n:
        diag, off = m_t[0, 0], m_t[0, 1]
        level = fb_bias + off * nspk
        for j in range(n):
            acc[j] = level
        for q in range(nspk):
            acc[idx[q]] += diag - off
        return
    for j in range(n):
        acc[j] = fb_bias
    for q in range(nspk):
        row = m_t[idx[q]]
        for j in range(n):
            acc[j] += row[j]


@njit(inline="always", cache=True)
def _feedback(fb, acc, m_t, idx, nspk, fb_bias, grid):
    """``fb = grid * (fb_bias + sum of the spiking rows of m_t)`` (see :func:`_feedback_sum`)."""
    _feedback_sum(acc, m_t, idx, nspk, fb_bias)
    for j in range(fb.shape[0]):
        fb[j] = acc[j] * grid


@njit(inline="always", cache=True)
def _chip_input(a, in_scale):
    """``(rint(a * in_scale), 0)``, or ``(0, 1)`` when that is out of the accepted range."""
    f = a * in_scale
    if not (abs(f) < INPUT_LIMIT):
        return np.int64(0), 1
    return np.int64(np.rint(f)), 0


@njit(fastmath=True, cache=True)
def _matvec_group(gfb, ga, w_t):
    """``gfb[k, i] = sum_o w_t[i, o] ga[k, o]`` for the ``GROUP`` rows of ``ga``: each
    row of ``w_t`` is read once for the group (vectorized dot products). A ``(1, 2)``
    ``w_t`` is the compact ``[[d, o]]`` of ``o + (d - o) I`` (see :func:`_feedback_sum`)."""
    n = gfb.shape[1]
    zero = np.zeros(1, ga.dtype)[0]
    if w_t.shape[0] != n:
        diag, off = w_t[0, 0], w_t[0, 1]
        for k in range(GROUP):
            tot = zero
            for o in range(n):
                tot += ga[k, o]
            for i in range(n):
                gfb[k, i] = off * tot + (diag - off) * ga[k, i]
        return
    g0, g1, g2, g3 = ga[0], ga[1], ga[2], ga[3]
    for i in range(n):
        row = w_t[i]
        s0 = s1 = s2 = s3 = zero
        for o in range(n):
            w = row[o]
            s0 += g0[o] * w
            s1 += g1[o] * w
            s2 += g2[o] * w
            s3 += g3[o] * w
        gfb[0, i] = s0
        gfb[1, i] = s1
        gfb[2, i] = s2
        gfb[3, i] = s3


@njit(inline="always", cache=True)
def _forward_item(
    b, z, m_t, fb_bias, grid, in_scale, i_dec, v_dec, v_th, ref, bias,
    u_st, v_st, rc_st, s_out, vp_out, out_scale, r_out, pre_out, bad,
):  # fmt: skip
    """Forward of the fused recurrence for batch item ``b``.

    ``z`` ``(B, T, n)`` feed-forward synaptic input; ``m_t`` ``(n, n)`` int32 with
    ``m_t[i, o]`` the feedback mantissa from neuron ``i`` to ``o``; ``fb_bias`` the
    feedback bias mantissa, ``grid = 2**-k``. Outputs: spikes ``s_out``, pre-reset
    voltage ``vp_out * out_scale``, refractory flags ``r_out`` (uint8) and the
    state before each step ``pre_out`` ``(2, B, T, n)`` (u, v; int32).
    """
    steps, n = z.shape[1], z.shape[2]
    rec_r = r_out.shape[1] > 0
    rec_p = pre_out.shape[2] > 0
    acc = np.empty(n, np.int32)
    fb = np.empty(n, z.dtype)
    idx = np.empty(n, np.int64)
    nspk = 0
    flag = 0
    base = b * n
    for t in range(steps):
        _feedback(fb, acc, m_t, idx, nspk, fb_bias, grid)
        nspk = 0
        for j in range(n):
            # the sum in z's dtype, as the step-by-step block adds
            x, out_of_range = _chip_input(z[b, t, j] + fb[j], in_scale)
            flag |= out_of_range
            r = base + j
            u, v, rc = u_st[r], v_st[r], rc_st[r]
            if rec_r:
                r_out[b, t, j] = rc > 0
            if rec_p:
                pre_out[0, b, t, j] = u
                pre_out[1, b, t, j] = v
            u, v, rc, s, vp = _cuba_step(
                u, v, rc, x, i_dec[j], v_dec[j], v_th, ref, bias[j], 0,
            )  # fmt: skip
            u_st[r], v_st[r], rc_st[r] = u, v, rc
            s_out[b, t, j] = s
            vp_out[b, t, j] = vp * out_scale
            if s:
                idx[nspk] = j
                nspk += 1
    if flag:
        bad[b] = 1


@njit(inline="always", cache=True)
def _alif_item(
    b, z, m_t, fb_bias, grid, in_scale, p, st, s_out, d_out, out_scale, pre_out, bad,
):  # fmt: skip
    """ALIF forward of the fused recurrence for batch item ``b`` (as :func:`_forward_item`).

    ``p`` ``(7, n)`` int64 parameter table (rows :data:`ALIF_PARAMS`, one column per neuron),
    ``st`` ``(5, B * n)`` state ``u, v, th, r, rc``. ``d_out`` gets the surrogate's
    argument ``(v - th - r) * out_scale`` (reported voltage, threshold and refractory
    state before a spike's update).
    """
    steps, n = z.shape[1], z.shape[2]
    rec_p = pre_out.shape[2] > 0
    acc = np.empty(n, np.int32)
    fb = np.empty(n, z.dtype)
    idx = np.empty(n, np.int64)
    nspk = 0
    flag = 0
    base = b * n
    for t in range(steps):
        _feedback(fb, acc, m_t, idx, nspk, fb_bias, grid)
        nspk = 0
        for j in range(n):
            # the sum in z's dtype, as the step-by-step block adds
            x, out_of_range = _chip_input(z[b, t, j] + fb[j], in_scale)
            flag |= out_of_range
            r = base + j
            if rec_p:
                pre_out[0, b, t, j] = st[0, r]
                pre_out[1, b, t, j] = st[1, r]
            u, v, th, rf, rc, s, v_rep, th_pre, r_pre = _alif_step(
                st[0, r], st[1, r], st[2, r], st[3, r], st[4, r], x,
                p[0, j], p[1, j], p[2, j], p[3, j], p[4, j], p[5, j], p[6, j],
            )  # fmt: skip
            st[0, r], st[1, r], st[2, r], st[3, r], st[4, r] = u, v, th, rf, rc
            s_out[b, t, j] = s
            d_out[b, t, j] = (v_rep - th_pre - r_pre) * out_scale
            if s:
                idx[nspk] = j
                nspk += 1
    if flag:
        bad[b] = 1


@njit(inline="always", fastmath=True, cache=True)
def _backward_chunk(c, g_s, s, vp, r_in, pre, w_t, theta, inv_tau, amp, g_z, g_wt, g_dec):
    """Backward of the fused recurrence for the batch groups of chunk ``c``.

    ``g_s``, ``s``, ``vp`` ``(B, T, n)``; ``r_in`` refractory flags (or ``(B, 0, n)``);
    ``pre`` the state before each step (or empty); ``w_t`` ``(n, n)`` with
    ``w_t[i, o] = W_fb[o, i]``. Outputs: ``g_z`` ``(B, T, n)``; ``g_wt`` ``(C, n, n)``
    per-chunk partial sums of ``dL/dW_fb`` transposed (``(C, 0, 0)``: not computed here);
    ``g_dec`` ``(C, 2, n)``
    per-chunk sums of ``g_a * u_prev`` and ``g_a * v_prev`` (when ``pre`` is given).
    """
    batch, steps, n = vp.shape
    chunks = g_wt.shape[0]
    has_r = r_in.shape[1] > 0
    has_p = pre.shape[2] > 0
    want_w = g_wt.shape[1] > 0
    groups = (batch + GROUP - 1) // GROUP
    ga = np.zeros((GROUP, n), g_s.dtype)
    gfb = np.zeros((GROUP, n), g_s.dtype)
    for grp in range(c, groups, chunks):
        b0 = grp * GROUP
        m = min(GROUP, batch - b0)
        ga[:, :] = 0
        gfb[:, :] = 0
        for t in range(steps - 1, -1, -1):
            if t < steps - 1:
                _matvec_group(gfb, ga, w_t)
            for k in range(m):
                b = b0 + k
                gk = ga[k]
                for j in range(n):
                    d = vp[b, t, j] - theta
                    sur = amp * np.exp(-abs(d) * inv_tau)
                    g = (g_s[b, t, j] + gfb[k, j]) * sur
                    if has_r and r_in[b, t, j] != 0:
                        g = 0.0
                    gk[j] = g
                    g_z[b, t, j] = g
                if has_p:
                    for j in range(n):
                        g_dec[c, 0, j] += gk[j] * pre[0, b, t, j]
                        g_dec[c, 1, j] += gk[j] * pre[1, b, t, j]
                if want_w and t > 0:
                    for i in range(n):
                        if s[b, t - 1, i] != 0:
                            acc = g_wt[c, i]
                            for o in range(n):
                                acc[o] += gk[o]


@njit(parallel=True, cache=True)
def forward_parallel(
    z, m_t, fb_bias, grid, in_scale, i_dec, v_dec, v_th, ref, bias,
    u_st, v_st, rc_st, s_out, vp_out, out_scale, r_out, pre_out, bad,
):  # fmt: skip
    """The fused forward, batch items in parallel (see :func:`_forward_item`)."""
    for b in prange(z.shape[0]):
        _forward_item(b, z, m_t, fb_bias, grid, in_scale, i_dec, v_dec, v_th, ref, bias,
                      u_st, v_st, rc_st, s_out, vp_out, out_scale, r_out, pre_out, bad)  # fmt: skip


@njit(cache=True)
def forward_serial(
    z, m_t, fb_bias, grid, in_scale, i_dec, v_dec, v_th, ref, bias,
    u_st, v_st, rc_st, s_out, vp_out, out_scale, r_out, pre_out, bad,
):  # fmt: skip
    """The fused forward on one thread (small work)."""
    for b in range(z.shape[0]):
        _forward_item(b, z, m_t, fb_bias, grid, in_scale, i_dec, v_dec, v_th, ref, bias,
                      u_st, v_st, rc_st, s_out, vp_out, out_scale, r_out, pre_out, bad)  # fmt: skip


@njit(parallel=True, cache=True)
def alif_parallel(z, m_t, fb_bias, grid, in_scale, p, st, s_out, d_out, out_scale, pre_out, bad):
    """The fused ALIF forward, batch items in parallel (see :func:`_alif_item`)."""
    for b in prange(z.shape[0]):
        _alif_item(b, z, m_t, fb_bias, grid, in_scale, p, st, s_out, d_out, out_scale, pre_out,
                   bad)  # fmt: skip


@njit(cache=True)
def alif_serial(z, m_t, fb_bias, grid, in_scale, p, st, s_out, d_out, out_scale, pre_out, bad):
    """The fused ALIF forward on one thread (small work)."""
    for b in range(z.shape[0]):
        _alif_item(b, z, m_t, fb_bias, grid, in_scale, p, st, s_out, d_out, out_scale, pre_out,
                   bad)  # fmt: skip


@njit(parallel=True, fastmath=True, cache=True)
def backward_parallel(g_s, s, vp, r_in, pre, w_t, theta, inv_tau, amp, g_z, g_wt, g_dec):
    """The fused backward, one chunk of batch groups per thread (see :func:`_backward_chunk`)."""
    for c in prange(g_wt.shape[0]):
        _backward_chunk(c, g_s, s, vp, r_in, pre, w_t, theta, inv_tau, amp, g_z, g_wt, g_dec)


@njit(fastmath=True, cache=True)
def backward_serial(g_s, s, vp, r_in, pre, w_t, theta, inv_tau, amp, g_z, g_wt, g_dec):
    """The fused backward on one thread (``g_wt`` has one chunk)."""
    for c in range(g_wt.shape[0]):
        _backward_chunk(c, g_s, s, vp, r_in, pre, w_t, theta, inv_tau, amp, g_z, g_wt, g_dec)
