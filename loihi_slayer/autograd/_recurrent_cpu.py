r"""numba kernels of the fused recurrence (CPU): the whole forward time loop of a CUBA
or ALIF Recurrent/KWTA block, recurrent feedback included, in one compiled call, and
the surrogate pass of its backward.

Layout: time-major, neuron-last ``(T, B, n)`` arrays (the op transposes the
block's time-last tensors once), so the per-step loops over neurons run over
contiguous memory and the backward (:mod:`.recurrent`) multiplies one contiguous
``(B, n)`` slab per step. The integer state ``u_st, v_st, rc_st`` has ``B * n`` rows
(row ``b * n + j``). Arrays with a zero-length time axis mean "not recorded".

**Forward** (per batch item, exactly what the step-by-step block computes):

.. math::

    F[t] &= b_{fb} + \sum_{i:\,s_i[t-1] = 1} M_{:, i}
        \qquad (\text{int32, } M = 2^k W_{fb} \text{ integer}) \\
    a[t] &= z[t] \oplus 2^{-k} F[t] \qquad (\oplus: \text{addition in } z\text{'s dtype}) \\
    u, v, s[t] &= \mathrm{step}(\operatorname{rint}(\mathrm{scale}\cdot a[t]), \dots)

The caller guarantees :math:`2^{-k}F` is exactly the float feedback PyTorch
computes (every partial sum is exact in the dtype), so the result is bit-exact
whatever order either side sums in. ``step`` is
:func:`loihi_slayer.fixed.dynamics.cuba_step` or :func:`loihi_slayer.models.alif.step`.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..fixed import dynamics
from ..fixed._vector_width import prefer_wide_vectors
from ..models import alif as _alif_model
from ._convert import INPUT_LIMIT, chip_int, state_float
from ._cpu import _vexp_neg

_cuba_step = njit(inline="always", cache=True)(dynamics.cuba_step)
_alif_step = njit(inline="always", cache=True)(_alif_model.step)

#: rows of the ALIF parameter table (the arguments of ``models.alif.step`` after ``a``)
ALIF_PARAMS = ("i_decay", "v_decay", "th_decay", "ref_decay", "v_th_mant", "v_th_step", "ref_delay")


#: int8 feedback rows summed in int16 at most this many at a time: their sum then lies
#: in [-128·256, 127·256], inside int16, so the wrapping int16 additions are exact
INT16_ROWS = 256


@njit(cache=True)
def _feedback_sum(acc, part, m_t, idx, nspk, fb_bias):
    """``acc = fb_bias + sum_q m_t[idx[q]]`` (int32, vectorized over neurons).

    Four spiking rows are added per pass over ``acc`` (half the loads and stores of
    one row per pass). The partial sums cannot wrap: every subset sum of a row is
    bounded by the absolute row sum that :func:`..recurrent.feedback_grid` limits.
    int8 rows (:func:`..recurrent._narrow`) are summed in blocks of :data:`INT16_ROWS`
    in the int16 ``part`` (16 neurons per AVX2 vector, not 8) and each block's sum
    added to ``acc``.
    A ``(1, 2)`` ``m_t`` for ``n > 1`` neurons is the compact form ``[[d, o]]`` of
    ``m = o + (d - o) I`` (KWTA): the same integers in O(n) per step.
    """
    n = acc.shape[0]
    if m_t.shape[0] != n:
        diag, off = np.int64(m_t[0, 0]), np.int64(m_t[0, 1])
        level = fb_bias + off * nspk
        for j in range(n):
            acc[j] = level
        for q in range(nspk):
            acc[idx[q]] += diag - off
        return
    for j in range(n):
        acc[j] = fb_bias
    if m_t.itemsize == 1:
        q = 0
        while q < nspk:
            stop = min(nspk, q + INT16_ROWS)
            for j in range(n):
                part[j] = 0
            while q + 4 <= stop:
                r0, r1, r2, r3 = m_t[idx[q]], m_t[idx[q + 1]], m_t[idx[q + 2]], m_t[idx[q + 3]]
                for j in range(n):  # stored as int16: LLVM narrows the adds to int16
                    part[j] = part[j] + ((r0[j] + r1[j]) + (r2[j] + r3[j]))
                q += 4
            while q < stop:
                row = m_t[idx[q]]
                for j in range(n):
                    part[j] = part[j] + row[j]
                q += 1
            for j in range(n):
                acc[j] += part[j]
        return
    q = 0
    while q + 4 <= nspk:
        r0, r1, r2, r3 = m_t[idx[q]], m_t[idx[q + 1]], m_t[idx[q + 2]], m_t[idx[q + 3]]
        for j in range(n):  # in int32 whatever m_t's integer type (int16 sums would wrap)
            acc[j] += (np.int32(r0[j]) + np.int32(r1[j])) + (np.int32(r2[j]) + np.int32(r3[j]))
        q += 4
    while q < nspk:
        row = m_t[idx[q]]
        for j in range(n):
            acc[j] += np.int32(row[j])
        q += 1


@njit(inline="always", cache=True)
def _feedback(fb, acc, part, m_t, idx, nspk, fb_bias, grid):
    """``fb = grid * (fb_bias + sum of the spiking rows of m_t)`` (see :func:`_feedback_sum`)."""
    _feedback_sum(acc, part, m_t, idx, nspk, fb_bias)
    for j in range(fb.shape[0]):
        fb[j] = acc[j] * grid


@njit(inline="always", cache=True)
def _spike_list(idx, s_row):
    """Indices of the non-zero entries of ``s_row`` into ``idx``; returns their count.
    (Every index is written, the count advances by the spike: no branch to mispredict.)"""
    nspk = 0
    for j in range(s_row.shape[0]):
        idx[nspk] = j
        nspk += s_row[j] != 0
    return nspk


@njit(inline="always", cache=True)
def _forward_item(
    b,
    z,
    m_t,
    fb_bias,
    grid,
    in_scale,
    i_dec,
    v_dec,
    v_th,
    ref,
    bias,
    u_st,
    v_st,
    rc_st,
    s_out,
    vp_out,
    out_scale,
    r_out,
    pre_out,
    bad,
):
    """Forward of the fused recurrence for batch item ``b``.

    ``z`` ``(T, B, n)`` feed-forward synaptic input; ``m_t`` ``(n, n)`` int32 with
    ``m_t[i, o]`` the feedback mantissa from neuron ``i`` to ``o``; ``fb_bias`` the
    feedback bias mantissa, ``grid = 2**-k``. Outputs: spikes ``s_out``, pre-reset
    voltage ``vp_out * out_scale``, refractory flags ``r_out`` (uint8) and the
    state before each step ``pre_out`` ``(2, T, B, n)`` (u, v; int32).
    """
    prefer_wide_vectors()
    steps, n = z.shape[0], z.shape[2]
    rec_r = r_out.shape[0] > 0
    rec_p = pre_out.shape[1] > 0
    acc = np.empty(n, np.int32)
    part = np.empty(n, np.int16)  # int8 rows' partial sums
    fb = np.empty(n, z.dtype)
    idx = np.empty(n, np.int64)
    nspk = 0
    flag = 0
    u_b, v_b, rc_b = (
        u_st[b * n : (b + 1) * n],
        v_st[b * n : (b + 1) * n],
        rc_st[b * n : (b + 1) * n],
    )
    for t in range(steps):
        _feedback(fb, acc, part, m_t, idx, nspk, fb_bias, grid)
        if rec_r:
            for j in range(n):
                r_out[t, b, j] = rc_b[j] > 0
        if rec_p:
            for j in range(n):
                pre_out[0, t, b, j] = u_b[j]
                pre_out[1, t, b, j] = v_b[j]
        z_row, s_row, vp_row = z[t, b], s_out[t, b], vp_out[t, b]
        for j in range(n):  # no branch: vectorized over neurons
            # the sum in z's dtype, as the step-by-step block adds
            x, out_of_range = chip_int(z_row[j] + fb[j], in_scale, INPUT_LIMIT)
            flag |= out_of_range
            u, v, rc, s, vp = _cuba_step(
                u_b[j],
                v_b[j],
                rc_b[j],
                x,
                i_dec[j],
                v_dec[j],
                v_th,
                ref,
                bias[j],
                0,
            )
            u_b[j], v_b[j], rc_b[j] = u, v, rc
            s_row[j] = s
            vp_row[j] = state_float(vp) * out_scale
        nspk = _spike_list(idx, s_row)
    if flag:
        bad[b] = 1


@njit(inline="always", cache=True)
def _alif_item(
    b,
    z,
    m_t,
    fb_bias,
    grid,
    in_scale,
    p,
    st,
    s_out,
    d_out,
    out_scale,
    pre_out,
    bad,
):
    """ALIF forward of the fused recurrence for batch item ``b`` (as :func:`_forward_item`).

    ``p`` ``(7, n)`` int64 parameter table (rows :data:`ALIF_PARAMS`, one column per neuron),
    ``st`` ``(5, B * n)`` state ``u, v, th, r, rc``. ``d_out`` gets the surrogate's
    argument ``(v - th - r) * out_scale`` (reported voltage, threshold and refractory
    state before a spike's update).
    """
    prefer_wide_vectors()
    steps, n = z.shape[0], z.shape[2]
    rec_p = pre_out.shape[1] > 0
    acc = np.empty(n, np.int32)
    part = np.empty(n, np.int16)  # int8 rows' partial sums
    fb = np.empty(n, z.dtype)
    idx = np.empty(n, np.int64)
    nspk = 0
    flag = 0
    sb = st[:, b * n : (b + 1) * n]
    for t in range(steps):
        _feedback(fb, acc, part, m_t, idx, nspk, fb_bias, grid)
        if rec_p:
            for j in range(n):
                pre_out[0, t, b, j] = sb[0, j]
                pre_out[1, t, b, j] = sb[1, j]
        z_row, s_row, d_row = z[t, b], s_out[t, b], d_out[t, b]
        for j in range(n):
            # the sum in z's dtype, as the step-by-step block adds
            x, out_of_range = chip_int(z_row[j] + fb[j], in_scale, INPUT_LIMIT)
            flag |= out_of_range
            u, v, th, rf, rc, s, v_rep, th_pre, r_pre = _alif_step(
                sb[0, j],
                sb[1, j],
                sb[2, j],
                sb[3, j],
                sb[4, j],
                x,
                p[0, j],
                p[1, j],
                p[2, j],
                p[3, j],
                p[4, j],
                p[5, j],
                p[6, j],
            )
            sb[0, j], sb[1, j], sb[2, j], sb[3, j], sb[4, j] = u, v, th, rf, rc
            s_row[j] = s
            d_row[j] = (v_rep - th_pre - r_pre) * out_scale
        nspk = _spike_list(idx, s_row)
    if flag:
        bad[b] = 1


@njit(parallel=True, cache=True)
def forward_parallel(
    z,
    m_t,
    fb_bias,
    grid,
    in_scale,
    i_dec,
    v_dec,
    v_th,
    ref,
    bias,
    u_st,
    v_st,
    rc_st,
    s_out,
    vp_out,
    out_scale,
    r_out,
    pre_out,
    bad,
):
    """The fused forward, batch items in parallel (see :func:`_forward_item`)."""
    for b in prange(z.shape[1]):
        _forward_item(
            b,
            z,
            m_t,
            fb_bias,
            grid,
            in_scale,
            i_dec,
            v_dec,
            v_th,
            ref,
            bias,
            u_st,
            v_st,
            rc_st,
            s_out,
            vp_out,
            out_scale,
            r_out,
            pre_out,
            bad,
        )


@njit(cache=True)
def forward_serial(
    z,
    m_t,
    fb_bias,
    grid,
    in_scale,
    i_dec,
    v_dec,
    v_th,
    ref,
    bias,
    u_st,
    v_st,
    rc_st,
    s_out,
    vp_out,
    out_scale,
    r_out,
    pre_out,
    bad,
):
    """The fused forward on one thread (small work)."""
    for b in range(z.shape[1]):
        _forward_item(
            b,
            z,
            m_t,
            fb_bias,
            grid,
            in_scale,
            i_dec,
            v_dec,
            v_th,
            ref,
            bias,
            u_st,
            v_st,
            rc_st,
            s_out,
            vp_out,
            out_scale,
            r_out,
            pre_out,
            bad,
        )


@njit(parallel=True, cache=True)
def alif_parallel(z, m_t, fb_bias, grid, in_scale, p, st, s_out, d_out, out_scale, pre_out, bad):
    """The fused ALIF forward, batch items in parallel (see :func:`_alif_item`)."""
    for b in prange(z.shape[1]):
        _alif_item(b, z, m_t, fb_bias, grid, in_scale, p, st, s_out, d_out, out_scale, pre_out, bad)


@njit(cache=True)
def alif_serial(z, m_t, fb_bias, grid, in_scale, p, st, s_out, d_out, out_scale, pre_out, bad):
    """The fused ALIF forward on one thread (small work)."""
    for b in range(z.shape[1]):
        _alif_item(b, z, m_t, fb_bias, grid, in_scale, p, st, s_out, d_out, out_scale, pre_out, bad)


#: batch items whose gradient rows one job of :func:`backward_loop` updates together:
#: each feedback row loaded is added into all of them (16 rows of 512 float32, 32 KB,
#: stay in the L1 cache)
BACKWARD_ROWS = 16


@njit(parallel=True, fastmath={"contract"}, cache=True)
def backward_loop(g_s, sigma, w, rows, g_a):
    r"""The recurrence's gradient, the whole time loop in one call (time-major ``(T, B,
    n)`` float32 arrays, ``w`` the ``(n, n)`` feedback weights)::

        g_a[t] = (g_s[t] + g_a[t+1] @ w) * sigma[t],   t = T-1, ..., 0   (g_a[T] = 0)

    ``g_s`` with no steps: no gradient arrives at the spikes (0). Batch items are
    independent: one job per ``rows`` of them, stepping through all of time, each
    feedback row ``w[j]`` added into every row of the job (``g_a[t+1, b, j]`` times it)
    while it is in the cache. Every sum runs over ``j`` in order from ``g_s[t]``
    (multiply-adds contracted), whatever the job size: the result does not depend on the
    thread count. Zero gradients (refractory steps, silent outputs) add nothing.
    """
    steps, batch, n = sigma.shape
    has_gs = g_s.shape[0] > 0
    for job in prange((batch + rows - 1) // rows):
        b0 = job * rows
        b1 = min(b0 + rows, batch)
        for t in range(steps - 1, -1, -1):
            for b in range(b0, b1):
                for o in range(n):
                    g_a[t, b, o] = g_s[t, b, o] if has_gs else 0.0
            if t < steps - 1:
                for j in range(n):
                    for b in range(b0, b1):
                        a = g_a[t + 1, b, j]
                        if a != 0.0:
                            for o in range(n):
                                g_a[t, b, o] += a * w[j, o]
            for b in range(b0, b1):
                for o in range(n):
                    g_a[t, b, o] *= sigma[t, b, o]


@njit(parallel=True, cache=True)
def backward_compact(g_s, sigma, diag, off, g_a):
    r"""The recurrence's gradient (:func:`backward_loop`) for KWTA's lateral weights
    ``W = o + (d - o) I`` (``diag`` = ``d``, ``off`` = ``o``, float32), O(n) per row::

        g_a[t] = ((g_s[t] + o · sum(g_a[t+1])) + (d - o) · g_a[t+1]) * sigma[t]

    in the order of the PyTorch step loop's operations (the row sum runs over ``j`` in
    order). One job per batch item through all of time; each row's sum is taken while
    the row is written, for the step before it. ``g_s`` with no steps: no gradient
    arrives at the spikes. The step loop took 14-25 ms of PyTorch calls per
    ``cuba.KWTA`` backward at 512 neurons, batch 32, T = 200 (four small ops per step)."""
    steps, batch, n = sigma.shape
    has_gs = g_s.shape[0] > 0
    c = diag - off
    zero = np.float32(0.0)
    for b in prange(batch):
        a = zero  # o · sum(g_a[t+1, b]): nothing at the last step
        for t in range(steps - 1, -1, -1):
            last = t == steps - 1
            total = zero
            for o in range(n):
                g = g_s[t, b, o] if has_gs else zero
                if not last:
                    g = (g + a) + g_a[t + 1, b, o] * c
                g = g * sigma[t, b, o]
                g_a[t, b, o] = g
                total += g
            a = total * off


@njit(parallel=True, cache=True)
def kwta_sums(g_a, s, out):
    r"""``out[b] = (tr_b, Σ_b)``: batch item ``b``'s part of the trace and the sum of the
    feedback weight gradient :math:`G = \sum_t g_a[t] s[t-1]^\top` of time-major
    ``(T, B, n)`` arrays, in float64 (``tr = Σ_{t,i} g_a[t, b, i] s[t-1, b, i]``,
    ``Σ = Σ_t (Σ_i g_a[t, b, i]) (Σ_j s[t-1, b, j])``), one job per batch item: all KWTA's
    ``o + (d - o) I`` needs of ``G`` (:func:`~.recurrent.feedback_weight_grad`), in one
    pass over both arrays instead of an ``n x n`` product."""
    steps, batch, n = g_a.shape
    for b in prange(batch):
        tr = 0.0
        total = 0.0
        for t in range(1, steps):
            sg = 0.0
            ss = 0.0
            for i in range(n):
                g = np.float64(g_a[t, b, i])
                p = np.float64(s[t - 1, b, i])
                tr += g * p
                sg += g
                ss += p
            total += sg * ss
        out[b, 0] = tr
        out[b, 1] = total


#: how :func:`complex_backward` forms the feedback's gradient from the two parts' input
#: gradients at the next step: their sum through one weight (KWTA's shared lateral
#: weights), each part through its own, or the imaginary part alone (the Izhikevich
#: resonators with their own weights, whose spike passes nothing to ``re``)
FB_SUM, FB_BOTH, FB_IMAG = 0, 1, 2


@njit(inline="always", cache=True)
def _feedback_rows(gx, t, b0, nb, form, nx):
    """Rows ``q < nb`` of ``nx``: the feedback's gradient source of batch item ``b0 + q``
    at step ``t`` (:data:`FB_SUM`: ``gx[0] + gx[1]`` in float32, as PyTorch adds them;
    :data:`FB_BOTH`: ``gx[0]`` then ``gx[1]`` side by side; :data:`FB_IMAG`: ``gx[1]``)."""
    n = gx.shape[3]
    for q in range(nb):
        b = b0 + q
        if form == FB_SUM:
            for j in range(n):
                nx[q, j] = gx[0, t, b, j] + gx[1, t, b, j]
        elif form == FB_BOTH:
            for j in range(n):
                nx[q, j] = gx[0, t, b, j]
                nx[q, n + j] = gx[1, t, b, j]
        else:
            for j in range(n):
                nx[q, j] = gx[1, t, b, j]


@njit(parallel=True, cache=True)
def complex_backward_compact(g_s, d_re, d_im, diag, off, form, real, gx):
    r"""The backward time loop of a resonator KWTA block (:mod:`.recurrent_complex`),
    whose lateral weights are ``o + (d - o) I``, in one call; float32 ``(T, B, n)``
    arrays but the float64 surrogates ``d_re``, ``d_im``::

        g[t]     = g_s[t] + feedback(gx[:, t+1])          (t < T-1; g[T-1] = g_s[T-1])
        gx[1, t] = float32(float64(g[t]) * d_im[t])
        gx[0, t] = float32(float64(g[t]) * d_re[t])       (where ``real``)

    with each weight's part of ``feedback`` ``o · sum(row) + (d - o) · row``, added in
    PyTorch's order (``(g + o · sum) + (d - o) · row``, part by part), O(n) per row:
    ``diag``/``off`` the ``(d, o)`` of the real and imaginary weights, the rows those of
    :func:`_feedback_rows` by ``form``. ``g_s`` empty: no gradient from above; ``gx[0]``
    is not written unless ``real``. One job per batch item through all of time."""
    steps, batch, n = d_im.shape
    has_gs = g_s.shape[0] > 0
    parts = 2 if form == FB_BOTH else 1
    width = 2 * n if form == FB_BOTH else n
    # each part's weight: the real one, but the imaginary one alone for FB_IMAG
    w0 = 1 if form == FB_IMAG else 0
    c0, c1 = diag[w0] - off[w0], diag[1] - off[1]
    zero = np.float32(0.0)
    for b in prange(batch):
        nx = np.zeros((1, width), np.float32)
        g = np.empty(n, np.float32)
        for t in range(steps - 1, -1, -1):
            for o in range(n):
                g[o] = g_s[t, b, o] if has_gs else zero
            if t < steps - 1:
                _feedback_rows(gx, t + 1, b, 1, form, nx)
                a0 = zero
                for j in range(n):
                    a0 += nx[0, j]
                a0 *= off[w0]
                for o in range(n):
                    g[o] = (g[o] + a0) + nx[0, o] * c0
                if parts == 2:
                    a1 = zero
                    for j in range(n):
                        a1 += nx[0, n + j]
                    a1 *= off[1]
                    for o in range(n):
                        g[o] = (g[o] + a1) + nx[0, n + o] * c1
            for o in range(n):
                g64 = np.float64(g[o])
                gx[1, t, b, o] = np.float32(g64 * d_im[t, b, o])
            if real:
                for o in range(n):
                    gx[0, t, b, o] = np.float32(np.float64(g[o]) * d_re[t, b, o])


@njit(cache=True)
def surrogate_step(g, d_re, d_im, t, real, gx):
    """One step of the resonator backward's stepped loop
    (:func:`.recurrent_complex._stepped_loop`, dense feedback, float32):
    ``gx[1, t] = float32(float64(g[t]) · d_im[t])``, and ``gx[0, t]`` with ``d_re`` where
    ``real``: the PyTorch ops' roundings (the gradient widened exactly, one float64
    product, one rounding to float32), in one call on the calling thread instead of a
    conversion, two products and two casting copies (16 K values a step at 512 neurons,
    batch 32: too little for a parallel region)."""
    _, batch, n = g.shape
    for b in range(batch):
        for o in range(n):
            g64 = np.float64(g[t, b, o])
            gx[1, t, b, o] = np.float32(g64 * d_im[t, b, o])
        if real:
            for o in range(n):
                gx[0, t, b, o] = np.float32(np.float64(g[t, b, o]) * d_re[t, b, o])


#: values per block of the surrogate pass (:func:`surrogate`; 4 KB of float32)
SURROGATE_BLOCK = 1024


@njit(inline="always", cache=True)
def _surrogate_span(vp, refr, theta, inv_tau, amp, out, lo, hi, arg, ibuf):
    """:func:`surrogate` on ``[lo, hi)``; ``arg``, ``ibuf`` scratch of at least
    ``hi - lo`` values."""
    n = hi - lo
    a, s, ib = arg[:n], out[lo:hi], ibuf[:n]
    src = vp[lo:hi]
    th, it = np.float32(theta), np.float32(inv_tau)
    for k in range(n):
        a[k] = -abs(src[k] - th) * it
    _vexp_neg(a, s, ib)
    amp32 = np.float32(amp)
    if refr.shape[0]:
        rr = refr[lo:hi]
        for k in range(n):
            s[k] = amp32 * s[k] if rr[k] == 0 else np.float32(0.0)
    else:
        for k in range(n):
            s[k] = amp32 * s[k]


@njit(parallel=True, cache=True)
def surrogate(vp, refr, theta, inv_tau, amp, out):
    r"""The spike surrogate of the whole recurrence at once (flat float32 arrays):

    .. math:: \sigma = \mathrm{amp}\; e^{-|v_p - \vartheta|\,/\,\tau}
        \quad (0 \text{ where } \mathrm{refr} \ne 0)

    ``refr`` (uint8) is the refractory mark of each value, or empty (none). Written
    into ``out``; the exponential is the vectorised :func:`._cpu._vexp_neg`.
    """
    n = vp.shape[0]
    blocks = (n + SURROGATE_BLOCK - 1) // SURROGATE_BLOCK
    chunks = min(blocks, 64)
    for c in prange(chunks):
        arg = np.empty(SURROGATE_BLOCK, np.float32)
        ibuf = np.empty(SURROGATE_BLOCK, np.int32)
        for blk in range(c, blocks, chunks):
            lo = blk * SURROGATE_BLOCK
            _surrogate_span(
                vp, refr, theta, inv_tau, amp, out, lo, min(n, lo + SURROGATE_BLOCK), arg, ibuf
            )


@njit(cache=True)
def surrogate_serial(vp, refr, theta, inv_tau, amp, out):
    """:func:`surrogate` on the calling thread."""
    n = vp.shape[0]
    arg = np.empty(SURROGATE_BLOCK, np.float32)
    ibuf = np.empty(SURROGATE_BLOCK, np.int32)
    for lo in range(0, n, SURROGATE_BLOCK):
        _surrogate_span(
            vp, refr, theta, inv_tau, amp, out, lo, min(n, lo + SURROGATE_BLOCK), arg, ibuf
        )


#: rows of ``w`` transposed together by :func:`feedback_mantissas` (16 int32: one
#: 64-byte line of each output row per input)
TRANSPOSE_ROWS = 16


@njit(cache=True)
def feedback_mantissas(w, scale, out):
    """``out[i, o] = scale * w[o, i]`` (int32) in one pass, where every value is a finite
    integer of magnitude below 2**31; returns ``(ok, largest absolute row sum of scale *
    w)`` (float64, exact for integers below 2**53), ``ok`` False where a value is not
    (``out`` then holds no meaning). Blocks of :data:`TRANSPOSE_ROWS` rows are
    transposed together, so each write fills a cache line; the checks are branch-free,
    so the loop vectorises. (NumPy took eight passes and a transposed copy: 2.3 ms per
    512 x 512 weight and step, against 0.64.)"""
    n_o, n_i = w.shape
    totals = np.zeros(n_o)
    bad = False
    for o0 in range(0, n_o, TRANSPOSE_ROWS):
        o1 = min(n_o, o0 + TRANSPOSE_ROWS)
        for i in range(n_i):
            for o in range(o0, o1):
                v = np.float64(w[o, i]) * scale
                a = abs(v)
                bad |= not (a < 2.0**31 and v == np.floor(v))  # NaN and inf fail too
                out[i, o] = np.int32(min(a, 2.0**31 - 1)) * (1 if v >= 0 else -1)
                totals[o] += a
        if bad:
            return False, 0.0
    return True, (totals.max() if n_o else 0.0)
