"""numba ``njit`` training kernels (CPU): fused float<->int forward and compiled backward.

The per-step integer arithmetic is :func:`loihi_slayer.fixed.dynamics.cuba_step`
and :func:`~loihi_slayer.fixed.dynamics.sdnn_step`, compiled here with
``njit(inline='always')``: the training forward and the hardware model are the
same code. What these kernels add is the conversion of the float training
tensors to the integer hardware quantities on the fly (no extra pass over
memory) and the output conversion back to float.

Layout: 2-D time-last views ``(rows, T)`` where ``rows = batch * neurons``;
parameter vectors have length 1 (shared) or ``neurons`` and are indexed with
``row % len``. Arrays of shape ``(rows, 0)`` (or ``(0,)``) mean "not used".

The surrogate gradient needs ``exp``; numba has no vector ``exp`` without
Intel SVML, so :func:`_vexp_neg` computes it on a row buffer with a
branch-free Cody-Waite reduction and a degree-6 polynomial, which LLVM
vectorizes (relative error below ``4e-7`` in float32).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..fixed import dynamics

_cuba_step = njit(inline="always", cache=True)(dynamics.cuba_step)
_sdnn_step = njit(inline="always", cache=True)(dynamics.sdnn_step)

#: Inputs whose integer conversion reaches this magnitude are rejected (the
#: kernels flag them; the caller raises). Keeps every product inside int64.
INPUT_LIMIT = float(1 << 31)

_LOG2E = np.float32(1.4426950408889634)
_LN2_HI = np.float32(0.693359375)
_LN2_LO = np.float32(-2.12194440e-4)


@njit(inline="always", fastmath=True, cache=True)
def _vexp_neg(arg, out, ibuf):
    """``out[:] = exp(arg[:])`` for ``arg <= 0`` (float32 buffers, vectorizable)."""
    n = arg.shape[0]
    for t in range(n):
        y = max(arg[t], np.float32(-87.0))
        k = np.floor(y * _LOG2E + np.float32(0.5))
        r = y - k * _LN2_HI - k * _LN2_LO
        p = np.float32(1.0) + r * (
            np.float32(1.0)
            + r
            * (
                np.float32(0.5)
                + r
                * (
                    np.float32(1.0 / 6.0)
                    + r
                    * (
                        np.float32(1.0 / 24.0)
                        + r * (np.float32(1.0 / 120.0) + r * np.float32(1.0 / 720.0))
                    )
                )
            )
        )
        ibuf[t] = (np.int32(k) + np.int32(127)) << np.int32(23)
        out[t] = p
    scale = ibuf.view(np.float32)
    for t in range(n):
        out[t] = out[t] * scale[t]


# --------------------------------------------------------------------------- CUBA


@njit(inline="always", cache=True)
def _cuba_row(n, x, in_scale, out_scale, di, dv, vth, ref, b, u, v, rc, graded, s_out, vp_out,
              u_out, r_out, bad, refractory):  # fmt: skip
    steps = x.shape[1]
    rec_v = vp_out.shape[1] > 0
    rec_u = u_out.shape[1] > 0
    rec_r = r_out.shape[1] > 0
    flag = 0
    for t in range(steps):
        f = x[n, t] * in_scale
        if not (abs(f) < INPUT_LIMIT):
            flag = 1
            f = 0.0
        a = np.int64(np.rint(f))
        if rec_r:
            r_out[n, t] = rc > 0
        u, v, rc, s, vp = _cuba_step(u, v, rc if refractory else 0, a, di, dv, vth, ref, b, 0)
        if graded:
            s_out[n, t] = vp * out_scale if s else 0.0
        else:
            s_out[n, t] = s
        if rec_v:
            vp_out[n, t] = vp * out_scale
        if rec_u:
            u_out[n, t] = u * out_scale
    if flag:
        bad[n] = 1
    return u, v, rc


@njit(inline="always", cache=True)
def _cuba_block(
    blk, x, in_scale, out_scale, i_decay, v_decay, v_th, ref, bias, u_st, v_st, rc_st, graded,
    s_out, vp_out, u_out, r_out, bad, refractory,
):  # fmt: skip
    """Rows ``4 blk .. 4 blk + 3`` of :func:`cuba_forward`; ``refractory`` is a constant
    at each call site, so without a refractory period the counter is 0 and its branch
    in the step folds away."""
    rows = x.shape[0]
    ni, nv, nt, nb = i_decay.shape[0], v_decay.shape[0], v_th.shape[0], bias.shape[0]
    n0 = blk * 4
    if n0 + 4 <= rows:
        # four independent neurons interleaved: hides the step latency
        n1, n2, n3 = n0 + 1, n0 + 2, n0 + 3
        u0, v0, r0 = u_st[n0], v_st[n0], rc_st[n0]
        u1, v1, r1 = u_st[n1], v_st[n1], rc_st[n1]
        u2, v2, r2 = u_st[n2], v_st[n2], rc_st[n2]
        u3, v3, r3 = u_st[n3], v_st[n3], rc_st[n3]
        di0, dv0, th0, b0 = i_decay[n0 % ni], v_decay[n0 % nv], v_th[n0 % nt], bias[n0 % nb]
        di1, dv1, th1, b1 = i_decay[n1 % ni], v_decay[n1 % nv], v_th[n1 % nt], bias[n1 % nb]
        di2, dv2, th2, b2 = i_decay[n2 % ni], v_decay[n2 % nv], v_th[n2 % nt], bias[n2 % nb]
        di3, dv3, th3, b3 = i_decay[n3 % ni], v_decay[n3 % nv], v_th[n3 % nt], bias[n3 % nb]
        rec_v = vp_out.shape[1] > 0
        rec_u = u_out.shape[1] > 0
        rec_r = r_out.shape[1] > 0
        flag = 0
        for t in range(x.shape[1]):
            f0 = x[n0, t] * in_scale
            f1 = x[n1, t] * in_scale
            f2 = x[n2, t] * in_scale
            f3 = x[n3, t] * in_scale
            if not (
                abs(f0) < INPUT_LIMIT
                and abs(f1) < INPUT_LIMIT
                and abs(f2) < INPUT_LIMIT
                and abs(f3) < INPUT_LIMIT
            ):
                flag = 1
                f0 = f0 if abs(f0) < INPUT_LIMIT else 0.0
                f1 = f1 if abs(f1) < INPUT_LIMIT else 0.0
                f2 = f2 if abs(f2) < INPUT_LIMIT else 0.0
                f3 = f3 if abs(f3) < INPUT_LIMIT else 0.0
            if rec_r:
                r_out[n0, t] = r0 > 0
                r_out[n1, t] = r1 > 0
                r_out[n2, t] = r2 > 0
                r_out[n3, t] = r3 > 0
            u0, v0, r0, s0, vp0 = _cuba_step(
                u0, v0, r0 if refractory else 0, np.int64(np.rint(f0)), di0, dv0,
                th0, ref, b0, 0,
            )  # fmt: skip
            u1, v1, r1, s1, vp1 = _cuba_step(
                u1, v1, r1 if refractory else 0, np.int64(np.rint(f1)), di1, dv1,
                th1, ref, b1, 0,
            )  # fmt: skip
            u2, v2, r2, s2, vp2 = _cuba_step(
                u2, v2, r2 if refractory else 0, np.int64(np.rint(f2)), di2, dv2,
                th2, ref, b2, 0,
            )  # fmt: skip
            u3, v3, r3, s3, vp3 = _cuba_step(
                u3, v3, r3 if refractory else 0, np.int64(np.rint(f3)), di3, dv3,
                th3, ref, b3, 0,
            )  # fmt: skip
            if graded:
                s_out[n0, t] = vp0 * out_scale if s0 else 0.0
                s_out[n1, t] = vp1 * out_scale if s1 else 0.0
                s_out[n2, t] = vp2 * out_scale if s2 else 0.0
                s_out[n3, t] = vp3 * out_scale if s3 else 0.0
            else:
                s_out[n0, t] = s0
                s_out[n1, t] = s1
                s_out[n2, t] = s2
                s_out[n3, t] = s3
            if rec_v:
                vp_out[n0, t] = vp0 * out_scale
                vp_out[n1, t] = vp1 * out_scale
                vp_out[n2, t] = vp2 * out_scale
                vp_out[n3, t] = vp3 * out_scale
            if rec_u:
                u_out[n0, t] = u0 * out_scale
                u_out[n1, t] = u1 * out_scale
                u_out[n2, t] = u2 * out_scale
                u_out[n3, t] = u3 * out_scale
        if flag:
            bad[n0] = 1
        u_st[n0], v_st[n0], rc_st[n0] = u0, v0, r0
        u_st[n1], v_st[n1], rc_st[n1] = u1, v1, r1
        u_st[n2], v_st[n2], rc_st[n2] = u2, v2, r2
        u_st[n3], v_st[n3], rc_st[n3] = u3, v3, r3
    else:
        for n in range(n0, rows):
            u, v, rc = _cuba_row(
                n, x, in_scale, out_scale, i_decay[n % ni], v_decay[n % nv],
                v_th[n % nt], ref, bias[n % nb], u_st[n], v_st[n], rc_st[n], graded,
                s_out, vp_out, u_out, r_out, bad, refractory,
            )  # fmt: skip
            u_st[n], v_st[n], rc_st[n] = u, v, rc


@njit(parallel=True, cache=True)
def cuba_forward(
    x, in_scale, out_scale, i_decay, v_decay, v_th, ref_delay, bias, u_st, v_st, rc_st, graded,
    s_out, vp_out, u_out, r_out, bad,
):  # fmt: skip
    """Fused CUBA forward: ``A = rint(x * in_scale)``, integer step, float outputs.

    ``s_out`` gets spikes (0/1, or the graded payload ``v * out_scale``),
    ``vp_out`` the pre-reset voltage and ``u_out`` the current, both times
    ``out_scale``; ``r_out`` (uint8) marks refractory steps. ``u_st``/``v_st``/
    ``rc_st`` hold the integer state (updated in place). ``bad[row]`` is set
    when an input is NaN/inf or too large. ``ref_delay`` is the hardware refDelay
    (here 1: no refractory period; see :func:`cuba_forward_refractory`).
    """
    for blk in prange((x.shape[0] + 3) // 4):
        _cuba_block(blk, x, in_scale, out_scale, i_decay, v_decay, v_th, 1, bias, u_st, v_st,
                    rc_st, graded, s_out, vp_out, u_out, r_out, bad, False)  # fmt: skip


@njit(parallel=True, cache=True)
def cuba_forward_refractory(
    x, in_scale, out_scale, i_decay, v_decay, v_th, ref_delay, bias, u_st, v_st, rc_st, graded,
    s_out, vp_out, u_out, r_out, bad,
):  # fmt: skip
    """:func:`cuba_forward` with a refractory period (``ref_delay > 1``)."""
    for blk in prange((x.shape[0] + 3) // 4):
        _cuba_block(blk, x, in_scale, out_scale, i_decay, v_decay, v_th, ref_delay, bias, u_st,
                    v_st, rc_st, graded, s_out, vp_out, u_out, r_out, bad, True)  # fmt: skip


@njit(inline="always", fastmath=True, cache=True)
def _surrogate_row(n, g_s, vp, theta, inv_tau, amp, graded, arg, sur, ibuf):
    """``sur[:] = g_s[n, :] * ds/dv`` for one row (vectorized)."""
    steps = vp.shape[1]
    th = np.float32(theta)
    it = np.float32(inv_tau)
    if graded:
        for t in range(steps):
            arg[t] = min(vp[n, t] - th, np.float32(0.0)) * it
    else:
        for t in range(steps):
            arg[t] = -abs(vp[n, t] - th) * it
    _vexp_neg(arg, sur, ibuf)
    a = np.float32(amp)
    for t in range(steps):
        sur[t] = sur[t] * a * g_s[n, t]


@njit(parallel=True, fastmath=False, cache=True)
def cuba_backward(
    g_s, g_v, g_u, vp, u_rec, refr, theta, v_th, s_scale, inv_tau, amp, graded,
    i_decay, v_decay, u0, v0, do_v, do_u, g_x, g_di, g_dv,
):  # fmt: skip
    """Surrogate gradient and reverse-time leaky-integrator scans.

    .. code-block:: text

        gv[t] = g_s[t] * ds/dv(vp[t]) + g_v[t] + av * gv[t+1]      (av = 1 - vDecay/4096)
        gu[t] = gv[t] + g_u[t] + ai * gu[t+1]                        (ai = 1 - iDecay/4096)
        g_x[t] = gu[t]

    Resets are ignored (lava-dl). Refractory steps (``refr[t] != 0``, given when
    ``refr`` has ``T`` columns) hold ``v = 0`` whatever the input: ``gv[t] = 0``
    there. With ``do_v = False`` the voltage scan is
    skipped (``gv = 0``); with ``do_u = False`` the current scan is skipped
    (``g_x[t] = gv[t] + g_u[t]``). When ``g_di``/``g_dv`` have length
    ``rows``, the analytic decay gradients are accumulated per row:

    .. code-block:: text

        g_dv = -1/4096 * sum_t gv[t] * v_post[t-1]    (v_post: post-reset voltage, v_post[-1] = v0)
        g_di = -1/4096 * sum_t gu[t] * u[t-1]         (u[-1] = u0)
    """
    rows, steps = g_x.shape
    has_s = g_s.shape[1] > 0
    has_v = g_v.shape[1] > 0
    has_u = g_u.shape[1] > 0
    want_dv = g_dv.shape[0] > 0
    want_di = g_di.shape[0] > 0
    has_r = refr.shape[1] > 0
    ni, nv, nt = i_decay.shape[0], v_decay.shape[0], v_th.shape[0]
    nth, ntau = theta.shape[0], inv_tau.shape[0]
    n_chunks = min(rows, 256)
    for c in prange(n_chunks):
        arg = np.empty(steps, np.float32)
        sur = np.empty(steps, np.float32)
        ibuf = np.empty(steps, np.int32)
        for n in range(c, rows, n_chunks):
            if has_s and do_v:
                _surrogate_row(
                    n, g_s, vp, theta[n % nth], inv_tau[n % ntau], amp, graded, arg, sur, ibuf
                )
            av = np.float32(1.0 - v_decay[n % nv] / 4096.0)
            ai = np.float32(1.0 - i_decay[n % ni] / 4096.0)
            gv = np.float32(0.0)
            gu = np.float32(0.0)
            acc_v = 0.0
            acc_i = 0.0
            th_int = v_th[n % nt]
            for t in range(steps - 1, -1, -1):
                if do_v:
                    gt = np.float32(0.0)
                    if has_s:
                        gt = sur[t]
                    if has_v:
                        gt = gt + g_v[n, t]
                    gv = gt + av * gv
                    if has_r and refr[n, t] != 0:
                        gv = np.float32(0.0)
                gut = gv
                if has_u:
                    gut = gut + g_u[n, t]
                if do_u:
                    gu = gut + ai * gu
                    g_x[n, t] = gu
                else:
                    g_x[n, t] = gut
                if want_dv:
                    if t > 0:
                        vprev = vp[n, t - 1]
                        if np.int64(np.rint(vprev * s_scale)) > th_int:
                            vprev = np.float32(0.0)
                        acc_v += gv * vprev
                    else:
                        acc_v += gv * v0[n]
                if want_di:
                    if t > 0:
                        acc_i += gu * u_rec[n, t - 1]
                    else:
                        acc_i += gu * u0[n]
            if want_dv:
                g_dv[n] = -acc_v / 4096.0
            if want_di:
                g_di[n] = -acc_i / 4096.0


@njit(parallel=True, fastmath=True, cache=True)
def cuba_backward_fast(g_s, vp, theta, inv_tau, amp, graded, i_decay, v_decay, g_x):
    """:func:`cuba_backward` specialised to the common case (spike gradient only,
    both scans, no decay gradients), with four rows interleaved in the scan."""
    rows, steps = g_x.shape
    ni, nv = i_decay.shape[0], v_decay.shape[0]
    nth, ntau = theta.shape[0], inv_tau.shape[0]
    n_quads = (rows + 3) // 4
    n_chunks = min(n_quads, 256)
    for c in prange(n_chunks):
        arg = np.empty(steps, np.float32)
        ibuf = np.empty(steps, np.int32)
        sur = np.empty((4, steps), np.float32)
        for q in range(c, n_quads, n_chunks):
            n0 = q * 4
            m = min(4, rows - n0)
            for k in range(m):
                n = n0 + k
                _surrogate_row(
                    n, g_s, vp, theta[n % nth], inv_tau[n % ntau], amp, graded,
                    arg, sur[k], ibuf,
                )  # fmt: skip
            if m == 4:
                av0 = np.float32(1.0 - v_decay[n0 % nv] / 4096.0)
                av1 = np.float32(1.0 - v_decay[(n0 + 1) % nv] / 4096.0)
                av2 = np.float32(1.0 - v_decay[(n0 + 2) % nv] / 4096.0)
                av3 = np.float32(1.0 - v_decay[(n0 + 3) % nv] / 4096.0)
                ai0 = np.float32(1.0 - i_decay[n0 % ni] / 4096.0)
                ai1 = np.float32(1.0 - i_decay[(n0 + 1) % ni] / 4096.0)
                ai2 = np.float32(1.0 - i_decay[(n0 + 2) % ni] / 4096.0)
                ai3 = np.float32(1.0 - i_decay[(n0 + 3) % ni] / 4096.0)
                gv0 = gv1 = gv2 = gv3 = np.float32(0.0)
                gu0 = gu1 = gu2 = gu3 = np.float32(0.0)
                for t in range(steps - 1, -1, -1):
                    gv0 = sur[0, t] + av0 * gv0
                    gv1 = sur[1, t] + av1 * gv1
                    gv2 = sur[2, t] + av2 * gv2
                    gv3 = sur[3, t] + av3 * gv3
                    gu0 = gv0 + ai0 * gu0
                    gu1 = gv1 + ai1 * gu1
                    gu2 = gv2 + ai2 * gu2
                    gu3 = gv3 + ai3 * gu3
                    g_x[n0, t] = gu0
                    g_x[n0 + 1, t] = gu1
                    g_x[n0 + 2, t] = gu2
                    g_x[n0 + 3, t] = gu3
            else:
                for k in range(m):
                    n = n0 + k
                    av = np.float32(1.0 - v_decay[n % nv] / 4096.0)
                    ai = np.float32(1.0 - i_decay[n % ni] / 4096.0)
                    gv = np.float32(0.0)
                    gu = np.float32(0.0)
                    for t in range(steps - 1, -1, -1):
                        gv = sur[k, t] + av * gv
                        gu = gv + ai * gu
                        g_x[n, t] = gu


# --------------------------------------------------------------------- sigma-delta


@njit(parallel=True, cache=True)
def sdnn_forward(
    mode, x, in_scale, v_th, bias, relu, cum_error, sigma_st, act_st, res_st, err_st,
    y_out, mask_out, d_out, bad,
):  # fmt: skip
    """Fused sigma-delta forward (``mode`` 0 = delta encoder, 1 = sigma-delta).

    ``x`` is converted to the integer input ``rint(x * in_scale)``: the 6-bit
    input mantissa for the delta encoder (shifted by ``E + S = 12`` inside the
    step) and the 18-fraction-bit sigma increment for sigma-delta. Outputs:
    ``y_out`` payload / 4096, ``mask_out`` the ReLU derivative (1 where
    ``sigma + bias > 0``), ``d_out`` the delta ``d / 2**18`` (for the threshold
    gradient).
    """
    rows, steps = x.shape
    rec_mask = mask_out.shape[1] > 0
    rec_d = d_out.shape[1] > 0
    nt, nb = v_th.shape[0], bias.shape[0]
    for n in prange(rows):
        th = v_th[n % nt]
        b = bias[n % nb]
        sg, ac, rs, er = sigma_st[n], act_st[n], res_st[n], err_st[n]
        flag = 0
        for t in range(steps):
            f = x[n, t] * in_scale
            if not (abs(f) < INPUT_LIMIT * 1024.0):
                flag = 1
                f = 0.0
            a = np.int64(np.rint(f))
            if rec_d:
                d_prev = ac - rs
            sg, ac, rs, er, p = _sdnn_step(mode, a, sg, ac, rs, er, th, b, 12, 6, relu, cum_error)
            y_out[n, t] = p * (1.0 / 4096.0)
            if rec_mask:
                mask_out[n, t] = 1 if (ac > 0 or relu == 0) else 0
            if rec_d:
                # d = act - act_prev + residue_prev; residue = d - s
                d_out[n, t] = (ac - d_prev) * (1.0 / 262144.0)
        if flag:
            bad[n] = 1
        sigma_st[n], act_st[n], res_st[n], err_st[n] = sg, ac, rs, er


@njit(parallel=True, fastmath=True, cache=True)
def sdnn_backward(g, mask, d, theta, tau_grad, scale_grad, mode, g_x, g_b, g_th):
    """Straight-through sigma-delta backward.

    .. code-block:: text

        ga[t] = g[t] - g[t+1]                       (delta, straight through)
        gz[t] = ga[t] * mask[t]                     (ReLU derivative)
        g_x[t] = sum_{k >= t} gz[k]                 (sigma = cumsum; delta mode: g_x = ga)
        g_b   += sum_t gz[t]
        g_th  += sum_t g[t] * (|d| > th ? -d*scale_grad*exp(-(|d|-th)/tau_grad)/th : -sign(d))
    """
    rows, steps = g.shape
    has_mask = mask.shape[1] > 0
    want_b = g_b.shape[0] > 0
    want_th = g_th.shape[0] > 0
    nth = theta.shape[0]
    for n in prange(rows):
        gnext = np.float32(0.0)
        acc = np.float32(0.0)
        gb = 0.0
        for t in range(steps - 1, -1, -1):
            gt = g[n, t]
            ga = gt - gnext
            gnext = gt
            if mode == 0:
                g_x[n, t] = ga
                continue
            if has_mask and mask[n, t] == 0:
                ga = np.float32(0.0)
            acc = acc + ga
            gb += ga
            g_x[n, t] = acc
        if want_b:
            g_b[n] = gb
        if want_th:
            th = theta[n % nth]
            gth = 0.0
            for t in range(steps):
                dv = np.float64(d[n, t])
                sub = abs(dv) - th
                if sub > 0:
                    gth += -dv * scale_grad * np.exp(-sub / tau_grad) / th * g[n, t]
                elif dv > 0:
                    gth -= g[n, t]
                elif dv < 0:
                    gth += g[n, t]
            g_th[n] = gth
